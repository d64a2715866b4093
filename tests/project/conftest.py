"""Fixtures for the project stage (``weird_tmp_path`` comes from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridrun.home import GridHome


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GridHome:
    root = tmp_path / "grid home"
    monkeypatch.setenv("GRID_HOME", str(root))
    return GridHome.from_env().ensure()
