"""A checkout's run records (url, commit, diff); ``grid run --rerun`` rebuilds its tree."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path
from typing import Any


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _checkout(tmp_path: Path, push: bool = True) -> Path:
    """A clone of a served repository, with a changed tracked file and an untracked one."""
    served = tmp_path / "served"
    served.mkdir()
    _git(served, "init", "-q", "-b", "main")
    _git(served, "config", "user.email", "t@example.invalid")
    _git(served, "config", "user.name", "t")
    (served / "sub").mkdir()
    (served / "sub" / "train.py").write_text("print('committed')\n")
    (served / "sub" / ".gitignore").write_text("*.log\n")
    _git(served, "add", ".")
    _git(served, "commit", "-q", "-m", "one")
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", f"file://{served}", str(work)], check=True)
    _git(work, "config", "user.email", "t@example.invalid")
    _git(work, "config", "user.name", "t")
    if not push:
        (work / "sub" / "extra.py").write_text("X = 1\n")
        _git(work, "add", ".")
        _git(work, "commit", "-q", "-m", "local only")
    (work / "sub" / "train.py").write_text(
        "import os\nprint('uncommitted', open('data.txt').read().strip(), "
        "os.path.exists('run.log'))\n"
    )
    (work / "sub" / "data.txt").write_text("untracked data\n")
    (work / "sub" / "run.log").write_text("ignored\n")
    return work / "sub"


def _submit(grid: Any, *args: str, cwd: Path) -> tuple[str, str]:
    proc = grid("run", *args, cwd=cwd)
    found = re.search(r"grid_name:\s+(\S+)", proc.stdout) or re.search(
        r"Run (\S+) submitted", proc.stdout
    )
    assert found, proc.stdout
    return found.group(1), proc.stdout + proc.stderr


def test_a_dirty_checkout_is_recorded_and_rebuilt_exactly(grid: Any, tmp_path: Path) -> None:
    project = _checkout(tmp_path)
    name, out = _submit(grid, "train.py", cwd=project)
    assert "+ uncommitted changes" in out and "file://" in out
    grid.wait(name)
    first = grid("logs", f"{name}-exp0").stdout
    assert "uncommitted untracked data False" in first
    record = grid.home / "runs" / name
    doc = json.loads((record / "source.json").read_text())
    assert doc["subdir"] == "sub" and doc["untracked"] == ["data.txt"] and doc["pushed"]
    assert b"uncommitted" in (record / "source.diff").read_bytes()
    for f in ("source.json", "source.diff"):
        assert stat.S_IMODE((record / f).stat().st_mode) == 0o600
    # Rebuilt elsewhere, from the repository: the checkout itself is gone.
    subprocess.run(["rm", "-rf", str(project.parent)], check=True)
    again, out = _submit(grid, "--rerun", name, cwd=tmp_path)
    assert "with its uncommitted changes: the same tree" in out
    status = grid.wait(again)
    assert status["snapshot"] == grid.json("status", name)["snapshot"]  # type: ignore[index]
    assert "uncommitted untracked data False" in grid("logs", f"{again}-exp0").stdout


def test_localdir_and_plain_folders_rerun_from_their_snapshot(grid: Any, tmp_path: Path) -> None:
    project = _checkout(tmp_path)
    name, _out = _submit(grid, "--localdir", str(project), "train.py", cwd=tmp_path)
    assert not (grid.home / "runs" / name / "source.json").exists()  # a plain upload
    grid.wait(name)
    again, out = _submit(grid, "--rerun", name, cwd=tmp_path)
    assert "from its snapshot: the same tree" in out
    assert grid.wait(again)["experiments"][0]["status"] == "succeeded"


def test_an_unpushed_commit_is_said_and_reruns_from_the_snapshot(grid: Any, tmp_path: Path) -> None:
    project = _checkout(tmp_path, push=False)
    name, out = _submit(grid, "train.py", cwd=project)
    assert "is on no branch of" in out
    grid.wait(name)
    again, out = _submit(grid, "--rerun", name, cwd=tmp_path)
    assert "its snapshot (No commit" in out and "the same tree" in out
    grid.wait(again)


def test_bad_reruns_are_one_line(grid: Any, tmp_path: Path) -> None:
    for args, text in (
        (["--rerun", "no-such-run"], "No run named"),
        (["--rerun", "x", "train.py"], "give no script"),
        ([], "Missing argument 'SCRIPT'"),
    ):
        proc = grid("run", *args, check=False, cwd=tmp_path)
        assert proc.returncode != 0 and text in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
