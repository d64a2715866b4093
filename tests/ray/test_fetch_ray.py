"""Ray nodes fetch a run's commit themselves: from a real ``git daemon`` when they reach
it, else the run's uploaded snapshot (gridrun.project.refetch, backends/ray/node.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from gitservers import git_daemon, make_repo

pytestmark = pytest.mark.ray


def test_a_node_fetches_a_non_tip_commit_from_the_repository(ray_grid: Any, tmp_path: Path) -> None:
    served = tmp_path / "served"
    _repo, (first, _second) = make_repo(served)
    with git_daemon(served) as base:
        url = f"{base}/repo"
        ray_grid(
            "run", "--backend", "ray", "--name", "fetched", "--repo", url, "--ref", first,
            "src/train.py", "--lr", "0.1",
        )  # fmt: skip
        data = ray_grid.wait("fetched", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], data
    log = ray_grid("logs", "fetched-exp0").stdout
    assert f"gridrun: fetched {url}@{first[:12]} on node " in log, log
    assert "version one ['--lr', '0.1']" in log  # the first commit's script, not the tip's
    assert "unreachable" not in log


def test_a_node_that_cannot_reach_the_repository_runs_the_uploaded_snapshot(
    ray_grid: Any, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    _repo, (_first, second) = make_repo(served)
    work = tmp_path / "clone"
    with git_daemon(served) as base:
        url = f"{base}/repo"
        subprocess.run(["git", "clone", "-q", url, str(work)], check=True)
    # The server has stopped: the checkout still records (url, commit), which its
    # remote branch holds, but no node can fetch it.
    ray_grid("run", "--backend", "ray", "--name", "fallback", "src/train.py", cwd=work)
    data = ray_grid.wait("fallback", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], data
    assert data["repo"] == f"{url}@{second}", data
    log = ray_grid("logs", "fallback-exp0").stdout
    assert "gridrun: repository unreachable from node " in log, log
    assert ": using the uploaded snapshot (" in log
    assert "version two" in log


def test_a_dirty_checkout_is_fetched_with_its_diff_and_untracked_files(
    ray_grid: Any, tmp_path: Path
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
        ray_grid("run", "--backend", "ray", "--name", "dirty", "src/train.py", cwd=work)
        data = ray_grid.wait("dirty", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], data
    log = ray_grid("logs", "dirty-exp0").stdout
    assert f"gridrun: fetched {url}@{second[:12]} with its uncommitted changes on node " in log
    assert "uncommitted untracked data" in log, log
