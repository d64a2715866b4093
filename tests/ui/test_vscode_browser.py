"""VS Code in the browser (``grid session create --vscode``), in a real Chromium.

code-server is installed from the npm registry into the test's GRID_HOME by the
product itself (its native modules compile, so the Debian packages it needs are
installed first, as root, like the Slurm packages). The workbench opens through the
dashboard on the dashboard's token alone, and lists the session's working copy: that
listing travels over code-server's WebSocket, through both proxies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from uihelpers import Dashboard

from gridrun.processes import marked_processes
from gridrun.sessions.vscode import BUILD_PACKAGES

pytestmark = pytest.mark.slow


def _ensure_build_packages() -> None:
    """What code-server's install compiles with; installed as root when missing."""
    wanted = BUILD_PACKAGES.split() + ([] if shutil.which("npm") else ["npm"])
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}\n", *wanted], capture_output=True, text=True
    )
    if status.returncode == 0 and status.stdout.count("install ok installed") == len(wanted):
        return
    if os.geteuid() != 0:
        pytest.fail(f"VS Code sessions need, as root: apt-get install {BUILD_PACKAGES}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", *wanted]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
        subprocess.run(cmd, env=env, capture_output=True, check=True)


def test_vscode_opens_through_the_dashboard(
    grid: Any, dashboard: Dashboard, browser: Any, tmp_path: Path
) -> None:
    _ensure_build_packages()
    assert shutil.which("npm"), "VS Code sessions install code-server with npm"
    project = tmp_path / "proj"
    project.mkdir()
    (project / "analyse.py").write_text("print('hello')\n")
    created = json.loads(
        grid(
            "-o", "json", "session", "create", "--name", "code", "--vscode", cwd=project,
            timeout=1800,
        ).stdout
    )  # fmt: skip
    token = created["url"].split("token=")[1]
    assert created["vscode_url"].endswith(f"/sessions/code/vscode/?token={token}")

    # Jupyter's login stands in front of it: no token, no VS Code.
    status, _ = dashboard.get("/sessions/code/vscode/", auth=False)
    assert status == 403

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(dashboard.login("sessions"))
        page.wait_for_selector("#sessions >> text=code")
        page.click("text=Open VS Code")
        page.wait_for_url("**/sessions/code/vscode/**", timeout=60_000)
        page.wait_for_selector(".monaco-workbench", timeout=180_000)
        # The explorer lists the working copy: the remote file system answered.
        page.wait_for_selector(".explorer-folders-view >> text=analyse.py", timeout=180_000)
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"))
        raise
    finally:
        context.close()

    # code-server is the session's: confined with it, and gone when it pauses.
    servers = [
        ref for ref in marked_processes({"GRID_HOME": str(grid.home)})
        if b"code-server" in _read(Path(f"/proc/{ref.pid}/cmdline"))
    ]  # fmt: skip
    assert servers, "no code-server process of this session"
    assert os.readlink(f"/proc/{servers[0].pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    grid("session", "pause", "code")
    assert not any(ref.alive() for ref in servers)
    grid("session", "delete", "code")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
