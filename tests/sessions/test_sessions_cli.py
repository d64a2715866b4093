"""Sessions through the real ``grid`` CLI: JupyterLab in a run's environment.

Each test builds a real environment (numpy from PyPI), installs JupyterLab and
ipykernel into GRID_HOME's tool cache, and starts a real server.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ANALYSE = "import numpy as np\nprint(np.arange(4).sum())\n"


def _session(grid: Any, name: str) -> dict[str, Any]:
    found = [s for s in grid.json("session", "list") if s["name"] == name]
    assert found, grid("session", "list").stdout
    return found[0]


def _api_status(url: str) -> dict[str, Any]:
    base, _, query = url.partition("lab?")
    with urllib.request.urlopen(f"{base}api/status?{query}", timeout=10) as resp:
        return json.loads(resp.read())


def _wait_for(what: str, cond: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    (p / "analyse.py").write_text(ANALYSE)
    return p


@pytest.fixture
def datastore(grid: Any, tmp_path: Path) -> str:
    src = tmp_path / "data"
    src.mkdir()
    (src / "data.csv").write_text("a,1\n")
    grid("datastore", "create", str(src), "--name", "mydata")
    return "mydata"


def test_a_session_lives_through_create_ssh_pause_resume_delete(
    grid: Any, project: Path, datastore: str
) -> None:
    grid("status")  # a fresh GRID_HOME: "None Active." in both tables
    empty = grid("status").stdout
    assert "Interactive Nodes" in empty and empty.count("None Active.") == 2

    out = grid(
        "-o",
        "json",
        "session",
        "create",
        "--name",
        "dbg",
        "--datastore_name",
        datastore,
        cwd=project,
        timeout=900,
    )
    created = json.loads(out.stdout)
    assert created["status"] == "running"
    assert "/sessions/dbg/lab?token=" in created["url"]
    assert _api_status(created["url"])["kernels"] == 0
    env = created["environment"]

    # The same environment a run of the same code gets: one cache key.
    grid("run", "--name", "same-code", "analyse.py", cwd=project)
    assert grid.wait("same-code")["env_ref"] == env

    shown = grid(
        "session",
        "ssh",
        "dbg",
        "--",
        "python",
        "-c",
        "import numpy, os, sys; print(sys.prefix); print(os.getcwd());"
        "print(open(os.environ['GRID_DATASTORE_MYDATA_DIR'] + '/data.csv').read())",
    ).stdout.splitlines()
    assert shown[0] == env
    assert shown[1].endswith("/sessions/dbg/work")
    assert shown[2] == "a,1"
    refused = grid(
        "session",
        "ssh",
        "dbg",
        "--",
        "sh",
        "-c",
        'touch "$GRID_DATASTORE_MYDATA_DIR/x"',
        check=False,
    )
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    hidden = grid("session", "ssh", "dbg", "--", "ls", str(grid.home / "objects"), check=False)
    assert hidden.returncode != 0  # GRID_HOME is hidden, as from an experiment

    table = grid("status").stdout
    assert "Interactive Nodes" in table
    row = next(line for line in table.splitlines() if "│ dbg" in line)
    assert "running" in row and "1 CPU" in row and "/sessions/dbg/lab" in row

    # `grid gc` keeps what a live session uses, however long unused by runs.
    from gridrun import gc
    from gridrun.home import GridHome
    from gridrun.store.db import Store

    grid("delete", "run", "same-code")
    store = Store(grid.home / "grid.db")
    try:
        gc.collect(GridHome(grid.home), store, grace=-3600)  # as if all were old
    finally:
        store.close()
    assert Path(env).is_dir()

    grid("session", "pause", "dbg")
    assert _session(grid, "dbg")["status"] == "paused"
    with pytest.raises(OSError):
        _api_status(created["url"])
    assert (grid.home / "sessions" / "dbg" / "work" / "analyse.py").is_file()
    assert "paused" in next(ln for ln in grid("status").stdout.splitlines() if "│ dbg" in ln)

    resumed = grid("session", "resume", "dbg").stdout
    url = resumed.split("JupyterLab: ")[1].strip()
    assert _api_status(url)["kernels"] == 0
    assert _session(grid, "dbg")["status"] == "running"

    grid("session", "delete", "dbg")
    assert grid.json("session", "list") == []
    assert not (grid.home / "sessions" / "dbg").exists()
    with pytest.raises(OSError):
        _api_status(url)
    assert Path(env).is_dir()  # the cached environment stays for runs and sessions


def test_an_idle_session_pauses_itself(grid: Any, project: Path) -> None:
    created = grid.json(  # Grid's --cluster: the local one is where sessions run
        "session", "create", "--cluster", "local", "--name", "idler", "--idle", "2s", cwd=project
    )
    assert created["status"] == "running"
    _wait_for("the idle pause", lambda: _session(grid, "idler")["status"] == "paused")
    assert "idle for" in (_session(grid, "idler")["message"] or "")


def test_bad_session_input_is_one_line(grid: Any, project: Path) -> None:
    for args, words in [
        (("session", "ssh", "nope", "--", "true"), "No session named 'nope'"),
        (("session", "pause", "nope"), "No session named 'nope'"),
        (("session", "create", "--backend", "ray"), "local and docker backends only"),
        (("session", "create", "--base_image", "x"), "pass --backend docker with it"),
        (("session", "create", "--backend", "docker", "--vscode"), "VS Code runs in local"),
        (("session", "create", "--idle", "soon"), "--idle 'soon' is not a duration"),
        (("session", "create", "--from", "no-such-run"), "No run or experiment named"),
        (("session", "create", str(project / "missing")), "does not exist"),
    ]:
        done = grid(*args, cwd=project, check=False)
        assert done.returncode != 0, args
        assert words in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_a_docker_session_without_an_engine_is_one_line(grid: Any, project: Path) -> None:
    import subprocess
    import sys

    env = dict(grid.env, DOCKER_HOST=f"unix://{project}/no-engine.sock")
    done = subprocess.run(
        [sys.executable, "-m", "gridrun", "session", "create", "--backend", "docker"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0 and "No Docker engine answers at" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert grid.json("session", "list") == []  # nothing recorded
