"""Ray nodes fetch a run's commit themselves: from a real ``git daemon`` when they reach
it, else the run's uploaded snapshot (gridrun.project.refetch, backends/ray/node.py)."""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from enginefetch import (
    fetch_a_dirty_checkout,
    fetch_a_non_tip_commit,
    make_dirty,
    run_the_snapshot_when_unreachable,
    served_clone,
)
from gitservers import git_daemon, make_repo

pytestmark = pytest.mark.ray


def test_a_node_fetches_a_non_tip_commit_from_the_repository(ray_grid: Any, tmp_path: Path) -> None:
    _url, _first, log = fetch_a_non_tip_commit(ray_grid, "ray", tmp_path, 600)
    assert "unreachable" not in log


def test_a_node_that_cannot_reach_the_repository_runs_the_uploaded_snapshot(
    ray_grid: Any, tmp_path: Path
) -> None:
    log = run_the_snapshot_when_unreachable(ray_grid, "ray", tmp_path, 600)
    assert ": using the uploaded snapshot (" in log


def test_a_dirty_checkout_is_fetched_with_its_diff_and_untracked_files(
    ray_grid: Any, tmp_path: Path
) -> None:
    fetch_a_dirty_checkout(ray_grid, "ray", tmp_path, 600)


# ------------------------------------------------------- ray.nodes_fetch: always, never
def _add_big_file(repo: Path) -> str:
    """A third commit: a 5 MiB data file (random bytes: no compression hides it) that the
    script reads; returns its SHA."""
    import random

    (repo / "data").mkdir()
    (repo / "data" / "big.bin").write_bytes(random.Random(24).randbytes(BIG))
    (repo / "src" / "train.py").write_text(
        "print('big file of', len(open('data/big.bin', 'rb').read()), 'bytes')\n"
    )
    for args in (["add", "."], ["commit", "-q", "-m", "big"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


BIG = 5 * 2**20


def _packages(home: Path, run: str) -> dict[str, int]:
    """The run's Ray packages on disk: folder name -> size of its snapshot tar."""
    found = home.glob(f"**/{run}/ray/*/package*/snapshot.tar")
    return {p.parent.name: p.stat().st_size for p in found}


def test_with_nodes_fetch_always_the_committed_files_are_not_shipped(
    ray_grid: Any, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    repo, _shas = make_repo(served)
    tip = _add_big_file(repo)
    with git_daemon(served) as base:
        url = f"{base}/repo"
        ray_grid(
            "run", "--backend", "ray", "--ray_nodes_fetch", "always", "--name", "always",
            "--repo", url, "--ref", tip, "src/train.py",
        )  # fmt: skip
        data = ray_grid.wait("always", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], data
    log = ray_grid("logs", "always-exp0").stdout
    # "took ... from the node's repository cache" if an earlier test left that commit.
    assert re.search(rf"gridrun: (fetched|took) {re.escape(url)}@{tip[:12]} ", log), log
    assert f"big file of {BIG} bytes" in log  # the fetched tree has it
    packages = _packages(ray_grid.home, "always")
    assert list(packages) == ["package-fetch"], packages  # never the whole snapshot
    assert packages["package-fetch"] < 64 * 2**10, packages
    tar = next(ray_grid.home.glob("**/always/ray/*/package-fetch/snapshot.tar"))
    assert (repo / "data" / "big.bin").read_bytes()[:4096] not in tar.read_bytes()


def test_with_nodes_fetch_always_an_unreachable_repository_fails_in_one_line(
    ray_grid: Any, tmp_path: Path
) -> None:
    with served_clone(tmp_path) as (_url, work, _sha):
        pass
    # The server has stopped; the setting comes from GRID_HOME/config.yaml this time.
    config = ray_grid.home / "config.yaml"
    config.write_text(config.read_text() + "ray:\n  nodes_fetch: always\n")
    ray_grid("run", "--backend", "ray", "--name", "unreachable", "src/train.py", cwd=work)
    data = ray_grid.wait("unreachable", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["failed"], data
    log = ray_grid("logs", "unreachable-exp0").stdout
    lines = [line for line in log.splitlines() if "repository unreachable" in line]
    assert len(lines) == 1, log
    assert " from node " in lines[0]
    assert ": ray.nodes_fetch is always and no snapshot was shipped (" in lines[0], lines
    assert "version two" not in log  # nothing ran
    assert "Traceback" not in log


def test_with_nodes_fetch_never_nodes_run_the_uploaded_snapshot(
    ray_grid: Any, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    _repo, (first, _second) = make_repo(served)
    with git_daemon(served) as base:
        url = f"{base}/repo"
        ray_grid(
            "run", "--backend", "ray", "--ray_nodes_fetch", "never", "--name", "never",
            "--repo", url, "--ref", first, "src/train.py",
        )  # fmt: skip
        data = ray_grid.wait("never", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], data
    log = ray_grid("logs", "never-exp0").stdout
    assert "version one" in log, log
    assert "gridrun: fetched" not in log and "unreachable" not in log
    assert list(_packages(ray_grid.home, "never")) == ["package"]


def test_with_nodes_fetch_always_a_dirty_checkout_ships_only_its_untracked_files(
    ray_grid: Any, tmp_path: Path
) -> None:
    with served_clone(tmp_path) as (url, work, second):
        make_dirty(work)
        ray_grid(
            "run", "--backend", "ray", "--ray_nodes_fetch", "always", "--name", "dirtyalways",
            "src/train.py", cwd=work,
        )  # fmt: skip
        data = ray_grid.wait("dirtyalways", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], data
    log = ray_grid("logs", "dirtyalways-exp0").stdout
    assert re.search(rf"gridrun: (fetched|took) {re.escape(url)}@{second[:12]} with its", log), log
    assert "uncommitted untracked data" in log, log
    tar = next(ray_grid.home.glob("**/dirtyalways/ray/*/package-fetch/snapshot.tar"))
    with tarfile.open(tar) as t:  # the diff travels in the task's message, not here
        assert t.getnames() == ["src/data.txt"]
