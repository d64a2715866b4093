"""Preemption, failure and stop, each recorded as itself; auto-resume in the same directory.

Every test runs real processes through the real ``grid`` CLI. The store is read
directly (sqlite3) where a grid command would itself wake or heal the agent.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from resume_helpers import CHECKPOINTING, host_pid, ledger_lines, no_leftovers, wait_db


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    (p / "ckpt.py").write_text(CHECKPOINTING)
    return p


def exp_json(grid, name: str) -> dict:
    data = grid.json("status", name)
    return data["experiments"][0]


def test_supervisor_sigkilled_resumes_from_checkpoint(grid, project: Path, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    grid("run", "--name", "kil", "--auto_resume", "ckpt.py", str(ledger), "40", cwd=project)
    row = wait_db(grid.home, "kil-exp0", lambda r: r["status"] == "running", what="running")
    grid.wait_for_line("kil-exp0", "step 3")
    os.kill(row["supervisor_pid"], signal.SIGKILL)  # the machine lost it, mid-run
    final = grid.wait("kil", timeout=90)["experiments"][0]
    assert final["status"] == "succeeded", final
    assert final["restarts"] == 1 and final["preemptions"] == 1 and final["failure_retries"] == 0
    lines = ledger_lines(ledger)
    starts = [ln.split() for ln in lines if ln.startswith("start")]
    assert [s[1] for s in starts] == ["0", "1"], lines  # GRID_RESTART_COUNT 0, then 1
    assert int(starts[1][2]) >= 3, f"restarted from scratch, not its checkpoint: {lines}"
    assert lines.count("finished") == 1, lines
    # The first attempt's own-session child went with its lost supervisor: no process
    # with this GRID_HOME in its environment is left (the pid in the ledger is the
    # experiment's namespace's, not the host's).
    no_leftovers(grid.home)
    out = grid("status", "kil").stdout
    assert "Restarts" in out and "1 (1 preempted)" in out
    assert (grid.home / "experiments" / "kil-exp0" / "artifacts" / "ckpt" / "state.json").exists()


def test_sigterm_inside_grace_is_a_preemption_not_a_success(
    grid, project: Path, tmp_path: Path
) -> None:
    """SIGTERM to the supervisor (a machine shutting down): exit 0 within the grace resumes."""
    ledger = tmp_path / "ledger.txt"
    grid("run", "--name", "inside", "--auto_resume", "ckpt.py", str(ledger), "40", cwd=project)
    row = wait_db(grid.home, "inside-exp0", lambda r: r["status"] == "running")
    grid.wait_for_line("inside-exp0", "step 2")
    os.kill(row["supervisor_pid"], signal.SIGTERM)
    final = grid.wait("inside", timeout=90)["experiments"][0]
    assert final["status"] == "succeeded" and final["restarts"] == 1, final
    lines = ledger_lines(ledger)
    assert lines[1].startswith("sigterm"), lines  # it saved and exited 0 ...
    assert lines[2].split()[1] == "1" and int(lines[2].split()[2]) >= 2  # ... then resumed
    assert lines.count("finished") == 1
    no_leftovers(grid.home)


def test_sigterm_to_process_group_is_a_preemption(grid, project: Path, tmp_path: Path) -> None:
    """A spot reclaim SIGTERMs the experiment's processes, not gridrun: exit -15 resumes."""
    (project / "die.py").write_text(
        "import os, signal, sys, time\n"
        "print('up', os.environ['GRID_RESTART_COUNT'], flush=True)\n"
        "if os.environ['GRID_RESTART_COUNT'] == '0':\n"
        "    time.sleep(600)\n"
    )
    grid("run", "--name", "pg", "--auto_resume", "die.py", cwd=project)
    grid.wait_for_line("pg-exp0", "up 0")
    pid = int((grid.home / "experiments" / "pg-exp0" / "backend.ref").read_text().split()[0])
    os.killpg(pid, signal.SIGTERM)
    final = grid.wait("pg", timeout=60)["experiments"][0]
    assert final["status"] == "succeeded" and final["restarts"] == 1, final
    assert "up 1" in grid("logs", "pg-exp0").stdout


def test_sigterm_outside_grace_is_killed_then_resumed(grid, project: Path, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    (grid.home / "config.yaml").write_text("stop_grace_seconds: 1\nagent_idle_seconds: 5\n")
    # Ignores SIGTERM: the grace period runs out and it is killed, then resumed.
    args = ("ckpt.py", str(ledger), "30", "0.3", "ignore-term")
    grid("run", "--name", "outside", "--auto_resume", *args, cwd=project)
    row = wait_db(grid.home, "outside-exp0", lambda r: r["status"] == "running")
    grid.wait_for_line("outside-exp0", "step 2")
    t0 = time.monotonic()
    out = grid("preempt", "outside-exp0").stdout
    assert time.monotonic() - t0 >= 1.0  # waited the grace period before killing
    assert "preempted" in out and "restart 1" in out, out
    final = grid.wait("outside", timeout=90)["experiments"][0]
    assert final["status"] == "succeeded" and final["restarts"] == 1, final
    lines = ledger_lines(ledger)
    assert not any(ln.startswith("sigterm") for ln in lines)
    assert [ln.split()[1] for ln in lines if ln.startswith("start")] == ["0", "1"]
    assert lines.count("finished") == 1
    assert (
        row["supervisor_pid"]
        != wait_db(grid.home, "outside-exp0", lambda r: True)["supervisor_pid"]
    )
    no_leftovers(grid.home)


SELF_PREEMPT = (
    "import os, signal\nprint('attempt', os.environ['GRID_RESTART_COUNT'], flush=True)\n"
    "os.kill(os.getpid(), signal.SIGTERM)\n"
)


def test_max_restarts_exhausted(grid, project: Path) -> None:
    (project / "self.py").write_text(SELF_PREEMPT)
    grid("run", "--name", "maxr", "--auto_resume", "--max_restarts", "2", "self.py", cwd=project)
    final = grid.wait("maxr", timeout=90)["experiments"][0]
    assert final["status"] == "failed", final
    assert final["restarts"] == 2 and final["preemptions"] == 3 and final["ending"] == "preempted"
    assert final["error"].startswith("preempted 3 times (--max_restarts 2)"), final["error"]
    logs = grid("logs", "maxr-exp0").stdout
    assert all(f"attempt {i}" in logs for i in range(3)) and "attempt 3" not in logs
    assert "preempted 3 times" in grid("status", "maxr").stdout


def test_preemption_without_auto_resume_fails_as_preempted(grid, project: Path) -> None:
    (project / "self.py").write_text(SELF_PREEMPT)
    grid("run", "--name", "noar", "self.py", cwd=project)
    final = grid.wait("noar", timeout=60)["experiments"][0]
    assert final["status"] == "failed" and final["ending"] == "preempted", final
    assert final["error"].startswith("preempted") and final["restarts"] == 0


def test_code_failure_retried_apart_from_preemptions(grid, project: Path) -> None:
    (project / "flaky.py").write_text(
        "import os, sys\nn = int(os.environ['GRID_RESTART_COUNT'])\n"
        "print('try', n, flush=True)\nsys.exit(0 if n == 2 else 3)\n"
    )
    grid("run", "--name", "flaky", "--retries_on_failure", "2", "flaky.py", cwd=project)
    final = grid.wait("flaky", timeout=60)["experiments"][0]
    assert final["status"] == "succeeded", final
    assert final["failure_retries"] == 2 and final["preemptions"] == 0
    grid("run", "--name", "broken", "--retries_on_failure", "1", "flaky.py", "x", cwd=project)
    # A code failure never resumes without --retries_on_failure, even under auto-resume.
    grid("run", "--name", "once", "--auto_resume", "flaky.py", cwd=project)
    assert grid.wait("once", timeout=60)["experiments"][0]["status"] == "failed"
    broken = grid.wait("broken", timeout=60)["experiments"][0]
    assert broken["status"] == "failed" and broken["failure_retries"] == 1
    assert broken["exit_code"] == 3 and "failed 2 times" in broken["error"]


def test_grid_stop_racing_requeues(grid, project: Path) -> None:
    """50 stops, each racing an experiment that is preempted and requeued in a loop.

    Five runs of ten experiments rather than one of fifty: the same 50 races, with at
    most ten restart loops at once, so a 2-core machine is not saturated by the loops
    and the stops still land at random points of a requeue.
    """
    (project / "loop.py").write_text(
        "import os, signal, subprocess, time\n"
        "subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
        "time.sleep(0.05 * (int(os.environ['GRID_RESTART_COUNT']) % 4))\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
    )
    (grid.home / "config.yaml").write_text(
        "stop_grace_seconds: 2\nagent_idle_seconds: 5\ncapacity: {cpus: 10}\n"
    )
    for round_ in range(5):
        run = f"race{round_}"
        grid(
            "run",
            "--name",
            run,
            "--auto_resume",
            "--max_restarts",
            "100000",
            "--cpus",
            "0.5",
            "loop.py",
            "--i",
            "range(10)",
            cwd=project,
        )
        for i in range(10):
            name = f"{run}-exp{i}"
            wait_db(grid.home, name, lambda r: r["restarts"] >= 1, timeout=120, what="a requeue")
            grid("stop", "experiment", name)
            rec = exp_json(grid, name)
            assert rec["status"] == "stopped", rec
        data = grid.wait(run, timeout=60)
        assert {e["status"] for e in data["experiments"]} == {"stopped"}
        no_leftovers(grid.home, timeout=15)
        time.sleep(1.5)  # a requeue that lost the race would have started something by now
        assert {e["status"] for e in grid.json("status", run)["experiments"]} == {"stopped"}
        no_leftovers(grid.home, timeout=1)


def test_child_in_its_own_session_is_killed(grid, project: Path, tmp_path: Path) -> None:
    (project / "daemon.py").write_text(
        "import subprocess, sys, time\n"
        "p = subprocess.Popen(['setsid', 'sleep', '1000'])\n"
        "open(sys.argv[1], 'w').write(str(p.pid))\n"
        "print('spawned', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
    )
    stop_pid = tmp_path / "stop.pid"
    grid("run", "--name", "sess", "daemon.py", str(stop_pid), "600", cwd=project)
    grid.wait_for_line("sess-exp0", "spawned")
    child = host_pid("sess-exp0", "sleep 1000")  # its pid on the host, not in its namespace
    assert _alive(child)
    grid("stop", "run", "sess")
    assert exp_json(grid, "sess")["status"] == "stopped"
    assert not _alive(child), "a child in its own session survived grid stop"
    # And at a normal exit.
    exit_pid = tmp_path / "exit.pid"
    (project / "exits.py").write_text(
        "import os, subprocess, sys, time\n"
        "p = subprocess.Popen(['setsid', 'sleep', '1000'])\n"
        "print('spawned', flush=True)\n"
        "while not os.path.exists(sys.argv[1]):\n"
        "    time.sleep(0.02)\n"
    )
    grid("run", "--name", "sess2", "exits.py", str(exit_pid), cwd=project)
    grid.wait_for_line("sess2-exp0", "spawned")
    child = host_pid("sess2-exp0", "sleep 1000")
    exit_pid.touch()  # the script may exit now
    grid.wait("sess2")
    assert exp_json(grid, "sess2")["status"] == "succeeded"
    assert not _alive(child), "a child in its own session survived the exit"
    no_leftovers(grid.home)


def test_agent_killed_while_experiments_pending(grid, project: Path, tmp_path: Path) -> None:
    """No grid command after the kill: the pending experiments still start and finish."""
    (grid.home / "config.yaml").write_text("capacity: {cpus: 1}\nagent_idle_seconds: 5\n")
    (project / "short.py").write_text("import time\nprint('hi', flush=True)\ntime.sleep(1)\n")
    grid("run", "--name", "orph", "short.py", "--i", "[1, 2, 3]", cwd=project)
    wait_db(grid.home, "orph-exp0", lambda r: r["status"] == "running")
    agent = int((grid.home / "agent.pid").read_text().split()[0])
    os.kill(agent, signal.SIGKILL)
    for i in range(3):
        wait_db(grid.home, f"orph-exp{i}", lambda r: r["status"] == "succeeded", timeout=60)


def test_agent_killed_with_nothing_running_is_brought_back(grid, project: Path) -> None:
    """The agent's helper sees it die and starts a new one while work waits."""
    (project / "short.py").write_text("print('hi')\n")
    (grid.home / "config.yaml").write_text("agent_idle_seconds: 5\n")
    grid("run", "--name", "first", "--follow", "short.py", cwd=project)  # agent + helper up
    agent = int((grid.home / "agent.pid").read_text().split()[0])
    os.kill(agent, signal.SIGSTOP)  # frozen: it cannot start what is submitted next
    try:
        grid("run", "--name", "second", "short.py", cwd=project)
    finally:
        os.kill(agent, signal.SIGKILL)
    wait_db(grid.home, "second-exp0", lambda r: r["status"] == "succeeded", timeout=60)


def test_grid_logs_follow_brings_a_dead_agent_back(grid, project: Path) -> None:
    (project / "short.py").write_text("print('followed')\n")
    grid("run", "--name", "fol", "--follow", "short.py", cwd=project)
    agent = int((grid.home / "agent.pid").read_text().split()[0])
    os.kill(agent, signal.SIGSTOP)  # frozen, holding the agent lock
    grid("run", "--name", "fol2", "short.py", cwd=project)
    # `grid run` may have started another agent, which waits for the lock: killed
    # first, while the frozen one still holds it, so none of them starts anything.
    for other in _agents(grid.home):
        if other != agent:
            os.kill(other, signal.SIGKILL)
    os.kill(agent, signal.SIGKILL)
    # Kill the helper too, so only `grid logs -f` can bring an agent back.
    _kill_helpers(grid.home)
    out = grid("logs", "-f", "fol2-exp0", timeout=60).stdout
    assert "followed" in out


def test_reused_pid_is_never_signalled(grid, project: Path, tmp_path: Path) -> None:
    """A stale agent.pid or supervisor pid naming another program must not reach it."""
    import sqlite3
    import subprocess

    bystander = subprocess.Popen(["sleep", "600"])  # dies of SIGUSR1 or SIGTERM
    try:
        (project / "ok.py").write_text("print('ok')\n")
        # A stale agent.pid: the bystander's pid with another start time, and a bare pid.
        for stale in (f"{bystander.pid} 1", f"{bystander.pid}"):
            (grid.home / "agent.pid").write_text(stale)
            grid("run", "--follow", "ok.py", cwd=project)
            grid("agent", "stop")
            assert bystander.poll() is None, f"agent.pid {stale!r} signalled another program"
        # A running experiment whose supervisor pid was recycled by the bystander.
        (project / "slow.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
        grid("run", "--name", "recyc", "slow.py", cwd=project)
        grid.wait_for_line("recyc-exp0", "up")
        conn = sqlite3.connect(grid.home / "grid.db")
        with conn:
            conn.execute(
                "UPDATE experiments SET supervisor_pid = ? WHERE name = 'recyc-exp0'",
                (bystander.pid,),
            )
        conn.close()
        grid("stop", "run", "recyc")
        grid("preempt", "recyc-exp0", check=False)
        time.sleep(0.5)
        assert bystander.poll() is None, "a recycled supervisor pid was signalled"
        # The agent takes the supervisor it cannot identify for lost (a preemption) or
        # the stop settles it; either way it ends, through the experiment's processes.
        assert exp_json(grid, "recyc")["status"] in ("stopped", "failed")
        no_leftovers(grid.home)
    finally:
        bystander.kill()
        bystander.wait()


def test_use_spot_means_auto_resume_with_a_note(grid, project: Path, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    out = grid("run", "--name", "spot", "--use_spot", "ckpt.py", str(ledger), "60", cwd=project)
    assert "NOTE --use_spot: no spot machines here" in " ".join(out.stderr.split())
    grid.wait_for_line("spot-exp0", "step 2")
    assert "restart 1" in grid("preempt", "spot-exp0").stdout
    final = grid.wait("spot", timeout=60)
    assert final["auto_resume"] is True and final["experiments"][0]["restarts"] == 1


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _agents(home: Path) -> list[int]:
    """Every agent process of this GRID_HOME, a frozen one and any waiting for its lock."""
    import psutil

    out = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "gridrun.agent.daemon" in cmd and str(home) in cmd:
            out.append(int(proc.info["pid"]))
    return out


def _kill_helpers(home: Path) -> None:
    import psutil

    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "gridrun.agent.launcher" in cmd and str(home) in cmd:
            proc.kill()
