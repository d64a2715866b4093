"""The Ray tests share the session's one real local Ray cluster (``ray_cluster`` in
``tests/conftest.py``). They are never skipped: ``scripts/test`` installs ``gridrun[ray]``,
and without Ray they fail at import.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def ray_grid(grid, ray_cluster, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The real ``grid`` CLI pointed at the session's cluster (RAY_ADDRESS), with a
    ``marks`` folder where test scripts leave one file per experiment that ran."""
    marks = tmp_path / "marks"
    marks.mkdir()
    grid.env["RAY_ADDRESS"] = ray_cluster.gcs_address
    grid.marks = marks
    return grid
