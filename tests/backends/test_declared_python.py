"""A Python version the project declares is honoured when installed, else warned about."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from gridrun.envs.pyselect import installed_pythons


def _other_python() -> str:
    """An installed Python 3 other than the one running gridrun."""
    here = tuple(sys.version_info[:2])
    others = sorted(v for v in installed_pythons() if v[0] == 3 and v != here)
    if not others:
        if os.environ.get("CI"):
            pytest.fail("CI must have a second Python 3 installed (see .ci/run)")
        pytest.skip("no second Python 3 installed here")
    major, minor = others[-1]
    return f"{major}.{minor}"


def _project(tmp_path: Path, python: str) -> Path:
    p = tmp_path / "declares"
    p.mkdir()
    (p / "environment.yml").write_text(f"name: x\ndependencies:\n  - python={python}\n  - pip\n")
    (p / "which.py").write_text("import sys\nprint('PY', '%d.%d' % sys.version_info[:2])\n")
    return p


def test_a_declared_python_that_is_installed_is_used(grid, tmp_path: Path) -> None:
    want = _other_python()
    project = _project(tmp_path, want)
    proc = grid("run", "--cpus", "1", "which.py", cwd=project)
    assert f"Using Python {want}, as environment.yml declares." in proc.stderr
    (run,) = grid.json("history")
    grid.wait(run["name"], timeout=300)
    logs = grid("logs", f"{run['name']}-exp0").stdout
    assert f"PY {want}" in logs


def test_a_declared_python_that_is_not_installed_is_warned_about(grid, tmp_path: Path) -> None:
    project = _project(tmp_path, "3.99")
    proc = grid("run", "--dry_run", "--cpus", "1", "which.py", cwd=project)
    assert (
        "environment.yml declares Python 3.99, which is not installed here; using Python "
        f"{sys.version_info[0]}.{sys.version_info[1]}. Install it, or pass --python."
    ) in proc.stderr
