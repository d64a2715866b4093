"""Slurm tasks fetch a run's commit themselves: from a real ``git daemon`` when their
node reaches it, else the snapshot in the shared GRID_HOME (backends/slurm/task.py).
The cases are the engines' shared ones (:mod:`enginefetch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from enginefetch import (
    fetch_a_dirty_checkout,
    fetch_a_non_tip_commit,
    run_the_snapshot_when_unreachable,
)

pytestmark = pytest.mark.slurm


def test_a_task_fetches_a_non_tip_commit_into_the_configured_cache(
    slurm_grid: Any, tmp_path: Path
) -> None:
    cache = tmp_path / "shared repos"
    config = slurm_grid.home / "config.yaml"
    before = config.read_text() if config.exists() else ""
    config.write_text(before + f"slurm:\n  repo_cache: '{cache}'\n")
    _url, first, _log = fetch_a_non_tip_commit(slurm_grid, "slurm", tmp_path, 300)
    assert [p.name for p in cache.glob("*/trees/*")] == [first]


def test_a_task_that_cannot_reach_the_repository_runs_the_snapshot(
    slurm_grid: Any, tmp_path: Path
) -> None:
    log = run_the_snapshot_when_unreachable(slurm_grid, "slurm", tmp_path, 300)
    assert ": using the run's snapshot (" in log  # nothing was uploaded: GRID_HOME's


def test_a_dirty_checkout_is_fetched_with_its_diff_and_untracked_files(
    slurm_grid: Any, tmp_path: Path
) -> None:
    fetch_a_dirty_checkout(slurm_grid, "slurm", tmp_path, 300)
