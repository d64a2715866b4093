"""Sessions on the Docker backend through the real ``grid`` CLI and a real engine.

The session's JupyterLab runs in a container of the run's own image (plus a session
layer with JupyterLab and ipykernel); it is reached through the dashboard's proxy
(a real ``grid ui``), and a kernel started there over Jupyter's REST and WebSocket
API imports the project's dependency from the image and finds the datastore
read-only.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "ui"))  # the dashboard's test helpers
from uihelpers import Dashboard, start_dashboard, stop_dashboard

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BASE = "gridrun-test-base:bookworm"
CELL = (
    "import os, sys, numpy; p = os.environ['GRID_DATASTORE_MYDATA_DIR']\n"
    "print('PREFIX', sys.prefix, 'NUMPY', numpy.__file__.startswith(sys.prefix), "
    "'DATA', open(p + '/data.csv').read().strip())\n"
    "try:\n    open(p + '/new.txt', 'w')\nexcept OSError as e:\n    print('WRITE', e.strerror)\n"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    # gridrun-test-*: the docker fixtures' teardown removes its images (api fixture).
    p = tmp_path / "gridrun-test-sess"
    p.mkdir()
    (p / "analyse.py").write_text(f"# {uuid.uuid4().hex[:8]}\nimport numpy\nprint(numpy.ones(2))\n")
    return p


@pytest.fixture
def datastore(grid: Any, tmp_path: Path) -> Path:
    src = tmp_path / "data"
    src.mkdir()
    (src / "data.csv").write_text("x,42\n")
    grid("datastore", "create", str(src), "--name", "mydata")
    return src


@pytest.fixture
def dashboard(grid: Any) -> Any:
    d = start_dashboard(grid)
    yield d
    stop_dashboard(d)


def _wait_for(what: str, cond: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _session(grid: Any, name: str) -> dict[str, Any]:
    found = [s for s in grid.json("session", "list") if s["name"] == name]
    assert found, grid("session", "list").stdout
    return found[0]


def _post(d: Dashboard, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        d.url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"token {d.token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post_form(d: Dashboard, path: str) -> str:
    """POST as a script does (the token, no cookie, so no CSRF); the redirect's target."""
    req = urllib.request.Request(
        d.url.rstrip("/") + path,
        data=b"",
        headers={"Authorization": f"token {d.token}"},
        method="POST",
    )
    try:
        resp = urllib.request.build_opener(_NoRedirect).open(req, timeout=600)
    except urllib.error.HTTPError as exc:  # the 303 itself
        resp = exc
    with resp:
        assert resp.status == 303, (resp.status, resp.read())
        return str(resp.headers["Location"])


def _cookie(d: Dashboard) -> str:
    """The dashboard's session cookie, as a browser gets it from the login address."""

    opener = urllib.request.build_opener(_NoRedirect)
    try:
        resp = opener.open(d.login(""), timeout=30)
    except urllib.error.HTTPError as exc:  # the 30x itself
        resp = exc
    with resp:
        header = resp.headers.get("Set-Cookie") or ""
    assert header.startswith("gridrun_session"), header
    return header.split(";", 1)[0]


def _execute(d: Dashboard, name: str, kernel: str, code: str) -> str:
    """Run ``code`` in the kernel over Jupyter's WebSocket, through the dashboard; its
    stream output once the kernel is idle again."""
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    url = d.url.replace("http", "ws", 1) + f"sessions/{name}/api/kernels/{kernel}/channels"
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "username": "test",
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": False},
        "channel": "shell",
        "buffers": [],
    }

    async def run() -> str:
        out: list[str] = []
        async with connect(
            url, additional_headers={"Cookie": _cookie(d)}, origin=Origin(d.url.rstrip("/"))
        ) as ws:
            await ws.send(json.dumps(request))
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    out.append("\n".join(msg["content"]["traceback"]))
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    return "".join(out)
        return "".join(out)

    return asyncio.run(asyncio.wait_for(run(), 180))


def test_a_docker_session_serves_jupyterlab_in_the_runs_image(
    grid: Any, api: Any, project: Path, datastore: Path, dashboard: Dashboard
) -> None:
    created = json.loads(
        grid(
            "-o",
            "json",
            "session",
            "create",
            "--backend",
            "docker",
            "--base_image",
            BASE,
            "--name",
            "dk",
            "--datastore_name",
            "mydata",
            cwd=project,
            timeout=900,
        ).stdout
    )
    assert created["status"] == "running" and created["backend"] == "docker"
    assert "/sessions/dk/lab?token=" in created["url"]
    image = created["environment"]

    # The image a run of the same code gets: one cache key, nothing built again.
    grid("run", "--backend", "docker", "--base_image", BASE, "--name", "same", "analyse.py",
         cwd=project, timeout=600)  # fmt: skip
    assert grid.wait("same", timeout=300)["env_ref"] == image
    # --from a docker run: a session where it ran, in its image (nothing built).
    frm = grid.json("session", "create", "--from", "same", "--name", "dbg")
    assert (frm["backend"], frm["environment"], frm["from_run"]) == ("docker", image, "same")
    grid("session", "delete", "dbg")
    # The dashboard's "Open a session in this environment" on a docker experiment.
    exp = grid.json("status", "same")["experiments"][0]["name"]
    where = _post_form(dashboard, f"/experiments/{exp}/session")
    opened = where.split("/sessions/")[1].split("/")[0]
    frm = _session(grid, opened)
    assert (frm["backend"], frm["environment"], frm["from_run"]) == ("docker", image, "same")
    grid("session", "delete", opened)

    # Its container: the session image (derived from the run's), labelled, published
    # on loopback only.
    from gridrun.backends.docker.backend import home_label

    ours = [f"gridrun.home={home_label(grid.home)}", "gridrun.session=dk"]
    [c] = api.containers(filters={"label": ours})
    assert api.inspect_image(c["Image"])["Config"]["Labels"]["gridrun.session_base"] == image
    assert [(p["IP"], p["PrivatePort"]) for p in c["Ports"]] == [("127.0.0.1", 8888)]

    # Listed as a local session is, with its backend.
    row = next(ln for ln in grid("status").stdout.splitlines() if "│ dk" in ln)
    assert "running" in row and "/sessions/dk/lab" in row
    assert _session(grid, "dk")["backend"] == "docker"

    # Through the dashboard's proxy, on the dashboard's token alone.
    assert dashboard.json("/sessions/dk/api/status")["kernels"] == 0
    status, page = dashboard.get("/sessions/dk/lab")
    assert status == 200 and "JupyterLab" in page
    [spec] = dashboard.json("/sessions/dk/api/kernelspecs")["kernelspecs"].values()
    assert spec["spec"]["argv"][0] == "/opt/venv/bin/python"  # the image's run Python
    kernel = _post(dashboard, "/sessions/dk/api/kernels", {"name": "python3"})["id"]
    out = _execute(dashboard, "dk", kernel, CELL)
    assert "PREFIX /opt/venv NUMPY True DATA x,42" in out, out
    assert "WRITE Read-only file system" in out, out
    assert not (datastore / "new.txt").exists()

    # `grid session ssh` is `docker exec` in the container, in the working copy, with
    # the image's environment first on PATH; the datastore is read-only there too.
    shown = grid(
        "session", "ssh", "dk", "--", "python", "-c",
        "import numpy, os, sys; print(sys.prefix); print(os.getcwd());"
        "print(open(os.environ['GRID_DATASTORE_MYDATA_DIR'] + '/data.csv').read())",
    ).stdout.splitlines()  # fmt: skip
    assert shown[:3] == ["/opt/venv", "/gridai/project", "x,42"]
    refused = grid(
        "session", "ssh", "dk", "--", "sh", "-c", 'touch "$GRID_DATASTORE_MYDATA_DIR/x"',
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    # A shell reading its commands from stdin; its exit status is the command's.
    piped = grid("session", "ssh", "dk", input="echo $PWD; exit 3\n", check=False)
    assert piped.returncode == 3 and piped.stdout.strip() == "/gridai/project"
    # In a terminal (util-linux's script gives it one) docker exec -t gives one on.
    assert shutil.which("script"), "script (Debian's essential bsdutils) is needed"
    tty = subprocess.run(
        ["script", "-qec", f"{sys.executable} -m gridrun session ssh dk -- tty", "/dev/null"],
        env=grid.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert tty.returncode == 0 and "/dev/pts/" in tty.stdout, tty

    # Pause removes the container; the working copy (with what the kernel wrote in it)
    # stays on the host, and resume starts a new container on it.
    _execute(dashboard, "dk", kernel, "open('notes.txt', 'w').write('kept')")
    grid("session", "pause", "dk")
    assert _session(grid, "dk")["status"] == "paused"
    assert api.containers(all=True, filters={"label": ours}) == []
    assert (grid.home / "sessions" / "dk" / "work" / "notes.txt").read_text() == "kept"
    status, _ = dashboard.get("/sessions/dk/api/status")
    assert status == 404
    nothing = grid("session", "ssh", "dk", "--", "true", check=False)
    assert nothing.returncode != 0 and "grid session resume dk" in nothing.stderr
    assert "Traceback" not in nothing.stderr
    assert "paused" in next(ln for ln in grid("status").stdout.splitlines() if "│ dk" in ln)
    # The run's image, pruned while the session is paused, comes back on resume; while
    # the session lives, `grid images` counts it in use.
    listed = {i["tag"]: i for i in grid.json("images")}
    assert listed[image]["in_use"], listed
    api.remove_image(image)  # untagged: the session image is its child
    done = grid("session", "resume", "dk")
    resumed = done.stdout
    assert api.inspect_image(image)["Id"] and "Reusing cached session image" in done.stderr
    assert "/sessions/dk/lab?token=" in resumed and _session(grid, "dk")["status"] == "running"
    [again] = api.containers(filters={"label": ours})
    assert again["Id"] != c["Id"]
    kernel = _post(dashboard, "/sessions/dk/api/kernels", {"name": "python3"})["id"]
    assert _execute(dashboard, "dk", kernel, "print(open('notes.txt').read())") == "kept\n"

    # A container removed behind gridrun's back: the session is recorded as paused.
    api.remove_container(again["Id"], force=True)
    assert _session(grid, "dk")["status"] == "paused"
    assert "stopped" in (_session(grid, "dk")["message"] or "")

    # An idle one pauses itself (Jupyter's /api/status, as on local); the session image
    # is cached now, so this one starts without a build.
    idler = grid(
        "session", "create", "--backend", "docker", "--base_image", BASE, "--name", "idler",
        "--idle", "2s", cwd=project,
    ).stderr  # fmt: skip
    assert "Reusing cached session image" in idler and "Building" not in idler
    _wait_for("the idle pause", lambda: _session(grid, "idler")["status"] == "paused")
    assert "idle for" in (_session(grid, "idler")["message"] or "")
    grid("session", "delete", "idler")

    # Changed code is a new run image; JupyterLab's install is not done again for it:
    # the tools stage starts from the run's dependencies, which the engine has cached.
    (project / "analyse.py").write_text("import numpy\nprint('changed')\n")
    changed = grid(
        "session", "create", "--backend", "docker", "--base_image", BASE, "--name", "changed",
        cwd=project, timeout=600,
    ).stderr  # fmt: skip
    assert "Building session image" in changed and "Using cache" in changed
    assert "Successfully installed" not in changed  # pip did not run
    assert grid("session", "ssh", "changed", "--", "python", "analyse.py").stdout == "changed\n"
    grid("session", "delete", "changed")

    grid("session", "delete", "dk")
    assert grid.json("session", "list") == []
    assert api.containers(all=True, filters={"label": ours}) == []
    assert not (grid.home / "sessions" / "dk").exists()
    status, _ = dashboard.get("/sessions/dk/api/status")
    assert status == 404
