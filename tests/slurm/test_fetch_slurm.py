"""Slurm tasks fetch a run's commit themselves: from a real ``git daemon`` when their
node reaches it, else the snapshot in the shared GRID_HOME (backends/slurm/task.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from gitservers import git_daemon, make_repo

pytestmark = pytest.mark.slurm


def test_a_task_fetches_a_non_tip_commit_into_the_configured_cache(
    slurm_grid: Any, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    _repo, (first, _second) = make_repo(served)
    cache = tmp_path / "shared repos"
    config = slurm_grid.home / "config.yaml"
    before = config.read_text() if config.exists() else ""
    config.write_text(before + f"slurm:\n  repo_cache: '{cache}'\n")
    with git_daemon(served) as base:
        url = f"{base}/repo"
        slurm_grid(
            "run", "--backend", "slurm", "--name", "fetched", "--repo", url, "--ref", first,
            "src/train.py", "--lr", "0.1",
        )  # fmt: skip
        data = slurm_grid.wait("fetched", timeout=300)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], data
    log = slurm_grid("logs", "fetched-exp0").stdout
    assert f"gridrun: fetched {url}@{first[:12]} on node " in log, log
    assert "version one ['--lr', '0.1']" in log  # the first commit's script, not the tip's
    assert [p.name for p in cache.glob("*/trees/*")] == [first]


def test_a_task_that_cannot_reach_the_repository_runs_the_snapshot(
    slurm_grid: Any, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    _repo, (_first, second) = make_repo(served)
    work = tmp_path / "clone"
    with git_daemon(served) as base:
        url = f"{base}/repo"
        subprocess.run(["git", "clone", "-q", url, str(work)], check=True)
    # The server has stopped: the checkout still records (url, commit), but no node
    # can fetch it.
    slurm_grid("run", "--backend", "slurm", "--name", "fallback", "src/train.py", cwd=work)
    data = slurm_grid.wait("fallback", timeout=300)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], data
    assert data["repo"] == f"{url}@{second}", data
    log = slurm_grid("logs", "fallback-exp0").stdout
    assert "gridrun: repository unreachable from node " in log, log
    assert ": using the run's snapshot (" in log
    assert "version two" in log


def test_a_dirty_checkout_is_fetched_with_its_diff_and_untracked_files(
    slurm_grid: Any, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    _repo, (_first, second) = make_repo(served)
    work = tmp_path / "clone"
    with git_daemon(served) as base:
        url = f"{base}/repo"
        subprocess.run(["git", "clone", "-q", url, str(work)], check=True)
        (work / "src" / "train.py").write_text(
            "print('uncommitted', open('src/data.txt').read())\n"
        )
        (work / "src" / "data.txt").write_text("untracked data")
        slurm_grid("run", "--backend", "slurm", "--name", "dirty", "src/train.py", cwd=work)
        data = slurm_grid.wait("dirty", timeout=300)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], data
    log = slurm_grid("logs", "dirty-exp0").stdout
    assert f"gridrun: fetched {url}@{second[:12]} with its uncommitted changes on node " in log
    assert "uncommitted untracked data" in log, log
