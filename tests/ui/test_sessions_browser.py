"""A session opened in a real Chromium through the dashboard's proxy (issue 23's test).

JupyterLab's page, its REST calls and the kernel's WebSocket all go through
``grid ui`` on the dashboard's token alone; the notebook cell runs in the run's
environment, reads the datastore and cannot write it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from uihelpers import Dashboard

pytestmark = pytest.mark.slow

CELL = (
    "import os, numpy; p = os.environ['GRID_DATASTORE_MYDATA_DIR']; "
    "print('PREFIX', os.sys.prefix, 'NUMPY', numpy.__file__.startswith(os.sys.prefix), "
    "'DATA', open(p + '/data.csv').read().strip())"
)
NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "a",
            "metadata": {},
            "outputs": [],
            "source": [],
        },
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "b",
            "metadata": {},
            "outputs": [],
            "source": [],
        },
    ],
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}
WRITE = "open(os.environ['GRID_DATASTORE_MYDATA_DIR'] + '/new.txt', 'w')"


def _wait_for_one_kernel(dashboard: Dashboard, name: str) -> None:
    """Until the notebook's session has one kernel, and it is the only one running."""
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        sessions = dashboard.json(f"/sessions/{name}/api/sessions")
        kernels = dashboard.json(f"/sessions/{name}/api/kernels")
        if (
            len(sessions) == 1
            and [k["id"] for k in kernels] == [sessions[0]["kernel"]["id"]]
            and kernels[0]["execution_state"] == "idle"
        ):
            return
        time.sleep(0.5)
    raise AssertionError(f"no single idle kernel: {sessions} {kernels}")


def _websocket_opens(url: str, headers: dict[str, str], origin: str) -> bool:
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus
    from websockets.typing import Origin

    async def attempt() -> bool:
        try:
            async with connect(url, additional_headers=headers, origin=Origin(origin)):
                return True
        except InvalidStatus:
            return False

    # Playwright's sync API runs an event loop in this thread: use another one.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(asyncio.wait_for(attempt(), 60))).result()


def _run_cell(page: Any, index: int, code: str) -> Any:
    """Type ``code`` into the notebook's cell ``index`` and run it (Shift+Enter)."""
    editor = page.locator(".jp-Notebook .jp-Cell .cm-content").nth(index)
    editor.click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea-output")


def test_a_notebook_opens_through_the_dashboard(
    grid: Any, dashboard: Dashboard, page: Any, tmp_path: Path
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "analyse.py").write_text("import numpy\nprint(numpy.ones(2))\n")
    (project / "analysis.ipynb").write_text(json.dumps(NOTEBOOK))
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.csv").write_text("x,42\n")
    grid("datastore", "create", str(data), "--name", "mydata")
    created = json.loads(
        grid(
            "-o",
            "json",
            "session",
            "create",
            "--name",
            "nb",
            "--datastore_name",
            "mydata",
            cwd=project,
            timeout=900,
        ).stdout
    )
    env = created["environment"]

    # The dashboard's token alone: its login trades it for a cookie, then the proxy
    # adds Jupyter's own token (never shown to the browser).
    page.goto(dashboard.login("sessions"))
    page.wait_for_selector("#sessions >> text=nb")
    page.click("text=Open JupyterLab")
    page.wait_for_url("**/sessions/nb/lab**", timeout=60_000)
    card = page.locator(".jp-LauncherCard[data-category='Notebook']").first
    card.wait_for(timeout=120_000)
    assert "(run environment)" in (card.get_attribute("title") or "")  # the only kernel
    # The project's own notebook, opened from the working copy, in the session's kernel.
    page.goto(f"{dashboard.url}sessions/nb/lab/tree/analysis.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=120_000)
    # A cell run before the kernel is connected is dropped by JupyterLab ("No Kernel").
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    # On a loaded machine JupyterLab at times starts the notebook's kernel twice and
    # shuts the first down while the page still talks to it (seen in Jupyter's log:
    # "Kernel started" twice, then "Kernel shutdown"). Once the session settles on
    # one live kernel, a reload attaches the page to it, as a user would.
    _wait_for_one_kernel(dashboard, "nb")
    page.reload()
    page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)

    out = _run_cell(page, 0, CELL)
    try:
        out.first.wait_for(timeout=120_000)
    except Exception:  # what the page showed, for whoever reads the failure
        page.screenshot(path=str(tmp_path / "failed.png"))
        (tmp_path / "failed.html").write_text(page.content())
        raise
    text = out.first.inner_text()
    assert f"PREFIX {env} NUMPY True DATA x,42" in text, text

    denied = _run_cell(page, 1, WRITE)
    denied.first.wait_for(timeout=60_000)
    assert "Read-only file system" in denied.first.inner_text()
    assert not (data / "new.txt").exists()

    # Without the dashboard's cookie, neither the page nor the API opens, nor a
    # WebSocket (which the HTTP middleware never sees); a foreign Origin is refused too.
    status, _ = dashboard.get("/sessions/nb/api/status", auth=False)
    assert status == 403
    cookie = next(c for c in page.context.cookies() if c["name"].startswith("gridrun_session"))
    ours = {"Cookie": f"{cookie['name']}={cookie['value']}"}
    ws = dashboard.url.replace("http", "ws") + "sessions/nb/api/events/subscribe"
    assert _websocket_opens(ws, ours, dashboard.url.rstrip("/"))
    assert not _websocket_opens(ws, {}, dashboard.url.rstrip("/"))
    assert not _websocket_opens(ws, ours, "http://attacker.example")
    grid("session", "delete", "nb")


def test_an_experiment_page_opens_a_session_in_its_environment(
    grid: Any, dashboard: Dashboard, page: Any, tmp_path: Path
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "train.py").write_text(
        "import numpy\nopen('left.txt', 'w').write('x')\nraise SystemExit(3)\n"
    )
    grid("run", "--name", "failing", "train.py", cwd=project)
    run = grid.wait("failing")
    exp = run["experiments"][0]["name"]

    page.goto(dashboard.login(f"experiments/{exp}"))
    page.click("#open-session button")
    page.wait_for_url("**/sessions/*/lab**", timeout=180_000)
    name = page.url.split("/sessions/")[1].split("/")[0]
    page.locator(".jp-LauncherCard[data-category='Notebook']").first.wait_for(timeout=120_000)

    sessions = [s for s in grid.json("session", "list") if s["name"] == name]
    assert sessions and sessions[0]["from_run"] == "failing"
    assert sessions[0]["environment"] == run["env_ref"]  # the run's own, not a rebuild
    # The experiment's working directory, with what it left there, is the session's.
    assert (grid.home / "sessions" / name / "work" / "left.txt").read_text() == "x"
    grid("session", "delete", name)
