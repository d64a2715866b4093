"""``grid run --repo URL --ref REF``: code from a repository at one commit, through real
git servers on loopback (file://, git daemon, smart HTTP with a token)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from gitservers import git_daemon, http_backend, make_repo
from gridrun.project.repository import github_file_link, shown_url


def _run(grid: Any, *args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Submit, wait, and return (run name, the experiment's output)."""
    saved = grid.env
    if env is not None:
        grid.env = {**saved, **env}
    try:
        out = grid("run", *args).stdout
    finally:
        grid.env = saved
    name = re.search(r"grid_name:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    status = grid.wait(name)
    assert status["experiments"][0]["status"] == "succeeded", status
    return name, grid("logs", f"{name}-exp0").stdout


def test_each_commit_runs_its_own_script_and_a_rerun_fetches_nothing(
    grid: Any, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    _repo, (first, second) = make_repo(served)
    with git_daemon(served) as base:
        url = f"{base}/repo"
        name, log = _run(grid, "--repo", url, "--ref", first, "src/train.py", "--lr", "0.1")
        assert "version one ['--lr', '0.1']" in log  # a commit that is not the tip
        status = grid.json("status", name)
        assert isinstance(status, dict) and status["repo"] == f"{url}@{first}"
        _name, log = _run(grid, "--repo", url, "--ref", "main", "src/train.py")
        assert "version two" in log
        trees = sorted(p.name for p in (grid.home / "cache" / "repos").glob("*/trees/*"))
        assert trees == sorted([first, second])
        again = grid("run", "--repo", url, "--ref", first, "src/train.py").stdout
        assert f"repository:              {url}@{first}" in again
    # The server is gone: the same commit still runs, from the cache alone.
    proc = grid("run", "--repo", url, "--ref", first, "src/train.py")
    assert "from the repository cache (nothing fetched)" in proc.stderr


def test_a_fresh_grid_home_rebuilds_the_same_tree(grid: Any, tmp_path: Path) -> None:
    served = tmp_path / "served"
    _repo, (first, _second) = make_repo(served)
    url = f"file://{served / 'repo'}"
    name, _log = _run(grid, "--repo", url, "--ref", first, "src/train.py")
    digest = grid.json("status", name)["snapshot"]  # type: ignore[index]
    other = dict(grid.env, GRID_HOME=str(tmp_path / "elsewhere"))
    out = grid.__class__(tmp_path / "elsewhere", other)(
        "-o", "json", "run", "--repo", url, "--ref", first, "src/train.py"
    ).stdout
    assert json.loads(out)["snapshot"] == digest
    grid.__class__(tmp_path / "elsewhere", other)("agent", "stop", check=False)


def test_a_private_repository_over_https_takes_git_token(grid: Any, tmp_path: Path) -> None:
    served = tmp_path / "served"
    _repo, (first, _second) = make_repo(served)
    token = "tok-" + os.urandom(8).hex()
    with http_backend(served, token) as base:
        url = f"{base}/repo"
        refused = grid("run", "--repo", url, "src/train.py", check=False)
        assert refused.returncode != 0 and "refused access" in refused.stderr
        assert "Set GIT_TOKEN" in refused.stderr and "Traceback" not in refused.stderr
        _name, log = _run(
            grid, "--repo", url, "--ref", first, "src/train.py", env={"GIT_TOKEN": token}
        )
        assert "version one" in log
    # The token is used, never kept: not in the store, the records or any log.
    for path in grid.home.rglob("*"):
        if path.is_file() and "cache" not in path.parts:
            assert token.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ref", "no-such-branch", "src/train.py"], "No branch, tag or commit 'no-such-branch'"),
        (["src/missing.py"], "'src/missing.py' is not in"),
        (
            ["--ref", "0" * 40, "src/train.py"],
            "No commit '0000000000000000000000000000000000000000'",
        ),
        (["--localdir", ".", "src/train.py"], "give one"),
    ],
)
def test_bad_repository_input_is_one_line(
    grid: Any, tmp_path: Path, args: list[str], message: str
) -> None:
    served = tmp_path / "served"
    make_repo(served)
    proc = grid("run", "--repo", f"file://{served / 'repo'}", *args, check=False, cwd=tmp_path)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2


def test_unreachable_hosts_and_non_repositories_are_one_line(grid: Any, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    for url, message in (
        ("git://127.0.0.1:9/repo", "Cannot fetch from git://127.0.0.1:9/repo"),
        (str(tmp_path / "plain"), "is not a git repository"),
    ):
        proc = grid("run", "--repo", url, "train.py", check=False)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    ref_alone = grid("run", "--ref", "main", "train.py", check=False, cwd=tmp_path)
    assert ref_alone.returncode == 2 and "--ref needs --repo" in ref_alone.stderr


@pytest.mark.unit
def test_github_file_links_and_shown_urls() -> None:
    assert github_file_link("https://github.com/pytorch/examples/blob/main/dcgan/main.py") == (
        "https://github.com/pytorch/examples.git",
        "main",
        "dcgan/main.py",
    )
    assert github_file_link("train.py") is None
    assert shown_url("https://user:secret@example.com/o/r.git") == "https://example.com/o/r.git"
    assert shown_url("git@github.com:o/r.git") == "git@github.com:o/r.git"


def test_the_dashboards_form_takes_a_repository(grid: Any, tmp_path: Path) -> None:
    import subprocess
    import sys
    import urllib.parse
    import urllib.request

    served = tmp_path / "served"
    _repo, (first, _second) = make_repo(served)
    ui = subprocess.Popen(
        [sys.executable, "-m", "gridrun", "ui", "--port", "0"],
        env=grid.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert ui.stdout is not None
        found = re.search(r"(http://\S+/)\?token=(\S+)", ui.stdout.readline())
        assert found, "grid ui printed no URL"
        base, token = found.groups()
        body = urllib.parse.urlencode(
            {
                "repo": f"file://{served / 'repo'}",
                "ref": first[:10],
                "script": "src/train.py",
                "args": "--seed 3",
                "step": "submit",
            }
        ).encode()
        req = urllib.request.Request(
            base + "runs/new", data=body, method="POST", headers={"Authorization": f"token {token}"}
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            name = resp.url.rstrip("/").rsplit("/", 1)[1]
        status = grid.wait(name)
        assert status["repo"] == f"file://{served / 'repo'}@{first}"
        assert "version one ['--seed', '3']" in grid("logs", f"{name}-exp0").stdout
    finally:
        ui.terminate()
        ui.wait(10)
        if ui.stdout is not None:
            ui.stdout.close()


def test_gc_removes_trees_no_run_was_made_from(grid: Any, tmp_path: Path) -> None:
    import time

    served = tmp_path / "served"
    _repo, (first, second) = make_repo(served)
    url = f"file://{served / 'repo'}"
    kept, _log = _run(grid, "--repo", url, "--ref", first, "src/train.py")
    gone, _log = _run(grid, "--repo", url, "--ref", second, "src/train.py")
    grid("delete", "run", gone)
    trees = grid.home / "cache" / "repos"
    then = time.time() - 3600  # past the collection's grace period
    for path in trees.glob("*/trees/*"):
        os.utime(path, (then, then))
    grid("gc")
    assert sorted(p.name for p in trees.glob("*/trees/*")) == [first]
    assert grid.json("status", kept)["repo"].endswith(first)  # type: ignore[index]
