"""Serving the dashboard with uvicorn, as ``grid ui`` does.

The access token is chosen once per ``GRID_HOME`` and kept in ``GRID_HOME/ui/token``
(0600), so a restarted dashboard keeps its URL and the owner can ask for it again
(``grid ui --print-url``) without it ever appearing on a command line, where any
local user could read it from ``/proc/PID/cmdline``. Each running server writes
``ui/servers/<pid>.json`` with its URL, removed when it stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from gridrun.errors import NotFoundError, StateError, UsageError
from gridrun.fsutil import atomic_write_text
from gridrun.home import GridHome


def url_of(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = socket.gethostname()
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def _token_path(home: GridHome) -> Path:
    return home.ui / "token"


def choose_token(home: GridHome, token: str | None) -> str:
    """The token this dashboard requires: the one given, else this GRID_HOME's own.

    A token is required on every address (see :mod:`gridrun.ui.security`); the stored
    one is created on first use, 0600 inside the owner-only ``GRID_HOME``.
    """
    if token is not None:
        if len(token) < 16:
            raise UsageError("--token must be at least 16 characters.")
        return token
    path = _token_path(home)
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    except OSError as exc:
        raise StateError(f"Cannot read the dashboard token {path} ({exc.strerror}).") from None
    if len(stored) >= 16:
        return stored
    fresh = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        atomic_write_text(path, fresh + "\n")
        path.chmod(0o600)
    except OSError as exc:
        raise StateError(
            f"Cannot save the dashboard token in {path} ({exc.strerror}).",
            hint="Free some space or pass --token (or set GRID_UI_TOKEN).",
        ) from None
    return fresh


def running_urls(home: GridHome) -> list[str]:
    """The URLs (with their tokens) of the dashboards serving this GRID_HOME now."""
    import psutil

    folder = home.ui / "servers"
    urls = []
    for record in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            info = json.loads(record.read_text())
            alive = psutil.pid_exists(int(info["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if alive:
            urls.append(str(info["url"]))
        else:
            with contextlib.suppress(OSError):
                record.unlink()  # a server that was killed left it
    return urls


@contextlib.contextmanager
def _server_record(home: GridHome, url: str) -> Iterator[None]:
    folder = home.ui / "servers"
    path = folder / f"{os.getpid()}.json"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"pid": os.getpid(), "url": url}))
        path.chmod(0o600)
    except OSError:
        pass  # only `--print-url` misses it; the dashboard itself works
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def serve(
    home: GridHome,
    host: str,
    port: int,
    token: str,
    announce: Callable[[str], None],
) -> None:
    """Serve until interrupted; ``announce`` gets the URL once the server is ready."""
    import uvicorn

    from gridrun.ui.app import create_app
    from gridrun.ui.security import is_loopback

    app = create_app(home, token, loopback_only=is_loopback(host))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        # A one-line error for a busy port or unknown address, not uvicorn's traceback.
        raise UsageError(
            f"Cannot listen on {host}:{port} ({exc.strerror or exc}).",
            hint="Pass another --port, or --port 0 for any free one.",
        ) from None
    # Listening before the URL is printed: a client that reads it can connect at once.
    sock.listen(2048)
    sock.set_inheritable(True)
    real_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    # The URL is printed once the app has warmed up (see app._warm_up): a client that
    # reads it meets a ready server.
    url = url_of(host, real_port, token)
    app.state.on_ready = lambda: announce(url)
    with _server_record(home, url):
        server.run(sockets=[sock])


def print_url_or_fail(home: GridHome) -> list[str]:
    """For ``grid ui --print-url``: the running dashboards' URLs, or a one-line error."""
    urls = running_urls(home)
    if not urls:
        raise NotFoundError(
            f"No dashboard is serving {home.root}.", hint="Start one with `grid ui`."
        )
    return urls
