"""What makes the agent and its supervisors proper daemons.

A background process started from a shell inherits that shell's working directory,
umask, controlling terminal and open files. Each of these has bitten gridrun users: a
scratch folder deleted after ``grid run`` left the agent in a directory that no longer
exists, so every later build on that GRID_HOME failed with ``FileNotFoundError`` (uv and
Python both resolve paths against the working directory). So every detached process
here starts in GRID_HOME, in its own session, with a fixed umask, stdin from
``/dev/null`` and no file descriptors but 0, 1 and 2.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

# 022 like systemd's default: experiments' artifacts readable as users expect; GRID_HOME
# itself stays private through its own 0700 mode, not through the umask.
DAEMON_UMASK = 0o022


def detached_popen_kwargs(root: Path) -> dict[str, Any]:
    """``subprocess.Popen`` arguments for a daemon serving GRID_HOME ``root``."""
    return {
        "cwd": str(root),
        "stdin": subprocess.DEVNULL,
        "start_new_session": True,
        "close_fds": True,
        "umask": DAEMON_UMASK,
    }


def settle_daemon(root: Path) -> None:
    """In-process half of the same promise, for a daemon started some other way."""
    os.chdir(root)
    os.umask(DAEMON_UMASK)


def close_other_fds(keep: tuple[int, ...] = (0, 1, 2)) -> None:
    """Close every inherited descriptor but ``keep`` (a forked child's leftovers)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
