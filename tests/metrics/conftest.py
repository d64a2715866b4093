"""A store with one run of experiments, for the metrics tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridrun.specs import ExperimentSpec
from gridrun.store.db import Store
from spec_helpers import run_spec


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "grid.db")
    s.create_run(
        name="metric-run",
        backend="local",
        spec=run_spec(),
        env_key=None,
        experiments=[ExperimentSpec(i, ("t.py",), {"lr": str(i)}) for i in range(3)],
    )
    return s


@pytest.fixture
def exp_ids(store: Store) -> list[int]:
    return [e.id for e in store.get_run("metric-run").experiments]
