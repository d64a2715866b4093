"""The agent can die at any moment: nothing is lost and nothing runs twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SLOW = """\
import os, sys, time
marker = sys.argv[1]
with open(marker, "a") as fh:
    fh.write(os.environ["GRID_EXPERIMENT_NAME"] + "\\n")
print("started", flush=True)
time.sleep(float(sys.argv[2]))
print("done", flush=True)
"""


def agent_pid(home: Path, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int((home / "agent.pid").read_text().split()[0])
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError("no agent started")


def test_agent_killed_mid_run_then_restarted(grid, tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "slow.py").write_text(SLOW)
    marker = tmp_path / "ran.txt"
    # One CPU: exp1 and exp2 stay queued while exp0 runs, so the restarted agent must
    # start them, and exp0 must finish under its supervisor while no agent exists.
    (grid.home / "config.yaml").write_text("capacity: {cpus: 1}\nagent_idle_seconds: 5\n")
    grid("run", "--name", "crashy", "slow.py", str(marker), "[2, 1, 1]", cwd=project)
    pid = agent_pid(grid.home)
    grid.wait_for_line("crashy-exp0", "started")
    os.kill(pid, signal.SIGKILL)
    # exp0 finishes under its supervisor with no agent alive: read from its log file,
    # not through a grid command, which would bring an agent back first.
    log = grid.home / "experiments" / "crashy-exp0" / "output.log"
    deadline = time.monotonic() + 120
    while "done" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "exp0 never finished without its agent"
        time.sleep(0.05)
    data = grid.json("status", "crashy")  # finds work and no agent: starts one
    assert data["experiments"][0]["status"] in ("succeeded", "running")
    final = grid.wait("crashy")
    assert [e["status"] for e in final["experiments"]] == ["succeeded"] * 3
    assert int((grid.home / "agent.pid").read_text().split()[0]) != pid
    lines = marker.read_text().split()
    assert sorted(lines) == ["crashy-exp0", "crashy-exp1", "crashy-exp2"], lines
    assert "done" in grid("logs", "crashy-exp0").stdout


def test_lost_supervisor_is_recorded_not_rerun(grid, tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "slow.py").write_text(SLOW)
    marker = tmp_path / "ran.txt"
    grid("run", "--name", "orphan", "slow.py", str(marker), "30", cwd=project)
    deadline = time.monotonic() + 60
    while True:
        exp = grid.json("status", "orphan")["experiments"][0]
        if exp["status"] == "running" and "started" in grid("logs", "orphan-exp0").stdout:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    import sqlite3

    conn = sqlite3.connect(grid.home / "grid.db")
    (pid,) = conn.execute("SELECT supervisor_pid FROM experiments").fetchone()
    conn.close()
    os.kill(pid, signal.SIGKILL)
    data = grid.wait("orphan", timeout=30)
    exp = data["experiments"][0]
    assert exp["status"] == "failed" and "lost" in exp["error"]
    assert marker.read_text().split() == ["orphan-exp0"]


def test_two_runs_at_once_build_the_same_environment(grid, tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "requirements.txt").write_text("six\n")
    (project / "a.py").write_text("import six; print('six ok')\n")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gridrun", "run", "--name", f"twin{i}", "--follow", "a.py"],
            cwd=project,
            env=grid.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "six ok" in out
    envs = [d for d in (grid.home / "envs").iterdir() if d.is_dir() and not d.name.startswith(".")]
    assert len(envs) == 1, envs
    keys = {grid.json("status", f"twin{i}")["env_key"] for i in range(2)}
    assert len(keys) == 1


@pytest.mark.parametrize("signame", ["SIGTERM"])
def test_agent_exits_when_idle_and_restarts_on_demand(grid, tmp_path: Path, signame) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "ok.py").write_text("print('ok')\n")
    (grid.home / "config.yaml").write_text("agent_idle_seconds: 0.5\n")
    grid("run", "--name", "one", "--follow", "ok.py", cwd=project)
    deadline = time.monotonic() + 20
    while "not running" not in grid("agent", "status").stdout:
        assert time.monotonic() < deadline, "agent did not exit when idle"
        time.sleep(0.2)
    grid("run", "--name", "two", "--follow", "ok.py", cwd=project)
    assert grid.json("status", "two")["experiments"][0]["status"] == "succeeded"
