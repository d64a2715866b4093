"""Who may reach the dashboard and which requests may change state, on a real server."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from uihelpers import start_dashboard, stop_dashboard

from nobody import NOBODY, python_for_nobody


def _post(url: str, headers: dict[str, str], data: bytes = b"", opener: Any = None) -> int:
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with (opener or urllib.request.build_opener()).open(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def _session(dashboard: Any) -> tuple[Any, str]:
    """A browser-like client: logged in with the printed URL, and its page's CSRF token."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with opener.open(dashboard.login(), timeout=30) as resp:
        html = resp.read().decode()
    return opener, re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)  # type: ignore[union-attr]


# Every route of the dashboard, with the method it answers.
ROUTES = [
    ("GET", "/"),
    ("GET", "/runs/new"),
    ("POST", "/runs/new"),
    ("GET", "/runs/r"),
    ("GET", "/runs/r/export.csv"),
    ("POST", "/runs/r/stop"),
    ("GET", "/experiments/r-exp0"),
    ("GET", "/experiments/r-exp0/artifacts/model.txt"),
    ("POST", "/experiments/r-exp0/stop"),
    ("GET", "/api/runs"),
    ("GET", "/api/runs/r"),
    ("GET", "/api/runs/r/metrics"),
    ("GET", "/api/experiments/r-exp0"),
    ("GET", "/api/experiments/r-exp0/logs"),
    ("GET", "/api/sweep/count?args=--lr+%5B1%2C2%5D"),
    ("GET", "/static/common.js"),
    ("GET", "/sessions"),
    ("GET", "/sessions/s/lab"),
    ("POST", "/sessions/s/api/kernels"),
    ("POST", "/experiments/r-exp0/session"),
]

# What another user (or an experiment) tries: each route with no token, a wrong one,
# a forged cookie, and the token in a POST's address. Prints one status per attempt.
PROBE = r"""
import json, sys, urllib.error, urllib.request
base, routes = sys.argv[1], sys.argv[2]
# A file inside an experiment: `grid run` would read a bracketed argument as a sweep.
routes = json.loads(routes if routes.startswith("[") else open(routes).read())
out = []
for method, path in routes:
    for headers in ({}, {"Authorization": "token wrong-token-0123456789"},
                    {"Cookie": "gridrun_session_%s=x.y" % base.rsplit(":", 1)[1].strip("/")}):
        req = urllib.request.Request(base.rstrip("/") + path, headers=headers, method=method,
                                     data=b"step=submit&localdir=/tmp&script=x.py"
                                     if method == "POST" else None)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                out.append([method, path, r.status])
        except urllib.error.HTTPError as e:
            out.append([method, path, e.code])
try:
    open(sys.argv[3]).read()
    out.append(["read", sys.argv[3], "readable"])
except OSError as e:
    out.append(["read", sys.argv[3], type(e).__name__])
print(json.dumps(out))
"""


def _assert_refused(results: list[list[Any]], token_file: str) -> None:
    assert results, "the probe tried nothing"
    for method, path, status in results:
        if method == "read":
            assert status != "readable", f"{path} was readable"
        else:
            assert status == 403, f"{method} {path} answered {status} without the token"


def test_every_route_needs_the_token_on_loopback(dashboard: Any) -> None:
    assert dashboard.url.startswith("http://127.0.0.1:")
    results = json.loads(
        subprocess.run(
            [sys.executable, "-c", PROBE, dashboard.url, json.dumps(ROUTES), "/nonexistent"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
    )
    _assert_refused([r for r in results if r[0] != "read"], "")
    # The owner's token opens them: the header for scripts, the URL once for browsers.
    assert dashboard.get("/api/runs")[0] == 200
    assert dashboard.get("/", auth=False)[0] == 403
    # A DNS-rebinding page reaches 127.0.0.1 under its own name: refused, token or not.
    code, body = dashboard.get("/api/runs", {"Host": "attacker.example:80"})
    assert code == 403 and "localhost only" in body


def test_another_user_is_refused_and_cannot_read_the_token(
    grid: Any, dashboard: Any, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("already unprivileged: the other user is this one")
    python = python_for_nobody("json, urllib.request")
    assert python, "no Python interpreter that nobody can run"
    token_file = grid.home / "ui" / "token"
    assert token_file.read_text().strip() == dashboard.token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    proc = subprocess.run(
        [*NOBODY, "env", python, "-c", PROBE, dashboard.url, json.dumps(ROUTES), str(token_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    _assert_refused(results, str(token_file))
    assert results[-1][2] == "PermissionError"


def test_an_experiment_cannot_use_the_dashboard(grid: Any, dashboard: Any, tmp_path: Path) -> None:
    """An experiment runs as the owner, yet GRID_HOME (and the token in it) is hidden
    from it, so the dashboard refuses it like any other client."""
    project = tmp_path / "escape"
    project.mkdir()
    (project / "probe.py").write_text(PROBE)
    (project / "routes.json").write_text(json.dumps(ROUTES))
    token_file = str(grid.home / "ui" / "token")
    out = grid(
        "run",
        "--localdir",
        str(project),
        "probe.py",
        dashboard.url,
        "routes.json",
        token_file,
        cwd=project,
    ).stdout
    name = re.search(r"grid_name:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    status = grid.wait(name)
    assert status["experiments"][0]["status"] == "succeeded", status
    lines = grid("logs", f"{name}-exp0").stdout.splitlines()
    printed = next(line for line in lines if "[[" in line)
    results = json.loads(printed[printed.index("[[") :])
    _assert_refused(results, token_file)
    assert results[-1][2] == "FileNotFoundError"
    assert len(grid.json("history")) == 1  # its own run only: nothing was submitted


def test_posts_need_their_sessions_csrf_token_and_a_same_origin(grid: Any, dashboard: Any) -> None:
    url = dashboard.url + "runs/victim/stop"
    opener, csrf = _session(dashboard)
    _other, other_csrf = _session(dashboard)
    assert csrf != other_csrf  # bound to the session, not the same for every visitor
    assert _post(url, {}, opener=opener) == 403
    assert _post(url, {"X-CSRF-Token": "wrong"}, opener=opener) == 403
    assert _post(url, {"X-CSRF-Token": other_csrf}, opener=opener) == 403
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _post(url, form, b"csrf_token=wrong", opener=opener) == 403
    assert _post(url, form, f"csrf_token={other_csrf}".encode(), opener=opener) == 403
    cross = {"X-CSRF-Token": csrf, "Origin": "http://attacker.example"}
    assert _post(url, cross, opener=opener) == 403
    assert _post(url, {"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}, opener=opener) == 403
    # With its own token and no foreign origin the request reaches the handler: no such run.
    json_accept = {"X-CSRF-Token": csrf, "Accept": "application/json"}
    assert _post(url, json_accept, opener=opener) == 404
    assert _post(url, form, f"csrf_token={csrf}".encode(), opener=opener) == 404
    assert _post(dashboard.url + "runs/new", form, b"step=preview", opener=opener) == 403
    # A script with the token in its header needs no CSRF token: browsers cannot send it.
    auth = {"Authorization": f"token {dashboard.token}", "Accept": "application/json"}
    assert _post(url, auth) == 404
    # The token in a POST's address is not a login.
    assert _post(dashboard.login("runs/victim/stop"), {}) == 403


def test_the_token_is_traded_for_a_cookie_kept_and_shown_again(grid: Any) -> None:
    d = start_dashboard(grid)
    try:
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(d.login(), timeout=30) as resp:  # redirected, without the token
            assert resp.status == 200 and "token" not in resp.url
        with opener.open(d.url + "api/runs", timeout=30) as resp:
            assert resp.status == 200
        port = d.url.rstrip("/").rsplit(":", 1)[1]
        assert [c.name for c in jar] == [f"gridrun_session_{port}"]  # one per dashboard
        cookie = next(iter(jar))
        assert cookie.has_nonstandard_attr("HttpOnly") and d.token not in str(cookie.value)
        shown = grid("ui", "--print-url").stdout.split()
        assert shown == [d.login()]
    finally:
        stop_dashboard(d)
    # A restarted dashboard keeps this GRID_HOME's token, so its old URL still works.
    again = start_dashboard(grid)
    try:
        assert again.token == d.token
    finally:
        stop_dashboard(again)
    gone = grid("ui", "--print-url", check=False)
    assert gone.returncode != 0 and "No dashboard is serving" in gone.stderr
    assert len(gone.stderr.strip().splitlines()) == 1


def test_a_given_token_is_used_instead(grid: Any) -> None:
    secret = "s3cret-token-for-the-test"
    d = start_dashboard(grid, "--token", secret)
    try:
        assert d.token == secret
        assert d.get("/api/runs")[0] == 200
        assert d.get("/api/runs", auth=False)[0] == 403
    finally:
        stop_dashboard(d)
    short = grid("ui", "--token", "short", check=False)
    assert short.returncode == 2 and "at least 16 characters" in short.stderr


def test_a_project_inside_grid_home_or_a_system_folder_is_refused(
    grid: Any, dashboard: Any, tmp_path: Path
) -> None:
    inside = grid.home / "runs"
    inside.mkdir(parents=True, exist_ok=True)
    (inside / "pwn.py").write_text("print('escaped')\n")
    for folder in (str(inside), str(grid.home), "/", "/proc/self", "/usr"):
        proc = grid("run", "--localdir", folder, "pwn.py", check=False, cwd=tmp_path)
        assert proc.returncode == 2, (folder, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert "inside GRID_HOME" in proc.stderr or "system folder" in proc.stderr
    # The dashboard's form goes through the same check.
    opener, csrf = _session(dashboard)
    body = urllib.parse.urlencode(
        {"csrf_token": csrf, "localdir": str(grid.home), "script": "runs/pwn.py", "step": "submit"}
    ).encode()
    req = urllib.request.Request(dashboard.url + "runs/new", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(req, timeout=60)
    with err.value:
        assert err.value.code == 400 and "inside GRID_HOME" in err.value.read().decode()
    assert grid.json("history") == []


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
