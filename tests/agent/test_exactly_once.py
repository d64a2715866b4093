"""An experiment never outlives its supervisor, and a finished one never runs again.

The probe behind issue 21 killed the agent, the launcher and a supervisor with
``kill -9``: the experiment ran on unsupervised to its end, and one that had ended a
moment before its supervisor died was taken for lost, so ``--auto_resume`` ran it a
second time. Each experiment now runs under a witness (``backends/local/witness.py``)
that dies with the supervisor, taking the experiment with it, and that writes how the
experiment ended for reconciliation to honour.

Kills land at points the test chooses, not at moments it hopes for: each script
waits at a barrier (a file the test creates) before it completes, so "killed before
it completed" and "killed after it completed, before its supervisor recorded it"
(the supervisor is stopped with SIGSTOP, the barrier lifted, the witness's record
awaited, then the supervisor killed) are both certain, at any machine speed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import psutil
import pytest
from resume_helpers import db_row, host_pid, no_leftovers, wait_db

from gridrun.processes import ProcessRef, read_ref

# Writes "start", waits at its barrier, then completes: "done" and exit 0.
BARRIER = """\
import os, sys, time
marks, name = sys.argv[1], os.environ["GRID_EXPERIMENT_NAME"]
attempt = os.environ["GRID_RESTART_COUNT"]
open(os.path.join(marks, f"start {name} {attempt}"), "w").write(str(os.getpid()))
go = os.path.join(marks, f"go {name} {attempt}")
while not os.path.exists(go):
    time.sleep(0.02)
open("result.txt", "w").write(name)
fd = os.open(os.path.join(marks, "done"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
os.write(fd, f"{name} {attempt}\\n".encode())
os._exit(0)
"""


def _project(tmp_path: Path) -> tuple[Path, Path]:
    project, marks = tmp_path / "proj", tmp_path / "marks"
    project.mkdir()
    marks.mkdir()
    (project / "barrier.py").write_text(BARRIER)
    return project, marks


def _done(marks: Path) -> list[str]:
    path = marks / "done"
    return path.read_text().splitlines() if path.exists() else []


def _wait_file(path: Path, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():  # a witness's: blanks first
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {path} not written in {timeout}s")
        time.sleep(0.02)


def _kill(ref: ProcessRef | None, sig: int = signal.SIGKILL) -> None:
    """Signal that very process: a stale pid file's pid may name another one by now."""
    if ref is not None:
        ref.signal(sig)


def _agent(home: Path) -> ProcessRef | None:
    return read_ref(home / "agent.pid")


def _supervisor(row) -> ProcessRef:  # type: ignore[no-untyped-def]
    return ProcessRef(row["supervisor_pid"], int(row["supervisor_started"]))


def _launcher(home: Path) -> ProcessRef | None:
    """The agent's launcher. Supervisors are forked from it and share its command line:
    the launcher is the one whose parent is the agent."""
    agent = _agent(home)
    for proc in psutil.process_iter(["pid", "ppid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        ours = "gridrun.agent.launcher" in cmd and str(home) in cmd
        if ours and agent is not None and proc.info["ppid"] == agent.pid:
            return ProcessRef.of(int(proc.info["pid"]))
    return None


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("auto_resume", [False, True])
def test_the_experiment_dies_with_its_supervisor(grid, tmp_path: Path, auto_resume) -> None:
    project, marks = _project(tmp_path)
    flags = ["--auto_resume"] if auto_resume else []
    grid("run", "--name", "orphan", *flags, "barrier.py", str(marks), cwd=project)
    _wait_file(marks / "start orphan-exp0 0", "the script started")
    row = db_row(grid.home, "orphan-exp0")
    script = host_pid("orphan-exp0", "barrier.py")
    assert psutil.pid_exists(script)
    _kill(_agent(grid.home))
    _kill(_launcher(grid.home))
    _kill(_supervisor(row))
    # No grid command has run: nothing but the kernel and the witness acted.
    assert _gone(script), "the experiment ran on without its supervisor"
    assert not (marks / "done").exists()
    grid("status")  # brings an agent back, which reconciles
    if auto_resume:
        _wait_file(marks / "start orphan-exp0 1", "the resumed attempt started")
        (marks / "go orphan-exp0 1").touch()
    final = grid.wait("orphan", timeout=90)["experiments"][0]
    if auto_resume:
        assert final["status"] == "succeeded" and final["restarts"] == 1, final
        assert _done(marks) == ["orphan-exp0 1"]
    else:
        assert final["status"] == "failed" and "preempted" in final["error"], final
        assert _done(marks) == []
    no_leftovers(grid.home)


@pytest.mark.parametrize("auto_resume", [False, True])
def test_an_experiment_that_ended_before_its_supervisor_died_is_never_rerun(
    grid, tmp_path: Path, auto_resume
) -> None:
    project, marks = _project(tmp_path)
    flags = ["--auto_resume"] if auto_resume else []
    grid("run", "--name", "ended", *flags, "barrier.py", str(marks), cwd=project)
    _wait_file(marks / "start ended-exp0 0", "the script started")
    row = db_row(grid.home, "ended-exp0")
    exp_dir = grid.home / "experiments" / "ended-exp0"
    # The supervisor is frozen, so the script's end reaches only the witness ...
    _kill(_supervisor(row), signal.SIGSTOP)
    (marks / "go ended-exp0 0").touch()
    _wait_file(exp_dir / "witness.json", "the witness's record")
    # ... and the supervisor dies before it could record the exit, with the agent.
    _kill(_agent(grid.home))
    _kill(_supervisor(row))
    assert json.loads((exp_dir / "witness.json").read_text())["exit_code"] == 0
    final = grid.wait("ended", timeout=90)["experiments"][0]  # reconciled
    assert final["status"] == "succeeded" and final["exit_code"] == 0, final
    assert final["restarts"] == 0, final
    assert _done(marks) == ["ended-exp0 0"]
    assert not (marks / "start ended-exp0 1").exists(), "a finished experiment ran again"
    # Its artifacts were saved by the reconciling agent.
    assert "result.txt" in grid("artifacts", "ended").stdout
    no_leftovers(grid.home)


def test_random_kills_every_experiment_completes_once_or_is_preempted(grid, tmp_path: Path) -> None:
    """A sweep of 30 with the agent, the launcher and supervisors killed at random
    points; ``GRIDRUN_KILL_SWEEPS=N`` repeats it (half with ``--auto_resume``)."""
    sweeps = int(os.environ.get("GRIDRUN_KILL_SWEEPS", "2"))
    seed = int(os.environ.get("GRIDRUN_KILL_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    (grid.home / "config.yaml").write_text(
        "capacity: {cpus: 4}\nstop_grace_seconds: 3\nagent_idle_seconds: 30\n"
    )
    project, marks = _project(tmp_path)
    for sweep in range(sweeps):
        resume = sweep % 2 == 1
        name = f"sweep{sweep}"
        flags = ["--auto_resume", "--max_restarts", "10"] if resume else []
        grid("run", "--name", name, *flags, "barrier.py", str(marks), "--i", "range(30)",
             cwd=project)  # fmt: skip
        killed_before: dict[str, int] = {}
        killed_after: set[str] = set()
        seen: set[str] = set()
        deadline = time.monotonic() + 240
        while True:
            for path in sorted(marks.glob(f"start {name}-*")):
                if path.name in seen:
                    continue
                seen.add(path.name)
                _, exp, attempt = path.name.split()
                _act(grid, rng, marks, exp, int(attempt), killed_before, killed_after)
            data = grid.json("status", name)  # revives a dead agent, which reconciles
            assert isinstance(data, dict)
            if all(e["status"] in ("succeeded", "failed", "stopped") for e in data["experiments"]):
                break
            assert time.monotonic() < deadline, (f"seed {seed}", data)
            time.sleep(0.1)
        done = _done(marks)
        for e in data["experiments"]:
            ran = [d for d in done if d.split()[0] == e["name"]]
            why = (f"seed {seed}", e, ran, killed_before.get(e["name"]), e["name"] in killed_after)
            before = killed_before.get(e["name"], 0)
            if resume or not before:
                # Completed exactly once, on the attempt after its last preemption.
                assert e["status"] == "succeeded" and len(ran) == 1, why
                assert e["restarts"] == before and ran[0].split()[1] == str(before), why
            else:
                # Killed before it completed: preempted, and it never completed.
                assert e["status"] == "failed" and "preempted" in e["error"], why
                assert ran == [], why
        assert len(killed_before) + len(killed_after) > 0, f"seed {seed}: nothing was killed"
    no_leftovers(grid.home)


def _act(grid, rng, marks, exp, attempt, killed_before, killed_after) -> None:  # type: ignore[no-untyped-def]
    """At this experiment's barrier: let it complete, or kill around its completion."""
    go = marks / f"go {exp} {attempt}"
    choice = rng.random()
    row = wait_db(grid.home, exp, lambda r: r["supervisor_pid"] is not None)
    supervisor = _supervisor(row)
    if choice < 0.6 or attempt > 0:
        go.touch()
        return
    others = [p for p in (_agent(grid.home), _launcher(grid.home)) if rng.random() < 0.5]
    if choice < 0.8:  # killed before it completed
        for ref in others:
            _kill(ref)
        _kill(supervisor)
        killed_before[exp] = killed_before.get(exp, 0) + 1
        return
    # Killed after it completed, before its supervisor recorded the exit.
    _kill(supervisor, signal.SIGSTOP)
    go.touch()
    _wait_file(grid.home / "experiments" / exp / "witness.json", f"{exp}'s witness")
    for ref in others:
        _kill(ref)
    _kill(supervisor)
    killed_after.add(exp)


@pytest.mark.unit
def test_a_witness_record_of_an_earlier_attempt_is_never_taken_for_this_one(
    tmp_path: Path,
) -> None:
    from gridrun.backends.local.backend import WITNESS_FILE, read_witness

    class _Job:
        exp_dir = tmp_path

    record = {"witness": "123 456", "exit_code": 0, "supervisor_died": False}
    (tmp_path / WITNESS_FILE).write_text(json.dumps(record))
    assert read_witness(_Job(), "123 456") == record  # type: ignore[arg-type]
    assert read_witness(_Job(), "123 789") is None  # type: ignore[arg-type]
    (tmp_path / WITNESS_FILE).write_text("")  # opened, not yet written
    assert read_witness(_Job(), "123 456") is None  # type: ignore[arg-type]
