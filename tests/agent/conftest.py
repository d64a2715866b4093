"""Fixtures of the agent's tests driven through the in-process fake engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridrun.home import GridHome
from gridrun.store.db import Store


@pytest.fixture
def home(grid_home: Path, monkeypatch: pytest.MonkeyPatch) -> GridHome:
    """A GRID_HOME where the testing backends (the fake engine) may be named."""
    monkeypatch.setenv("GRIDRUN_TEST_BACKENDS", "1")
    return GridHome(grid_home).ensure()


@pytest.fixture
def store(home: GridHome) -> Store:
    return Store(home.db_path)
