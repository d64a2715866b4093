"""Starting and waking the detached agent from the CLI.

One agent per GRID_HOME: it holds an exclusive ``flock`` on ``agent.lock`` for its
whole life, so "is an agent running?" is "is the lock held?", which the kernel
answers correctly even after ``kill -9`` (a pid file alone would lie). ``agent.pid``
holds a :class:`~gridrun.processes.ProcessRef` (pid and start time), checked before
every signal.
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
from gridrun.processes import ProcessRef, read_ref


def agent_running(home: GridHome) -> bool:
    try:
        fd = os.open(home.agent_lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return False
    try:
        # A shared probe: two probes at once (a finishing supervisor and the agent's
        # watchdog) must not each take the other for an agent.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def agent_ref(home: GridHome) -> ProcessRef | None:
    """The agent named by ``agent.pid``, if that very process still runs.

    A stale file (the agent died, its pid went to another program) names nothing:
    the start time no longer matches, so it is never signalled.
    """
    ref = read_ref(home.agent_pid)
    return ref if ref is not None and ref.alive() else None


def agent_pid(home: GridHome) -> int | None:
    ref = agent_ref(home)
    return ref.pid if ref else None


_SPAWNED: list[subprocess.Popen[bytes]] = []


def start_agent(home: GridHome) -> None:
    """Spawn the agent detached from this terminal; it outlives the CLI."""
    env = dict(os.environ, GRID_HOME=str(home.root))
    with open(home.agent_log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridrun.agent.daemon", str(home.root)],
            stdout=log,
            stderr=log,
            env=env,
            **detached_popen_kwargs(home.root),
        )
    # The agent outlives this process. A long-lived caller (the dashboard, tests that
    # submit in-process) keeps the handle so that a finished agent is reaped on the
    # next start instead of being dropped while alive (a ResourceWarning) or left a
    # zombie.
    _SPAWNED[:] = [p for p in _SPAWNED if p.poll() is None]
    _SPAWNED.append(proc)


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
    ref = read_ref(home.agent_pid)
    if ref is not None:
        ref.signal(signal.SIGUSR1)


def stop_agent(home: GridHome, timeout: float = 10.0) -> bool:
    """Ask the agent to exit (running experiments go on under their supervisors)."""
    ref = read_ref(home.agent_pid)
    if ref is None or not agent_running(home):
        return False
    if not ref.signal(signal.SIGTERM):
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and agent_running(home):
        time.sleep(0.05)
    return True
