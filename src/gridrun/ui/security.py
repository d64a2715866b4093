"""Who may use the dashboard, and which requests may change state.

Two threats, two guards:

* Another user or machine reaching the port. On loopback, the Host header must name
  loopback (a DNS-rebinding page cannot then read the API). Bound anywhere else, a
  token is required, the way Jupyter does it: the printed URL carries ``?token=``,
  the first visit trades it for an HttpOnly cookie, scripts can send
  ``Authorization: token ...``.
* A page on another site making the browser POST here (stop a run, start one).
  Every POST must carry the per-server CSRF token (a hidden form field or the
  ``X-CSRF-Token`` header), which another origin cannot read, and must not come
  with a foreign ``Origin`` or ``Sec-Fetch-Site: cross-site``.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_COOKIE = "gridrun_token"  # suffixed with the port: browsers share cookies across ports
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Guard:
    """The dashboard's access rules for one server process."""

    token: str | None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def token_ok(self, given: str | None) -> bool:
        return bool(self.token and given and hmac.compare_digest(given, self.token))

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given and hmac.compare_digest(given, self.csrf))


def cookie_name(request: Request) -> str:
    """One cookie per port, so two dashboards on one host never overwrite each other."""
    return f"{TOKEN_COOKIE}_{request.url.port or 80}"


class AccessMiddleware:
    """Applies :class:`Guard` to every HTTP request before the app sees it."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._check(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check(self, request: Request) -> Response | None:
        g = self.guard
        host = (request.headers.get("host") or "").rsplit(":", 1)[0]
        if g.token is None:
            if not is_loopback(host):
                return PlainTextResponse(
                    f"Host '{host}' refused: this dashboard serves localhost only.", 403
                )
        else:
            given = request.query_params.get("token")
            if g.token_ok(given) and request.method in SAFE_METHODS:
                # Trade the URL's token for a cookie and drop it from the address bar.
                params = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = URL(scope={**request.scope, "query_string": b""}).path
                if params:
                    target += "?" + urlencode(params)
                resp = RedirectResponse(target, 303)
                resp.set_cookie(cookie_name(request), g.token, httponly=True, samesite="strict")
                return resp
            auth = request.headers.get("authorization", "")
            header_token = auth[6:].strip() if auth.lower().startswith("token ") else None
            cookie = request.cookies.get(cookie_name(request))
            if not (g.token_ok(cookie) or g.token_ok(header_token)):
                return PlainTextResponse(
                    "Forbidden: open the URL `grid ui` printed (it ends in ?token=...).", 403
                )
        if request.method not in SAFE_METHODS:
            return self._check_post(request, host)
        return None

    def _check_post(self, request: Request, host: str) -> Response | None:
        if request.headers.get("sec-fetch-site") == "cross-site":
            return PlainTextResponse("Cross-site request refused.", 403)
        origin = request.headers.get("origin")
        if origin and origin != "null":
            if urlsplit(origin).netloc != request.headers.get("host"):
                return PlainTextResponse(f"Request from origin {origin} refused.", 403)
        elif origin == "null":
            return PlainTextResponse("Request from an opaque origin refused.", 403)
        # The CSRF token travels in a header (scripts) or the form body; the form body is
        # checked by the endpoint after parsing (see ``require_csrf``), headers here.
        if self.guard.csrf_ok(request.headers.get(CSRF_HEADER)):
            request.scope["gridrun.csrf_checked"] = True
        return None


async def require_csrf(request: Request) -> Response | None:
    """A 403 unless the request carried the CSRF token; call first in every POST."""
    if request.scope.get("gridrun.csrf_checked"):
        return None
    guard: Guard = request.app.state.guard
    form = await request.form()
    value = form.get(CSRF_FIELD)
    if isinstance(value, str) and guard.csrf_ok(value):
        return None
    return PlainTextResponse("Missing or wrong CSRF token: reload the page and try again.", 403)
