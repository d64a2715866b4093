"""Starting and waking the detached agent from the CLI.

One agent per GRID_HOME: it holds an exclusive ``flock`` on ``agent.lock`` for its
whole life, so "is an agent running?" is "is the lock held?", which the kernel
answers correctly even after ``kill -9`` (a pid file alone would lie).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time

from gridrun.agent.detach import detached_popen_kwargs
from gridrun.home import GridHome


def agent_running(home: GridHome) -> bool:
    try:
        fd = os.open(home.agent_lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def agent_pid(home: GridHome) -> int | None:
    try:
        return int(home.agent_pid.read_text())
    except (OSError, ValueError):
        return None


def start_agent(home: GridHome) -> None:
    """Spawn the agent detached from this terminal; it outlives the CLI."""
    env = dict(os.environ, GRID_HOME=str(home.root))
    with open(home.agent_log, "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "gridrun.agent.daemon", str(home.root)],
            stdout=log,
            stderr=log,
            env=env,
            **detached_popen_kwargs(home.root),
        )


def ensure_agent(home: GridHome, wait: float = 0.0) -> None:
    """Wake the running agent, or start one. ``wait`` seconds for it to take the lock."""
    if agent_running(home):
        wake_agent(home)
        return
    start_agent(home)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not agent_running(home):
        time.sleep(0.02)


def wake_agent(home: GridHome) -> None:
    pid = agent_pid(home)
    if pid:
        try:
            os.kill(pid, signal.SIGUSR1)
        except OSError:
            pass


def stop_agent(home: GridHome, timeout: float = 10.0) -> bool:
    """Ask the agent to exit (running experiments go on under their supervisors)."""
    pid = agent_pid(home)
    if not pid or not agent_running(home):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and agent_running(home):
        time.sleep(0.05)
    return True
