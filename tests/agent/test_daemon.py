"""The agent and its supervisors are daemons: nothing depends on the caller's folder."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from gridrun.agent.detach import DAEMON_UMASK

SCRIPT = """\
import os, sys
print("cwd-ok", os.path.isdir(os.getcwd()), flush=True)
import six
print("six", six.__version__, flush=True)
"""


def _agent_pid(home: Path, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int((home / "agent.pid").read_text().split()[0])  # "<pid> <start ticks>"
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError("no agent started")


def _umask(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    raise AssertionError("no Umask line")


def test_deleted_submission_folder_does_not_break_later_builds(grid, tmp_path: Path) -> None:
    # The agent must outlive the first run, so the second build is served by the agent
    # that was started from the folder that no longer exists.
    (grid.home / "config.yaml").write_text("agent_idle_seconds: 120\n")
    first = tmp_path / "scratch"
    first.mkdir()
    (first / "train.py").write_text(SCRIPT)
    (first / "requirements.txt").write_text("six==1.16.0\n")
    grid("run", "--name", "first", "train.py", cwd=first)
    pid = _agent_pid(grid.home)
    assert [e["status"] for e in grid.wait("first")["experiments"]] == ["succeeded"]

    # The daemon's own state: its folder, session, umask, stdin, descriptors.
    assert Path(os.readlink(f"/proc/{pid}/cwd")) == grid.home
    assert os.getsid(pid) == pid
    assert _umask(pid) == DAEMON_UMASK
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"

    shutil.rmtree(first)
    second = tmp_path / "other"
    second.mkdir()
    (second / "train.py").write_text(SCRIPT)
    (second / "requirements.txt").write_text("six==1.15.0\n")  # a new build, not a cache hit
    grid("run", "--name", "second", "train.py", cwd=second)
    final = grid.wait("second")
    assert [e["status"] for e in final["experiments"]] == ["succeeded"], grid(
        "logs", "second", check=False
    ).stdout
    assert _agent_pid(grid.home) == pid  # the same agent served both
    out = grid("logs", "second-exp0").stdout
    assert "six 1.15.0" in out and "cwd-ok True" in out
