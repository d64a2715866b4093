"""Who may use the dashboard, and which requests may change state.

Three threats, three guards:

* Another user of this machine, or an experiment, reaching the port. A token is
  required on every address, loopback included, the way Jupyter does it: the printed
  URL carries ``?token=``, the first visit trades it for an HttpOnly session cookie,
  scripts send ``Authorization: token ...``. The token lives in
  ``GRID_HOME/ui/token`` (0600, inside the owner-only ``GRID_HOME`` that experiments
  never see), so ``grid ui --print-url`` can show it again and no other user can
  read it. On loopback the Host header must also name loopback, so a DNS-rebinding
  page cannot even reach the login.
* A page on another site making the browser POST here (stop a run, start one).
  Every POST from a browser session must carry that session's CSRF token (a hidden
  form field or the ``X-CSRF-Token`` header), derived from the session cookie, so it
  differs per visitor and is useless without the cookie; and it must not come with a
  foreign ``Origin`` or ``Sec-Fetch-Site: cross-site``. A request authenticated by
  the ``Authorization`` header needs no CSRF token: a browser never sends that header
  cross-site without a CORS preflight, which this server never grants.
* A session cookie stolen from one dashboard reused on another: the cookie is signed
  with the token, so it only opens the dashboard that issued it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_COOKIE = "gridrun_session"  # suffixed with the port: browsers share cookies across ports
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Scope keys the middleware fills for the endpoints.
CSRF_SCOPE = "gridrun.csrf"
CSRF_CHECKED = "gridrun.csrf_checked"


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _sign(key: str, purpose: str, value: str) -> str:
    mac = hmac.new(key.encode(), f"{purpose}|{value}".encode(), hashlib.sha256)
    return mac.hexdigest()[:40]


@dataclass(frozen=True)
class Guard:
    """The dashboard's access rules for one server process, keyed by its token."""

    token: str
    loopback_only: bool = True

    def token_ok(self, given: str | None) -> bool:
        return bool(given and hmac.compare_digest(given, self.token))

    def new_session(self) -> str:
        """A session cookie's value: a random id and its signature under the token."""
        sid = secrets.token_urlsafe(18)
        return f"{sid}.{_sign(self.token, 'session', sid)}"

    def session_id(self, cookie: str | None) -> str | None:
        """The id of a session this dashboard's token signed, else None."""
        if not cookie or "." not in cookie:
            return None
        sid, _, sig = cookie.rpartition(".")
        return sid if hmac.compare_digest(sig, _sign(self.token, "session", sid)) else None

    def csrf_for(self, sid: str) -> str:
        """The CSRF token of one browser session: another session's is worthless here."""
        return _sign(self.token, "csrf", sid)


def cookie_name(request: Request) -> str:
    """One cookie per port, so two dashboards on one host never overwrite each other."""
    return f"{TOKEN_COOKIE}_{request.url.port or 80}"


def _refuse(message: str) -> Response:
    return PlainTextResponse(message, 403)


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
        if g.loopback_only and not is_loopback(host):
            return _refuse(f"Host '{host}' refused: this dashboard serves localhost only.")
        if request.method in SAFE_METHODS and g.token_ok(request.query_params.get("token")):
            return self._login(request)
        auth = request.headers.get("authorization", "")
        header_token = auth[6:].strip() if auth.lower().startswith("token ") else None
        if g.token_ok(header_token):
            # Scripts: no cookie, no CSRF (see the module doc), nothing else to check.
            request.scope[CSRF_CHECKED] = True
            return None
        sid = g.session_id(request.cookies.get(cookie_name(request)))
        if sid is None:
            return _refuse(
                "Forbidden: open the URL `grid ui` printed (it ends in ?token=...); "
                "`grid ui --print-url` shows it again."
            )
        request.scope[CSRF_SCOPE] = g.csrf_for(sid)
        if request.method not in SAFE_METHODS:
            return self._check_post(request)
        return None

    def _login(self, request: Request) -> Response:
        """Trade the URL's token for a session cookie and drop it from the address bar."""
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = URL(scope={**request.scope, "query_string": b""}).path
        if params:
            target += "?" + urlencode(params)
        resp = RedirectResponse(target, 303)
        resp.set_cookie(
            cookie_name(request), self.guard.new_session(), httponly=True, samesite="strict"
        )
        return resp

    def _check_post(self, request: Request) -> Response | None:
        if request.headers.get("sec-fetch-site") == "cross-site":
            return _refuse("Cross-site request refused.")
        origin = request.headers.get("origin")
        if origin and origin != "null":
            if urlsplit(origin).netloc != request.headers.get("host"):
                return _refuse(f"Request from origin {origin} refused.")
        elif origin == "null":
            return _refuse("Request from an opaque origin refused.")
        # The CSRF token travels in a header (scripts) or the form body; the form body is
        # checked by the endpoint after parsing (see ``require_csrf``), headers here.
        given = request.headers.get(CSRF_HEADER)
        if given and hmac.compare_digest(given, request.scope[CSRF_SCOPE]):
            request.scope[CSRF_CHECKED] = True
        return None


def csrf_of(request: Request) -> str:
    """The CSRF token pages render for this request's session ('' for header clients)."""
    return str(request.scope.get(CSRF_SCOPE, ""))


async def require_csrf(request: Request) -> Response | None:
    """A 403 unless the request carried its session's CSRF token; call first in every POST."""
    if request.scope.get(CSRF_CHECKED):
        return None
    expected = csrf_of(request)
    form = await request.form()
    value = form.get(CSRF_FIELD)
    if expected and isinstance(value, str) and hmac.compare_digest(value, expected):
        return None
    return PlainTextResponse("Missing or wrong CSRF token: reload the page and try again.", 403)
