"""The agent's watch of Slurm jobs: a task's exit record first, ``squeue`` for the rest.

On the session's real cluster: the controller frozen (SIGSTOP: there, but silent, as
behind a broken network), a task that ends meanwhile is told by its record, while
the jobs only Slurm can speak for are unknown, never gone.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from gridrun.attempts import PollState
from gridrun.backends.slurm.backend import SlurmBackend
from gridrun.home import GridHome
from gridrun.project import take_snapshot
from gridrun.specs import Job
from search_helpers import wait_until

pytestmark = pytest.mark.slurm

WAITS = """\
import os, sys, time
open(sys.argv[1] + ".started", "w").close()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
sys.exit(5)
"""


def _job(home: GridHome, tmp_path: Path, name: str, go: Path) -> Job:
    root = tmp_path / name
    root.mkdir()
    (root / "job.py").write_text(WAITS)
    snap = take_snapshot(root, home)
    venv = tmp_path / "env"
    if not venv.exists():
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(sys.executable)
    exp_dir = home.experiment_dir(name)
    return Job(
        run_name="watch",
        experiment_name=name,
        experiment_id=int(name[-1]) + 1,
        env_ref=str(venv),
        script="job.py",
        args=[str(go)],
        exp_dir=exp_dir,
        workdir=exp_dir / "workdir",
        snapshot_manifest=snap.manifest_path,
        objects_dir=home.objects,
        env={"GRID_EXPERIMENT_NAME": name, "GRID_RESTART_COUNT": "0"},
        stop_grace=1.0,
    )


def test_a_tasks_record_tells_its_end_while_slurmctld_does_not_answer(
    slurm_cluster, grid_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in slurm_cluster.env.items():
        monkeypatch.setenv(key, value)
    home = GridHome(grid_home).ensure()
    backend = SlurmBackend(home)
    go = [tmp_path / "go-quick", tmp_path / "go-slow"]
    jobs = [_job(home, tmp_path, f"watch-exp{i}", go[i]) for i in range(2)]
    handles = backend.launch_many(jobs)
    assert all(isinstance(h, str) for h in handles), handles
    items = [(job, str(h)) for job, h in zip(jobs, handles, strict=True)]
    assert handles[0].split("_")[0] == handles[1].split("_")[0]  # one job array
    wait_until("both scripts started", lambda: all(Path(f"{g}.started").exists() for g in go))
    wait_until(
        "squeue saw both running",
        lambda: all(s.state == PollState.RUNNING and s.node for s in backend.poll(items)),
    )
    ctl = slurm_cluster.procs["slurmctld"]
    ctl.send_signal(signal.SIGSTOP)
    try:
        go[0].touch()
        record = jobs[0].exp_dir / "slurm-exit.json"
        wait_until("the quick task's exit record", record.exists)
        for fresh in (False, True):
            quick, slow = backend.poll(items, fresh=fresh)
            assert (quick.state, quick.exit_code) == (PollState.EXITED, 5), quick
            assert quick.node.startswith("node") and quick.finished_at, quick
            # What only Slurm can say waits for it: never taken for gone.
            assert slow.state in (PollState.RUNNING, PollState.UNKNOWN), slow
        assert slow.state == PollState.UNKNOWN and slow.detail  # a fresh answer failed
    finally:
        ctl.send_signal(signal.SIGCONT)
    wait_until(
        "squeue answers again", lambda: backend.poll(items[1:])[0].state == PollState.RUNNING
    )
    go[1].touch()
    wait_until(
        "the slow task ended",
        lambda: backend.poll(items[1:], fresh=False)[0].state == PollState.EXITED,
    )
    for job, handle in items:
        backend.release(job, handle)
