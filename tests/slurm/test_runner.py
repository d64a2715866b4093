"""The Slurm runner (``backends/slurm/runner.py``), run as a node runs it, without Slurm.

Each test writes an experiment's plan as the agent does (``plan.write_plan``) and
starts the runner with the batch script's own command line (``script.runner_command``),
setting the few ``SLURM_*`` variables a task would get. Real processes, real
namespaces where this machine allows them (the node's probed isolation mode), a real
``task.py`` where the runner hands over. Scripts wait on files where a test must act.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gridrun.backends.slurm.plan import PREPARED_FILE, write_plan
from gridrun.backends.slurm.runner import EXIT_FILE
from gridrun.backends.slurm.script import runner_command
from gridrun.home import GridHome
from gridrun.logs import parse_line
from gridrun.project import take_snapshot
from gridrun.specs import Job

NODE = "node7"


@pytest.fixture
def home(grid_home: Path) -> GridHome:
    return GridHome(grid_home).ensure()


@pytest.fixture
def probed(home: GridHome, monkeypatch: pytest.MonkeyPatch) -> str:
    """This node's isolation mode, probed and recorded as ``task.py`` records it."""
    from gridrun.datastores.mount import node_isolation_mode

    monkeypatch.delenv("GRIDRUN_DATASTORE_ISOLATION", raising=False)
    return node_isolation_mode(home.nodes)


def _venv(tmp_path: Path) -> Path:
    """An environment whose ``bin/python`` is this interpreter (the runner needs no more)."""
    venv = tmp_path / "env"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    if not (venv / "bin" / "python").exists():
        (venv / "bin" / "python").symlink_to(sys.executable)
    return venv


@pytest.fixture
def make(home: GridHome, tmp_path: Path) -> Callable[..., Job]:
    count = [0]

    def make_job(script: str, *args: str, restart: int = 0, grace: float = 2.0) -> Job:
        count[0] += 1
        root = tmp_path / f"proj{count[0]}"
        root.mkdir()
        (root / "job.py").write_text(script)
        snap = take_snapshot(root, home)
        name = f"rn-exp{count[0]}"
        exp_dir = home.experiment_dir(name)
        exp_dir.mkdir(parents=True, exist_ok=True)
        job = Job(
            run_name="rn",
            experiment_name=name,
            experiment_id=count[0],
            env_ref=str(_venv(tmp_path)),
            script="job.py",
            args=list(args),
            exp_dir=exp_dir,
            workdir=exp_dir / "workdir",
            snapshot_manifest=snap.manifest_path,
            objects_dir=home.objects,
            env={"GRID_EXPERIMENT_NAME": name, "GRID_RESTART_COUNT": str(restart)},
            stop_grace=grace,
        )
        (exp_dir / "slurm-job.json").write_text(json.dumps({**job.to_dict(), "backend": "slurm"}))
        write_plan(home.root, home.nodes, job, home.run_dir("rn"))
        return job

    return make_job


def _task(job: Job, home: GridHome, **env: str) -> tuple[list[str], dict[str, str]]:
    """The batch script's command for ``job``, and what Slurm would give it."""
    task_env = {
        **os.environ,
        "GRID_HOME": str(home.root),
        "SLURM_JOB_ID": "41",
        "SLURMD_NODENAME": NODE,
        **env,
    }
    return [*runner_command(sys.executable), str(job.exp_dir / "slurm-plan.bin")], task_env


def _run(job: Job, home: GridHome, **env: str) -> subprocess.CompletedProcess[str]:
    command, task_env = _task(job, home, **env)
    return subprocess.run(command, env=task_env, capture_output=True, text=True, timeout=120)


def _start(job: Job, home: GridHome) -> subprocess.Popen[bytes]:
    command, task_env = _task(job, home)
    return subprocess.Popen(command, env=task_env, stdout=subprocess.DEVNULL)


def _record(job: Job) -> dict:
    return json.loads((job.exp_dir / EXIT_FILE).read_text())


def _log(job: Job) -> list[tuple[str, str, str]]:
    lines = job.log_path.read_text().splitlines(keepends=True)
    parsed = [parse_line(x) for x in lines]
    assert None not in parsed, lines
    return parsed  # type: ignore[return-value]


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


REPORT = """\
import json, os, sys
print("out line", flush=True)
print("err line", file=sys.stderr, flush=True)
open("made.txt", "w").write("x")
home = os.environ["GRID_HOME"]
json.dump({
    "env": {k: os.environ.get(k) for k in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES",
            "GRID_EXPERIMENT_ID", "GRID_EXPERIMENT_NAME", "VIRTUAL_ENV")},
    "home_visible": os.path.exists(os.path.join(home, "grid.db")),
    "pid": os.getpid(),
    "cwd": os.getcwd(),
}, open("report.json", "w"))
sys.stdout.write("no newline at the end")
sys.exit(3)
"""


def test_the_runner_runs_an_experiment_as_the_local_backend_does(
    make, home: GridHome, probed: str
) -> None:
    (home.root / "grid.db").write_text("")  # GRID_HOME's content, hidden from the script
    job = make(REPORT, "--lr", "0.1")
    proc = _run(job, home, CUDA_VISIBLE_DEVICES="1")
    assert proc.returncode == 3, proc.stderr
    rec = _record(job)
    assert (rec["slurm_job"], rec["exit_code"], rec["stopped"], rec["node"]) == (
        "41", 3, False, NODE
    )  # fmt: skip
    assert rec["started_at"] <= rec["finished_at"] and rec["attempt"] == 0
    log = _log(job)
    assert ("stdout", "out line") in [(s, t) for s, _, t in log]
    assert ("stderr", "err line") in [(s, t) for s, _, t in log]
    assert ("stdout", "no newline at the end") in [(s, t) for s, _, t in log]
    from datetime import datetime

    for _, ts, _ in log:
        assert datetime.fromisoformat(ts).utcoffset() is not None
    report = json.loads((job.workdir / "report.json").read_text())
    assert (job.workdir / "made.txt").read_text() == "x"
    assert report["cwd"] == str(job.workdir)
    assert report["env"] == {
        "SLURM_JOB_ID": "41",  # Slurm's variables reach the script
        "CUDA_VISIBLE_DEVICES": "1",  # the GPUs Slurm granted, not the agent's
        "GRID_EXPERIMENT_ID": str(job.experiment_id),
        "GRID_EXPERIMENT_NAME": job.experiment_name,
        "VIRTUAL_ENV": job.env_ref,
    }
    if probed != "none":  # confined as on the local backend: GRID_HOME hidden, own PIDs
        assert report["home_visible"] is False
        assert report["pid"] < 10, report  # the first processes of its own PID namespace
    assert not (job.exp_dir / PREPARED_FILE).exists()  # nothing needed task.py


STUBBORN = """\
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))
open(sys.argv[1], "w").close()
time.sleep(600)
"""

POLITE = """\
import signal, sys, time
def on_term(*_):
    print("saving", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open(sys.argv[1], "w").close()
time.sleep(600)
"""


def test_sigterm_stops_the_experiment_and_sigkill_follows_the_grace(
    make, home: GridHome, probed: str, tmp_path: Path
) -> None:
    started = tmp_path / "stubborn-started"
    job = make(STUBBORN, str(started), grace=1.0)
    proc = _start(job, home)
    _wait_for(started)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGKILL
    rec = _record(job)
    assert rec["stopped"] is True and rec["exit_code"] == -signal.SIGKILL
    assert "ignoring SIGTERM" in job.log_path.read_text()

    started = tmp_path / "polite-started"
    job = make(POLITE, str(started))
    proc = _start(job, home)
    _wait_for(started)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    rec = _record(job)
    assert rec["stopped"] is True and rec["exit_code"] == 0
    assert "saving" in job.log_path.read_text()


LEAVES_A_DAEMON = """\
import subprocess, sys
marker = sys.argv[1]
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker],
                 start_new_session=True)
print("leaving", marker, flush=True)
"""


@pytest.mark.parametrize("mode", ["probed", "none"])
def test_what_the_experiment_left_running_ends_with_it(
    make, home: GridHome, probed: str, tmp_path: Path, mode: str
) -> None:
    """A daemon in its own session outlives its script by no more than a moment, with a
    PID namespace (it dies with it) and without one (the runner, its subreaper, ends it)."""
    marker = f"gridrun-test-daemon-{mode}-{os.getpid()}"
    job = make(LEAVES_A_DAEMON, marker)
    env = {"GRIDRUN_DATASTORE_ISOLATION": "none"} if mode == "none" else {}
    assert _run(job, home, **env).returncode == 0
    assert _record(job)["exit_code"] == 0
    assert f"leaving {marker}" in job.log_path.read_text()
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left == "", f"the daemon outlived its experiment: {left}"


def test_a_node_not_probed_yet_and_a_restart_go_through_task_py(
    make, home: GridHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRIDRUN_DATASTORE_ISOLATION", raising=False)
    assert not list(home.nodes.glob("isolation-*"))
    job = make("print('first', flush=True)\nopen('state.txt', 'w').write('1')\n")
    proc = _run(job, home)
    assert proc.returncode == 0, proc.stderr
    assert (job.exp_dir / PREPARED_FILE).exists()  # task.py prepared it, the runner ran it
    assert list(home.nodes.glob("isolation-*"))  # and recorded the node's mode
    assert _record(job)["exit_code"] == 0 and "first" in job.log_path.read_text()
    # The next experiment on this node needs no task.py.
    second = make("print('second', flush=True)\n")
    assert _run(second, home).returncode == 0
    assert not (second.exp_dir / PREPARED_FILE).exists()
    # A restart (GRID_RESTART_COUNT 1) goes on in the working directory it left.
    resumed = "print('state', open('state.txt').read(), flush=True)\n"
    again = make(resumed, restart=1)
    again.workdir.mkdir(parents=True)  # as attempt 0 left it
    (again.workdir / "job.py").write_text(resumed)
    (again.workdir / "state.txt").write_text("from attempt 0")
    assert _run(again, home).returncode == 0
    text = again.log_path.read_text()
    assert "restart 1, in the same working directory" in text
    assert "state from attempt 0" in text
    assert _record(again)["attempt"] == 1


def test_a_plan_that_cannot_be_read_is_refused_in_one_line(home: GridHome, tmp_path: Path) -> None:
    bad = tmp_path / "plan.bin"
    bad.write_bytes(b"not a plan")
    proc = subprocess.run(
        [*runner_command(sys.executable), str(bad)],
        env={**os.environ, "GRID_HOME": str(home.root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("gridrun: no experiment to run"), proc.stderr
    assert "Traceback" not in proc.stderr


def _stopped_already() -> None:
    """In the forked child, before exec: a SIGTERM pending (blocked), as task.py hands
    one over to the runner it execs; the runner takes it with its first handler."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("restart", [0, 1])
def test_a_stop_before_the_start_runs_nothing_and_says_so(
    make, home: GridHome, probed: str, tmp_path: Path, restart: int
) -> None:
    """Stopped before it started (restart 1 would have gone to task.py): exit 143, as a
    shell reports SIGTERM, its record says stopped, and the script never ran."""
    ran = tmp_path / f"ran-{restart}"
    job = make(f"open({str(ran)!r}, 'w').close()\n", restart=restart)
    command, task_env = _task(job, home)
    proc = subprocess.run(command, env=task_env, preexec_fn=_stopped_already, timeout=60)
    assert proc.returncode == 143
    rec = _record(job)
    assert rec["stopped"] is True and rec["exit_code"] == 143 and rec["attempt"] == restart
    assert not ran.exists()
    assert not (job.exp_dir / PREPARED_FILE).exists()
