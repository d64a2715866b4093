"""Who may reach the dashboard and which requests may change state, on a real server."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from typing import Any

import pytest
from uihelpers import start_dashboard, stop_dashboard

from gridrun.ui.security import is_loopback
from gridrun.ui.server import choose_token, url_of


def _post(url: str, headers: dict[str, str], data: bytes = b"") -> int:
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def _csrf(dashboard: Any) -> str:
    _code, html = dashboard.get("/")
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def test_localhost_needs_no_token_but_refuses_other_host_names(dashboard: Any) -> None:
    assert dashboard.url.startswith("http://127.0.0.1:") and "token" not in dashboard.url
    assert dashboard.get("/")[0] == 200
    # A DNS-rebinding page reaches 127.0.0.1 under its own name: refused.
    code, body = dashboard.get("/api/runs", {"Host": "attacker.example:80"})
    assert code == 403 and "localhost only" in body


def test_posts_need_the_csrf_token_and_a_same_origin(grid: Any, dashboard: Any) -> None:
    grid("run", "--name", "victim", "--dry_run", "x.py", check=False)  # nothing recorded
    url = dashboard.url + "runs/victim/stop"
    token = _csrf(dashboard)
    assert _post(url, {}) == 403
    assert _post(url, {"X-CSRF-Token": "wrong"}) == 403
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _post(url, form, b"csrf_token=wrong") == 403
    cross = {"X-CSRF-Token": token, "Origin": "http://attacker.example"}
    assert _post(url, cross) == 403
    assert _post(url, {"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"}) == 403
    # With the token and no foreign origin the request reaches the handler: an unknown run.
    assert _post(url, {"X-CSRF-Token": token, "Accept": "application/json"}) == 404
    assert _post(url, form, f"csrf_token={token}".encode()) == 404
    assert _post(dashboard.url + "runs/new", form, b"step=preview") == 403


def test_a_given_token_is_required_and_traded_for_a_cookie(grid: Any) -> None:
    secret = "s3cret-token-for-the-test"
    d = start_dashboard(grid, "--token", secret)
    try:
        assert d.url.endswith(f"?token={secret}")
        base = d.url.split("?")[0]
        bare = urllib.request.Request(base + "api/runs")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bare, timeout=30)
        err.value.close()
        assert err.value.code == 403
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(d.url, timeout=30) as resp:  # redirected, without the token
            assert resp.status == 200 and "token" not in resp.url
        with opener.open(base + "api/runs", timeout=30) as resp:
            assert resp.status == 200
        port = base.rstrip("/").rsplit(":", 1)[1]
        assert [c.name for c in jar] == [f"gridrun_token_{port}"]  # one per dashboard
        auth = urllib.request.Request(
            base + "api/runs", headers={"Authorization": f"token {secret}"}
        )
        with urllib.request.urlopen(auth, timeout=30) as resp:
            assert resp.status == 200
    finally:
        stop_dashboard(d)


def test_binding_beyond_localhost_always_gets_a_token() -> None:
    assert choose_token("127.0.0.1", None) is None
    assert choose_token("::1", None) is None
    token = choose_token("0.0.0.0", None)
    assert token and len(token) >= 24
    assert choose_token("0.0.0.0", None) != token
    assert is_loopback("localhost") and not is_loopback("10.0.0.1")
    assert url_of("0.0.0.0", 8080, "abc").endswith(":8080/?token=abc")


def test_grid_ui_on_a_busy_port_is_one_line_error(grid: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "gridrun", "ui", "--port", str(port)],
            env=grid.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode != 0
    assert "Cannot listen on 127.0.0.1" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
