"""Fixtures for the security probe's reproductions: a GridHome and an unprivileged user.

Tests that matter for other users run a real process as ``nobody`` (uid 65534) through
``setpriv``. A worktree under /root is not readable by nobody, so what nobody must run
(an interpreter, gridrun's sources) is found or copied to a world-readable temp place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridrun.home import GridHome
from nobody import NOBODY, python_for_nobody

NOBODY_UID = 65534
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def home(grid_home: Path) -> GridHome:
    return GridHome(grid_home).ensure()


class Nobody:
    """Runs Python code as uid 65534, with a readable copy of gridrun's sources."""

    def __init__(self, python: str, base: Path) -> None:
        self.python = python
        self.base = base
        self.src = base / "src"
        shutil.copytree(SRC, self.src, ignore=shutil.ignore_patterns("__pycache__"))
        for dirpath, _dirnames, filenames in os.walk(base):
            os.chmod(dirpath, 0o755)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o644)

    def run(self, code: str, *args: str, env: dict[str, str] | None = None):
        return subprocess.run(
            [*NOBODY, "env", self.python, "-c", code, *args],
            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(self.src), **(env or {})},
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def nobody() -> Iterator[Nobody]:
    """The unprivileged user: these tests run as root in CI, so they must not skip there."""
    if os.geteuid() != 0:
        pytest.skip("already unprivileged: the root-only half of this test does not apply")
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed to test as nobody"
    python = python_for_nobody("json, hashlib")
    assert python, "no Python interpreter that nobody can run"
    base = Path(tempfile.mkdtemp(prefix="gridrun-nobody-"))
    os.chmod(base, 0o755)
    try:
        yield Nobody(python, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
