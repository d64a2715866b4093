"""The Ray backend's mechanics against the real cluster, without the agent around them:
what the agent's engine watcher does, in this process (which holds the Ray connection).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gridrun.backends.ray.backend import RayBackend
from gridrun.home import GridHome
from gridrun.logs import LogSink
from gridrun.project import take_snapshot
from gridrun.specs import BuildRequest, Job

pytestmark = pytest.mark.ray


def test_launch_poll_artifacts(ray_cluster, tmp_path: Path) -> None:
    home = GridHome(tmp_path / "home").ensure()
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(
        "import sys, os\nprint('argv', sys.argv)\nprint('oops', file=sys.stderr)\n"
        "open('model.txt', 'w').write(os.environ['GRID_EXPERIMENT_NAME'])\n"
    )
    snap = take_snapshot(proj, home)
    backend = RayBackend(home)
    req = BuildRequest(
        run_name="r1", project_name="proj", python="3.11", requirements=[],
        snapshot_hash=snap.hash, snapshot_manifest=snap.manifest_path,
        objects_dir=home.objects, backend_options={"ray_address": ray_cluster.gcs_address},
    )  # fmt: skip
    env_ref = backend.build(req, lambda line: None)
    items = []
    for i in range(2):
        name = f"r1-exp{i}"
        exp_dir = home.experiment_dir(name)
        job = Job(
            run_name="r1", experiment_name=name, experiment_id=i + 1, env_ref=env_ref,
            script="train.py", args=["--i", str(i)], exp_dir=exp_dir,
            workdir=exp_dir / "workdir", snapshot_manifest=snap.manifest_path,
            objects_dir=home.objects, env={"GRID_EXPERIMENT_NAME": name},
        )  # fmt: skip
        with LogSink(job.log_path) as sink:
            items.append((job, backend.launch(job, sink)))
    deadline = time.monotonic() + 300
    while True:  # one batched poll a round, as the watcher asks
        results = RayBackend(home).poll(items)
        if all(r.ended for r in results) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [r.exit_code for r in results] == [0, 0], results
    assert all(r.node for r in results), results
    for i, (job, handle) in enumerate(items):
        log = job.log_path.read_text()
        assert "[stdout] " in log and f"argv ['train.py', '--i', '{i}']" in log, log
        assert "[stderr] " in log and "oops" in log
        assert "[build] " in log
        assert backend.collect(job, handle) == ["model.txt"]
        assert (job.artifacts_dir / "model.txt").read_text() == f"r1-exp{i}"
        assert (job.exp_dir / "node").read_text()
        backend.release(job, handle)
