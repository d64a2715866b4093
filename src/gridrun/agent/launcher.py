"""Starting supervisors fast: forked from a single-threaded, pre-imported process.

Starting each supervisor as a fresh interpreter costs about 100 ms (interpreter
start-up, imports, compiling) per experiment, which dominates a sweep of short
experiments. The agent itself cannot fork safely (it runs build threads), so it keeps
one small single-threaded helper, this module, that imports the supervisor's code once
and forks a detached supervisor per request. A forked supervisor is an ordinary
process in its own session: it survives the helper and the agent alike.

Protocol: one line per experiment on stdin, ``<experiment id> <claim token> <log path>``,
and ``quit`` when the agent exits on purpose. The helper is also the agent's watchdog:
end of file without ``quit`` means the agent died, and the helper starts a new one if
work is waiting.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import IO

from gridrun.agent.detach import close_other_fds, detached_popen_kwargs, settle_daemon
from gridrun.home import GridHome

QUIT = b"quit\n"


class Launcher:
    """The agent's handle on the helper; falls back to a fresh interpreter if it fails."""

    def __init__(self, home: GridHome) -> None:
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None

    def _helper(self) -> IO[bytes]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gridrun.agent.launcher", str(self.home.root)],
                stdin=subprocess.PIPE,
                cwd=str(self.home.root),
                close_fds=True,
            )
        assert self.proc.stdin is not None
        return self.proc.stdin

    def launch(self, exp_id: int, token: str, log_path: Path) -> None:
        self.launch_many([(exp_id, token, log_path)])

    def launch_many(self, requests: list[tuple[int, str, Path]]) -> None:
        """Start a supervisor for each (experiment id, claim token, log path), in one write."""
        if not requests:
            return
        data = b"".join(f"{i} {token} {path}\n".encode() for i, token, path in requests)
        for _ in range(2):
            try:
                pipe = self._helper()
                pipe.write(data)
                pipe.flush()
                return
            except (BrokenPipeError, OSError):
                self.proc = None
        for exp_id, token, log_path in requests:
            spawn_supervisor(self.home, exp_id, token, log_path)

    def start(self) -> None:
        """Start the helper now: it is also the agent's watchdog (see :func:`main`)."""
        try:
            self._helper()
        except OSError:
            self.proc = None

    def close(self) -> None:
        """The agent exits on purpose: tell the helper not to bring it back."""
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(QUIT)
                self.proc.stdin.close()
            except OSError:
                pass


def spawn_supervisor(home: GridHome, exp_id: int, token: str, log_path: Path) -> None:
    """The slow, always-safe way: a new interpreter."""
    with open(log_path, "ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", "gridrun.agent.supervisor", str(home.root), str(exp_id), token],
            stdout=out,
            stderr=out,
            **detached_popen_kwargs(home.root),
        )


def _fork_supervisor(home: GridHome, exp_id: int, token: str, log_path: str) -> None:
    if os.fork() != 0:
        return
    # In the child: a detached supervisor with its own session and output file.
    code = 1
    try:
        os.setsid()
        settle_daemon(home.root)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # it waits for its experiment
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        close_other_fds()  # devnull and out too: they are 0, 1 and 2 now
        from gridrun.agent.supervisor import supervise

        code = supervise(home, exp_id, token)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str]) -> int:
    home = GridHome(Path(argv[0]))
    # Pre-import what every supervisor needs, once. Whatever a supervisor imports
    # itself costs every experiment: PyYAML alone (gridrun.config) was ~40% of a
    # supervisor's CPU with 100,000 queued (issue 12).
    import psutil  # noqa: F401
    import yaml  # noqa: F401

    import gridrun.agent.control
    import gridrun.agent.supervisor
    import gridrun.backends.local
    import gridrun.config
    import gridrun.datastores.nsexec
    import gridrun.metrics.csvlog
    import gridrun.metrics.ingest
    import gridrun.metrics.tfevents
    import gridrun.project
    import gridrun.project.artifacts
    import gridrun.project.materialize
    import gridrun.runenv
    from gridrun.datastores.mount import isolation_mode

    # Parsed once here, checked by each supervisor with one stat (gridrun.config).
    try:
        gridrun.config.load_machine_config(home.config_path)
    except Exception:
        pass  # each supervisor reports it, as before
    # Probe once whether private mount namespaces work (a subprocess, ~0.1 s): every
    # forked supervisor inherits the cached answer instead of probing again.
    isolation_mode()

    # Every forked supervisor shares these pages until it writes to them: a garbage
    # collection that walks the pre-imported objects would copy them all, in each one.
    gc.freeze()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # it ends with the agent's pipe
    for raw in sys.stdin.buffer:
        if raw == QUIT:
            return 0
        parts = raw.decode().rstrip("\n").split(" ", 2)
        if len(parts) != 3:
            continue
        _fork_supervisor(home, int(parts[0]), parts[1], parts[2])
    # End of file without a goodbye: the agent died (SIGKILL, a crash). If work waits,
    # start a new one, so that pending experiments never wait for a user command.
    _revive_agent(home)
    return 0


def _revive_agent(home: GridHome) -> None:
    from gridrun.agent.control import agent_running, start_agent
    from gridrun.store.db import Store

    time.sleep(0.2)  # an agent that exits on purpose takes its lock again first
    try:
        store = Store(home.db_path)
        try:
            if store.has_active_work() and not agent_running(home):
                start_agent(home)
        finally:
            store.close()
    except Exception:
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
