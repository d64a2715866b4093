"""One Ray connection per GRID_HOME, shared by every experiment's supervisor.

gridrun runs each experiment under a small supervisor process (so that the agent can
die at any moment). A Ray driver per supervisor would cost each experiment a second
of ``ray.init`` and a hundred megabytes; instead the first supervisor that needs the
cluster starts this bridge, a detached process that holds the one connection, and
every supervisor sends it one-line JSON requests over ``GRID_HOME/ray-bridge.sock``.
A second bridge of the same GRID_HOME sees the lock taken and exits; a bridge with
nothing to do for :data:`IDLE_SECONDS` exits. The bridge keeps no state a restart
would lose: handles, log offsets and nodes are in files beside each experiment's
log, and the cluster keeps everything else, so a bridge killed at any moment is
replaced by the next request and carries on where it stopped.

Requests: ``{"op": "launch" | "poll" | "wait" | "stop" | "artifacts" | "release" | "ping",
...}`` (``wait``: a poll answered once the experiment is no longer running, see
:mod:`.watch`);
replies: ``{"ok": true, ...}`` or ``{"ok": false, "error": "...", "kind": "..."}``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

IDLE_SECONDS = 120.0
START_SECONDS = 300.0  # a busy machine can take minutes to start Python and Ray
SOCKET = "ray-bridge.sock"
LOCK = "ray-bridge.lock"
LOG = "ray-bridge.log"


class BridgeError(Exception):
    def __init__(self, message: str, kind: str = "BackendError") -> None:
        super().__init__(message)
        self.kind = kind


# ----------------------------------------------------------------- client side
def request(home_root: Path, payload: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    """Send one request to this GRID_HOME's bridge, starting the bridge if none answers."""
    path = Path(home_root) / SOCKET
    deadline = time.monotonic() + START_SECONDS
    next_spawn = 0.0
    while True:
        try:
            return _send(path, payload, timeout)
        except BlockingIOError:
            # The bridge's backlog is full (a sweep's supervisors all asking as it
            # starts, on a busy machine): it is there, so ask again in a moment.
            if time.monotonic() > deadline:
                raise BridgeError(f"The Ray bridge of {home_root} is too busy to answer.") from None
            time.sleep(0.05)
        except (FileNotFoundError, ConnectionRefusedError):
            now = time.monotonic()
            if now > deadline:
                raise BridgeError(
                    f"The Ray bridge of {home_root} did not start; see {Path(home_root) / LOG}."
                ) from None
            if now >= next_spawn:  # again later: a bridge that was leaving held the lock
                _spawn(Path(home_root))
                next_spawn = now + 3.0
            time.sleep(0.1)


def _send(path: Path, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(payload).encode() + b"\n")
        with sock.makefile("rb") as fh:
            line = fh.readline()
    if not line:
        raise ConnectionRefusedError("the bridge closed the connection")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise BridgeError(str(reply.get("error")), str(reply.get("kind") or "BackendError"))
    return reply


def _spawn(home_root: Path) -> None:
    with open(home_root / LOG, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridrun.backends.ray.bridge", str(home_root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=home_root,
            start_new_session=True,
            close_fds=True,
        )
    # The bridge outlives most callers, but a long-lived one (the agent, a test) must
    # neither drop a live child (a ResourceWarning) nor keep a zombie when the bridge
    # exits idle: a daemon thread reaps it the moment it ends.
    threading.Thread(target=proc.wait, name="ray-bridge-reaper", daemon=True).start()


# ----------------------------------------------------------------- server side
class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    # Every supervisor of a sweep may connect at once; the default backlog of 5 makes
    # the rest fail at once (EAGAIN) instead of waiting to be accepted.
    request_queue_size = 1024
    last_request = time.monotonic()


def _handler(core: Any, server: _Server) -> type[socketserver.StreamRequestHandler]:
    from gridrun.backends.ray.backend import Handle

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            server.last_request = time.monotonic()
            line = self.rfile.readline()
            try:
                req = json.loads(line)
                reply = {"ok": True, **_dispatch(core, req, Handle)}
            except Exception as exc:
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                reply = {"ok": False, "error": message, "kind": type(exc).__name__}
            self.wfile.write(json.dumps(reply).encode() + b"\n")

    return Handler


def _dispatch(core: Any, req: dict[str, Any], Handle: Any) -> dict[str, Any]:
    op = req["op"]
    if op == "ping":
        return {}
    if op == "launch":
        from gridrun.envs.pipconf import load_pip_config

        spec = dict(req["spec"], pip=load_pip_config())
        handle = core.launch(
            req["address"],
            Path(req["home"]),
            req["run"],
            Path(req["package"]),
            int(req["experiment_id"]),
            str(req["attempt"]),
            spec,
            req["options"],
        )
        return {"handle": handle.dumps()}
    handle = Handle.loads(req["handle"])
    if op in ("poll", "wait"):
        exp_dir, timeout = Path(req["exp_dir"]), float(req.get("timeout") or 30.0)
        if op == "wait":
            o = core.wait(handle, exp_dir, timeout, float(req.get("wait") or 10.0))
        else:
            o = core.poll(handle, exp_dir, timeout)
        return dict(o.to_dict())
    if op == "stop":
        core.stop(handle, float(req["grace"]))
        return {}
    if op == "artifacts":
        return {"names": core.collect_artifacts(handle, Path(req["dir"]))}
    if op == "release":
        core.release(handle)
        return {}
    raise ValueError(f"unknown op {op!r}")


def serve(home_root: Path) -> int:
    lock_fd = os.open(home_root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another bridge serves this GRID_HOME
    from gridrun.backends.ray.backend import RayBackendCore

    path = home_root / SOCKET
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    core = RayBackendCore()
    server = _Server(str(path), _handler(core, None))  # type: ignore[arg-type]
    server.RequestHandlerClass = _handler(core, server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        while time.monotonic() - server.last_request < IDLE_SECONDS:
            time.sleep(1.0)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # first, so no client talks to a bridge that is leaving
        server.shutdown()
        os.close(lock_fd)
    return 0


if __name__ == "__main__":
    sys.exit(serve(Path(sys.argv[1])))
