"""Where a run's code came from, so that its exact tree can be rebuilt: ``--rerun``.

When the project folder is a git checkout with a remote (and no ``--localdir`` was
given), a run records ``(url, commit, diff)`` as dstack does: the remote, the commit
checked out, the uncommitted changes to tracked files (``git diff --binary HEAD``) and
the untracked files the ignore rules kept. ``grid run --rerun RUN`` rebuilds the tree
from that record, through the repository cache (:mod:`gridrun.project.repository`):
the commit's tree, the diff applied, the untracked files from the run's snapshot; and
says whether the result is the same tree (the snapshot digest). A run with no record
(a plain folder, a commit never pushed) is re-run from its snapshot.

The record is ``GRID_HOME/runs/<run>/source.json`` and ``source.diff`` (0600); the
URL is kept without any credentials it carried.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gridrun.errors import ProjectError
from gridrun.fsutil import atomic_write_bytes, atomic_write_text
from gridrun.home import GridHome
from gridrun.project.manifest import load_manifest, object_path
from gridrun.project.repository import checkout, shown_url


@dataclass(frozen=True)
class SourceRecord:
    repo: str  # the remote, shown without credentials
    commit: str
    subdir: str  # the project folder inside the checkout ("" at its root)
    diff: bytes  # uncommitted changes to tracked files, binary-safe
    untracked: tuple[str, ...]  # files git does not track that the snapshot kept
    pushed: bool  # the commit is on a remote branch (so another machine can fetch it)

    @property
    def dirty(self) -> bool:
        return bool(self.diff or self.untracked)


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    try:
        return subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, env=env, timeout=60
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return subprocess.CompletedProcess(args, 1, b"", b"")


def record_checkout(folder: Path, snapshot_paths: list[str]) -> SourceRecord | None:
    """The record of a checkout with a remote; None for anything else (no error: a
    plain folder is an ordinary project)."""
    top_out = _git(folder, "rev-parse", "--show-toplevel")
    if top_out.returncode != 0:
        return None
    top = Path(top_out.stdout.decode().strip())
    remotes = _git(top, "remote").stdout.decode().split()
    if not remotes:
        return None
    remote = "origin" if "origin" in remotes else remotes[0]
    url = _git(top, "remote", "get-url", remote).stdout.decode().strip()
    head = _git(top, "rev-parse", "--verify", "HEAD")
    if not url or head.returncode != 0:
        return None  # no commit yet
    commit = head.stdout.decode().strip()
    try:
        subdir = Path(os.path.realpath(folder)).relative_to(os.path.realpath(top)).as_posix()
    except ValueError:
        return None
    subdir = "" if subdir == "." else subdir
    scope = subdir or "."
    diff = _git(top, "diff", "--binary", "HEAD", "--", scope).stdout
    tracked = _git(top, "ls-files", "-z", "--", scope).stdout.decode(errors="surrogateescape")
    prefix = f"{subdir}/" if subdir else ""
    in_git = {p[len(prefix) :] for p in tracked.split("\0") if p}
    untracked = tuple(sorted(p for p in snapshot_paths if p not in in_git))
    pushed = bool(_git(top, "branch", "-r", "--contains", commit).stdout.strip())
    return SourceRecord(shown_url(url), commit, subdir, diff, untracked, pushed)


def _record_dir(home: GridHome, run_name: str) -> Path:
    return home.run_dir(run_name)


def save(home: GridHome, run_name: str, rec: SourceRecord) -> None:
    folder = _record_dir(home, run_name)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    doc = {
        "repo": rec.repo,
        "commit": rec.commit,
        "subdir": rec.subdir,
        "untracked": list(rec.untracked),
        "pushed": rec.pushed,
    }
    atomic_write_bytes(folder / "source.diff", rec.diff)
    atomic_write_text(folder / "source.json", json.dumps(doc))
    for name in ("source.diff", "source.json"):
        (folder / name).chmod(0o600)


def load(home: GridHome, run_name: str) -> SourceRecord | None:
    folder = _record_dir(home, run_name)
    try:
        doc = json.loads((folder / "source.json").read_text())
        diff = (folder / "source.diff").read_bytes()
    except (OSError, ValueError):
        return None
    return SourceRecord(
        str(doc["repo"]),
        str(doc["commit"]),
        str(doc.get("subdir") or ""),
        diff,
        tuple(doc.get("untracked") or ()),
        bool(doc.get("pushed")),
    )


def rebuild(home: GridHome, run_name: str, manifest: Path, into: Path) -> tuple[Path, str]:
    """The run's project folder rebuilt under ``into``; returns it and how it was made.

    From the record where there is one (the repository at the commit, the diff, the
    untracked files), else from the run's snapshot.
    """
    from gridrun.project.materialize import materialize

    rec = load(home, run_name)
    if rec is None:
        folder = into / "project"
        materialize(manifest, home.objects, folder)
        return folder, "its snapshot"
    try:
        found = checkout(home, rec.repo, rec.commit)
    except ProjectError as exc:  # the commit was never pushed, or the server is gone
        folder = into / "project"
        materialize(manifest, home.objects, folder)
        return folder, f"its snapshot ({exc.message.rstrip('.')})"
    tree = into / "tree"
    shutil.copytree(found.tree, tree, symlinks=True)
    if rec.diff:
        applied = subprocess.run(
            ["git", "apply", "--binary", "--whitespace=nowarn", "-"],
            input=rec.diff,
            cwd=tree,
            capture_output=True,
            check=False,
        )
        if applied.returncode != 0:
            why = applied.stderr.decode(errors="replace").strip().splitlines()
            raise ProjectError(
                f"Cannot apply {run_name}'s uncommitted changes to {rec.repo}@{rec.commit[:12]} "
                f"({why[-1] if why else 'git apply failed'})."
            )
    folder = tree / rec.subdir if rec.subdir else tree
    files = load_manifest(manifest)
    for rel in rec.untracked:
        entry = files.get(rel)
        if entry is None:
            continue
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if entry.link is not None:
            os.symlink(entry.link, dest)
        elif entry.sha256 is not None:
            shutil.copyfile(object_path(home.objects, entry.sha256), dest)
            dest.chmod(entry.mode)
    how = f"{rec.repo}@{rec.commit[:12]}" + (" with its uncommitted changes" if rec.dirty else "")
    return folder, how


def scratch() -> Path:
    """A private folder outside GRID_HOME for a rebuilt tree (removed by the caller)."""
    return Path(tempfile.mkdtemp(prefix="gridrun-rerun-"))
