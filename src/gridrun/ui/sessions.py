"""Sessions in the dashboard: a list, a start from an experiment, and the proxy.

``/sessions/<name>/...`` is the prefix each session's JupyterLab serves under
(``sessions/server.py``), so the proxy forwards paths unchanged to
``127.0.0.1:<port>``. The dashboard's own access rules decide who gets through
(``security.py``: its token or its session cookie, loopback Host, same-origin
writes); the proxy then adds the session's Jupyter token, so the dashboard's token
alone opens JupyterLab and the Jupyter token never reaches the browser. Because
the token authenticates the forwarded requests, Jupyter skips its own XSRF check:
the dashboard's ``SameSite=Strict`` cookie and its Origin checks stand in for it.
The browser's ``Origin`` and ``Referer`` are dropped upstream (they name the
dashboard's port, which Jupyter would refuse as a foreign origin), and so is the
dashboard's cookie (nothing of the dashboard reaches the session).

WebSockets (kernels, terminals) do not pass through the HTTP middleware, so the
same rules are checked here before the upgrade is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from gridrun.errors import GridError
from gridrun.home import GridHome
from gridrun.ui.security import TOKEN_COOKIE, Guard, is_loopback, require_csrf

# Hop-by-hop headers (RFC 9110 7.6.1) and what must not go upstream.
HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
DROP_UP = HOP | {"host", "origin", "referer", "authorization", "cookie", "content-length"}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _upstream(home: GridHome, name: str) -> tuple[int, str] | None:
    """The running session's port and Jupyter token; None when it is not running."""
    from gridrun.store import sessions as table
    from gridrun.store.db import Store
    from gridrun.store.models import SessionStatus

    store = Store.reader(home.db_path)
    try:
        s = table.find(store, name)
    finally:
        store.close()
    if s is None or s.status != SessionStatus.RUNNING or not s.port or not s.token:
        return None
    return s.port, s.token


def _cookies_without_ours(header: str) -> str:
    parts = [p.strip() for p in header.split(";") if p.strip()]
    return "; ".join(p for p in parts if not p.startswith(TOKEN_COOKIE))


def _not_running(name: str) -> Response:
    return PlainTextResponse(
        f"Session {name} is not running: `grid session resume {name}` starts it again.", 404
    )


async def proxy_http(request: Request) -> Response:
    """Forward one request to the session's JupyterLab, streaming the answer back."""
    import httpx

    name = request.path_params["name"]
    found = await run_in_threadpool(_upstream, request.app.state.home, name)
    if found is None:
        return _not_running(name)
    port, token = found
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in DROP_UP]
    cookies = _cookies_without_ours(request.headers.get("cookie", ""))
    if cookies:
        headers.append(("cookie", cookies))
    headers.append(("authorization", f"token {token}"))
    url = f"http://127.0.0.1:{port}{request.url.path}"
    if request.url.query:
        url += f"?{request.url.query}"
    client = _client(request)
    upstream = client.build_request(
        request.method, url, headers=headers, content=await request.body()
    )
    try:
        resp = await client.send(upstream, stream=True)
    except httpx.HTTPError:
        return _not_running(name)
    out = StreamingResponse(
        resp.aiter_raw(), status_code=resp.status_code, background=BackgroundTask(resp.aclose)
    )
    out.raw_headers = [
        (k, v) for k, v in resp.headers.raw if k.decode("latin-1").lower() not in HOP
    ]
    return out


def _client(request: Request) -> Any:
    import httpx

    client = getattr(request.app.state, "proxy_client", None)
    if client is None:
        client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, read=None))
        request.app.state.proxy_client = client
    return client


def websocket_allowed(ws: WebSocket, guard: Guard) -> bool:
    """The dashboard's rules for a WebSocket upgrade: loopback Host (when bound to
    loopback), the dashboard's session cookie, and an Origin of this same host."""
    host = ws.headers.get("host") or ""
    if guard.loopback_only and not is_loopback(host.rsplit(":", 1)[0]):
        return False
    port = ws.url.port or 80
    if guard.session_id(ws.cookies.get(f"{TOKEN_COOKIE}_{port}")) is None:
        return False
    origin = ws.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == host


async def proxy_ws(ws: WebSocket) -> None:
    """Forward a WebSocket (a kernel's channels, a terminal) both ways."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import WebSocketException
    from websockets.typing import Subprotocol

    name = ws.path_params["name"]
    if not websocket_allowed(ws, ws.app.state.guard):
        await ws.close(code=1008)
        return
    found = await run_in_threadpool(_upstream, ws.app.state.home, name)
    if found is None:
        await ws.close(code=1011)
        return
    port, token = found
    url = f"ws://127.0.0.1:{port}{ws.url.path}"
    if ws.url.query:
        url += f"?{ws.url.query}"
    headers = {"Authorization": f"token {token}"}
    cookies = _cookies_without_ours(ws.headers.get("cookie", ""))
    if cookies:
        headers["Cookie"] = cookies
    protocols = [Subprotocol(p) for p in ws.scope.get("subprotocols") or []]
    try:
        async with connect(
            url,
            additional_headers=headers,
            subprotocols=protocols or None,
            max_size=None,
            open_timeout=120,  # Jupyter answers once the kernel is up
        ) as up:
            await ws.accept(subprotocol=up.subprotocol)
            await _pump(ws, up)
    except (OSError, WebSocketException):
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(code=1011)


async def _pump(ws: WebSocket, up: Any) -> None:
    async def to_upstream() -> None:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            data = msg.get("bytes")
            await up.send(data if data is not None else msg.get("text") or "")

    async def to_browser() -> None:
        async for msg in up:
            if isinstance(msg, bytes):
                await ws.send_bytes(msg)
            else:
                await ws.send_text(msg)

    tasks = [asyncio.create_task(to_upstream()), asyncio.create_task(to_browser())]
    _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    for t in pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    with contextlib.suppress(Exception):
        await up.close()
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.close()  # the browser may be gone already


async def sessions_page(request: Request) -> Response:
    from gridrun.cli.session import instance_type
    from gridrun.store import sessions as table
    from gridrun.store.db import Store
    from gridrun.ui.app import _render

    home: GridHome = request.app.state.home

    def read() -> list[Any]:
        store = Store.reader(home.db_path)
        try:
            return table.live(store)
        finally:
            store.close()

    from gridrun.sessions.lifecycle import wants_vscode

    rows = [
        {
            "name": s.name,
            "status": s.status.value,
            "instance": instance_type(s),
            "run": s.from_run,
            "vscode": wants_vscode(s),
        }
        for s in await run_in_threadpool(read)
    ]
    return _render(request, "sessions.html", sessions=rows)


async def open_session(request: Request) -> Response:
    """POST /experiments/<name>/session: a session in that experiment's environment."""
    from gridrun.sessions.lifecycle import create
    from gridrun.sessions.prepare import SessionRequest, prepare
    from gridrun.store.db import Store

    refused = await require_csrf(request)
    if refused is not None:
        return refused
    home: GridHome = request.app.state.home
    ref = request.path_params["name"]

    def start() -> str:
        req = SessionRequest(from_ref=ref)
        prepared = prepare(req, home, lambda _w: None, lambda _q: True)
        store = Store(home.ensure().db_path)
        try:
            return create(store, home, req, prepared, lambda _line: None).name
        finally:
            store.close()

    try:
        name = await run_in_threadpool(start)
    except GridError as exc:
        return PlainTextResponse(str(exc), 400)
    return RedirectResponse(f"/sessions/{name}/lab", 303)
