"""The ``unit`` marker's promise, checked: a unit test starts no process and no engine.

``scripts/check --fast`` runs only ``-m unit``, so it must stay fast whatever the
machine: a unit test that forks, spawns or execs fails with the process it tried to
start named, instead of silently slowing the fast tier down. Pytest's own plugins
start nothing during a test, so the guard only wraps the test's call and fixtures.

``GRIDRUN_PROBE_UNIT=FILE`` (by hand) records, for every test, whether it started a
process, without failing any: how the tests that qualify for the marker were found.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class ProcessStarted(AssertionError):
    pass


@contextmanager
def no_processes(on_start: Any = None) -> Iterator[list[str]]:
    """Within the block, starting a process calls ``on_start(what)`` (default: raise)."""
    started: list[str] = []

    def refuse(what: str) -> None:
        started.append(what)
        if on_start is None:
            raise ProcessStarted(f"a unit test may not start a process: {what}")
        on_start(what)

    real_init = subprocess.Popen.__init__
    real_fork = os.fork
    real_spawn = getattr(os, "posix_spawn", None)
    real_spawnp = getattr(os, "posix_spawnp", None)

    def popen_init(self: subprocess.Popen[Any], args: Any, *a: Any, **kw: Any) -> None:
        refuse(f"subprocess {args!r}"[:200])
        real_init(self, args, *a, **kw)

    def fork() -> int:
        refuse("os.fork()")
        return real_fork()

    def spawn(path: Any, argv: Any, *a: Any, **kw: Any) -> int:
        refuse(f"posix_spawn {argv!r}"[:200])
        assert real_spawn is not None
        return real_spawn(path, argv, *a, **kw)

    def spawnp(path: Any, argv: Any, *a: Any, **kw: Any) -> int:
        refuse(f"posix_spawnp {argv!r}"[:200])
        assert real_spawnp is not None
        return real_spawnp(path, argv, *a, **kw)

    subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]
    os.fork = fork
    if real_spawn is not None:
        os.posix_spawn = spawn
    if real_spawnp is not None:
        os.posix_spawnp = spawnp
    try:
        yield started
    finally:
        subprocess.Popen.__init__ = real_init  # type: ignore[method-assign]
        os.fork = real_fork
        if real_spawn is not None:
            os.posix_spawn = real_spawn
        if real_spawnp is not None:
            os.posix_spawnp = real_spawnp
