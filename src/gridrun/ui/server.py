"""Serving the dashboard with uvicorn, as ``grid ui`` does."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable

from gridrun.errors import UsageError
from gridrun.home import GridHome
from gridrun.ui.security import is_loopback


def url_of(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = socket.gethostname()
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def choose_token(host: str, token: str | None) -> str | None:
    """No token on loopback unless asked for; anywhere else one is always required."""
    if token is not None:
        if len(token) < 16:
            raise UsageError("--token must be at least 16 characters.")
        return token
    return None if is_loopback(host) else secrets.token_urlsafe(24)


def serve(
    home: GridHome,
    host: str,
    port: int,
    token: str | None,
    announce: Callable[[str], None],
) -> None:
    """Serve until interrupted; ``announce`` gets the URL once the server is ready."""
    import uvicorn

    from gridrun.ui.app import create_app

    app = create_app(home, token)
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
    server.run(sockets=[sock])
