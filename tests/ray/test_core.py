"""The Ray backend's mechanics against the real cluster, without the agent around them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gridrun.backends.ray.backend import Handle, RayBackendCore
from gridrun.backends.ray.package import build_package
from gridrun.envs.key import environment_key
from gridrun.envs.pipconf import load_pip_config
from gridrun.home import GridHome
from gridrun.project import take_snapshot

pytestmark = pytest.mark.ray


def _spec(key: str, name: str, args: list[str]) -> dict:
    pip = load_pip_config()
    return {
        "env_key": key,
        "python": "3.11",
        "requirements": [],
        "pip": pip,
        "home_label": "t",
        "experiment": name,
        "attempt": "a1",
        "script": "train.py",
        "args": args,
        "env": {"GRID_EXPERIMENT_NAME": name},
        "gpus": 0,
    }


def test_launch_poll_artifacts(ray_cluster, tmp_path: Path) -> None:
    home = GridHome(tmp_path / "home").ensure()
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(
        "import sys, os\nprint('argv', sys.argv)\nprint('oops', file=sys.stderr)\n"
        "open('model.txt', 'w').write(os.environ['GRID_EXPERIMENT_NAME'])\n"
    )
    snap = take_snapshot(proj, home)
    pkg = build_package(snap.manifest_path, home.objects, home.run_dir("r1") / "ray")
    key = environment_key("3.11", [], load_pip_config().fingerprint())
    core = RayBackendCore()
    handles = []
    for i in range(2):
        exp_dir = home.experiment_dir(f"r1-exp{i}")
        exp_dir.mkdir(parents=True)
        h = core.launch(
            ray_cluster.gcs_address, home.root, "r1", pkg, i, "a1",
            _spec(key, f"r1-exp{i}", ["--i", str(i)]), {"num_cpus": 1},
        )  # fmt: skip
        handles.append((h, exp_dir))
    deadline = time.monotonic() + 300
    done = {}
    while len(done) < 2 and time.monotonic() < deadline:
        for h, d in handles:
            o = core.poll(Handle.loads(h.dumps()), d)
            if o.state in ("exited", "lost"):
                done[h.key] = o
        time.sleep(0.2)
    assert {o.exit_code for o in done.values()} == {0}, done
    for i, (h, d) in enumerate(handles):
        log = (d / "output.log").read_text()
        assert "[stdout] " in log and f"argv ['train.py', '--i', '{i}']" in log, log
        assert "[stderr] " in log and "oops" in log
        assert "[build] " in log
        assert core.collect_artifacts(h, d / "artifacts") == ["model.txt"]
        assert (d / "artifacts" / "model.txt").read_text() == f"r1-exp{i}"
        assert (d / "node").read_text()
        core.release(h)
