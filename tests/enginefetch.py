"""The cases every engine backend shares for runs from a repository (issue 24).

A node that reaches the run's repository fetches the commit itself; one that cannot
runs the snapshot; a dirty checkout is rebuilt with its diff and untracked files. Each
case runs through the real CLI (``grid``: the backend's fixture) against a real
``git daemon`` (:mod:`gitservers`), and returns the experiment's log for the
backend's own checks (what its fallback line says, where its cache is).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gitservers import git_daemon, make_repo

DIRTY_SCRIPT = "print('uncommitted', open('src/data.txt').read())\n"


def _ran(grid: Any, name: str, timeout: float) -> dict[str, Any]:
    data: dict[str, Any] = grid.wait(name, timeout=timeout)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], data
    return data


def fetch_a_non_tip_commit(
    grid: Any, backend: str, tmp_path: Path, timeout: float, *extra: str
) -> tuple[str, str, str]:
    """``--repo URL --ref FIRST``: (url, first commit, log); the first commit's script ran."""
    served = tmp_path / "served"
    _repo, (first, _second) = make_repo(served)
    with git_daemon(served) as base:
        url = f"{base}/repo"
        grid(
            "run", "--backend", backend, *extra, "--name", "fetched", "--repo", url,
            "--ref", first, "src/train.py", "--lr", "0.1",
        )  # fmt: skip
        _ran(grid, "fetched", timeout)
    log: str = grid("logs", "fetched-exp0").stdout
    assert f"gridrun: fetched {url}@{first[:12]} on node " in log, log
    assert "version one ['--lr', '0.1']" in log  # the first commit's script, not the tip's
    return url, first, log


@contextmanager
def served_clone(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """A checkout of a served repository: (url, its folder, its commit), the server up
    within the block and stopped after it."""
    served = tmp_path / "served"
    _repo, (_first, second) = make_repo(served)
    work = tmp_path / "clone"
    with git_daemon(served) as base:
        url = f"{base}/repo"
        subprocess.run(["git", "clone", "-q", url, str(work)], check=True)
        yield url, work, second


def run_the_snapshot_when_unreachable(
    grid: Any, backend: str, tmp_path: Path, timeout: float
) -> str:
    """The server stopped: the checkout still records (url, commit), which its remote
    branch holds, but no node can fetch it. The log, which says so, is returned."""
    with served_clone(tmp_path) as (url, work, second):
        pass
    grid("run", "--backend", backend, "--name", "fallback", "src/train.py", cwd=work)
    data = _ran(grid, "fallback", timeout)
    assert data["repo"] == f"{url}@{second}", data
    log: str = grid("logs", "fallback-exp0").stdout
    assert "gridrun: repository unreachable from node " in log, log
    assert "version two" in log
    return log


def make_dirty(work: Path) -> None:
    """An uncommitted change to the script and an untracked file it reads."""
    (work / "src" / "train.py").write_text(DIRTY_SCRIPT)
    (work / "src" / "data.txt").write_text("untracked data")


def fetch_a_dirty_checkout(
    grid: Any, backend: str, tmp_path: Path, timeout: float, *extra: str
) -> str:
    """A dirty checkout's run: fetched, its diff applied, its untracked file taken."""
    with served_clone(tmp_path) as (url, work, second):
        make_dirty(work)
        grid("run", "--backend", backend, *extra, "--name", "dirty", "src/train.py", cwd=work)
        _ran(grid, "dirty", timeout)
    log: str = grid("logs", "dirty-exp0").stdout
    assert f"gridrun: fetched {url}@{second[:12]} with its uncommitted changes on node " in log
    assert "uncommitted untracked data" in log, log
    return log
