"""A run's working copy rebuilt on the node that runs it, from its repository.

Grid's nodes cloned the user's repository themselves. A gridrun run from a repository
(``grid run --repo``) or from a pushed checkout records where its code came from
(:mod:`gridrun.project.source`); a Ray or Slurm node that can reach that repository
fetches the commit into its own cache (:func:`gridrun.project.repository.checkout_in`:
one fetch per node and commit, whatever the sweep's size), applies the checkout's
uncommitted diff, and copies exactly the snapshot's files out of it, the untracked ones
from the snapshot itself. What runs must be what was recorded: the copy's digest, taken
as the snapshot's own (:func:`~gridrun.project.manifest.canonical_hash`), must equal
the run's, or the copy is thrown away. Anything that goes wrong (the host unreachable
from the node, a commit never pushed, a digest that differs) leaves the node on the
run's snapshot, as before, and the experiment's log says which in one line.

Credentials are the node's own (its git configuration, ``~/.ssh``, its ``GIT_TOKEN``):
an origin carries the URL as shown (no user or password), never a secret.

Imports only the standard library and gridrun modules that do: nodes load it.
"""

from __future__ import annotations

import base64
import os
import posixpath
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridrun.project.manifest import FileEntry, canonical_hash, hash_file, normal_mode

# How long a node waits for one git command: it has the snapshot to fall back on, so
# a host that does not answer costs an experiment this much at most, not ten minutes.
NODE_TIMEOUT = 120.0
FALLBACK = "using the uploaded snapshot"


@dataclass(frozen=True)
class RepoOrigin:
    """Where a run's tree can be fetched: a commit of a repository, and for a checkout
    its folder inside the repository, uncommitted diff and untracked files."""

    url: str  # as shown: no credentials
    commit: str
    subdir: str = ""
    diff: bytes = b""
    untracked: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``owner/repo@sha`` (the URL itself when it names no owner)."""
        from gridrun.project.origin import owner_repo

        return f"{owner_repo(self.url) or self.url}@{self.commit[:12]}"

    def to_dict(self) -> dict[str, Any]:
        # JSON-safe (Slurm's job file): the diff is binary.
        return {
            "url": self.url,
            "commit": self.commit,
            "subdir": self.subdir,
            "diff": base64.b64encode(self.diff).decode("ascii"),
            "untracked": list(self.untracked),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RepoOrigin:
        return cls(
            url=str(d["url"]),
            commit=str(d["commit"]),
            subdir=str(d.get("subdir") or ""),
            diff=base64.b64decode(d.get("diff") or ""),
            untracked=tuple(str(p) for p in d.get("untracked") or ()),
        )


def run_origin(home: Any, run_name: str, repo: str | None, commit: str | None) -> RepoOrigin | None:
    """The origin a node may fetch the run from, None when it has to use the snapshot.

    ``home`` is the run's GridHome. A checkout's record (``source.json``) wins; a
    commit that is on no remote branch cannot be fetched elsewhere. Otherwise a run
    from ``--repo`` has its repository and commit in its spec.
    """
    from gridrun.project import source

    rec = source.load(home, run_name) if run_name else None
    if rec is not None:
        if not rec.pushed:
            return None
        return RepoOrigin(rec.repo, rec.commit, rec.subdir, rec.diff, rec.untracked)
    if repo and commit and len(commit) == 40:
        return RepoOrigin(repo, commit)
    return None


@dataclass(frozen=True)
class Outcome:
    """What :func:`fetch_working_copy` did, and the experiment's log line saying so."""

    fetched: bool  # False: the caller puts the snapshot in place instead
    line: str


def fetch_working_copy(
    origin: RepoOrigin,
    cache: Path,
    files: dict[str, FileEntry],
    digest: str,
    dest: Path,
    node: str,
    from_snapshot: Callable[[str, Path], None],
    fallback: str = FALLBACK,
) -> Outcome:
    """Fill the empty ``dest`` with the snapshot's ``files`` taken from the repository.

    ``from_snapshot(rel, target)`` writes one untracked file out of the run's snapshot.
    On any failure ``dest`` is removed and the outcome says why, for the log, ending
    with ``fallback``: what the node uses instead.
    """
    from gridrun.errors import GridError
    from gridrun.project.repository import checkout_in

    try:
        found = checkout_in(cache, origin.url, origin.commit, timeout=NODE_TIMEOUT)
    except GridError as exc:
        return Outcome(False, f"repository unreachable from node {node}: {fallback} ({_why(exc)})")
    except OSError as exc:  # a repo_cache this node cannot write, a full disk
        return Outcome(False, f"no repository cache on node {node}: {fallback} ({exc})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".refetch-", dir=dest.parent))
    try:
        base = found.tree
        if origin.diff:
            base = work / "tree"
            shutil.copytree(found.tree, base, symlinks=True)
            problem = _apply(base, origin.diff)
            if problem:
                return _differs(dest, origin, node, fallback, f"its diff does not apply: {problem}")
        base = base / origin.subdir if origin.subdir else base
        got = _copy_files(base, files, set(origin.untracked), dest, from_snapshot)
    except Exception as exc:  # whatever it is, the snapshot is there to run instead
        return _differs(dest, origin, node, fallback, f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if got is None or canonical_hash(got) != digest:
        return _differs(dest, origin, node, fallback, "its digest differs from the snapshot's")
    verb = "fetched" if found.fetched else "took"
    where = "" if found.fetched else " from the node's repository cache"
    extra = " with its uncommitted changes" if origin.diff or origin.untracked else ""
    return Outcome(True, f"{verb} {origin.label}{extra}{where} on node {node}")


def _copy_files(
    base: Path,
    files: dict[str, FileEntry],
    untracked: set[str],
    dest: Path,
    from_snapshot: Callable[[str, Path], None],
) -> dict[str, FileEntry] | None:
    """Copy the snapshot's files out of ``base``; the entries of what was copied, for
    the digest (None as soon as a file is missing or of another kind)."""
    from gridrun.project.materialize import copy_file

    got: dict[str, FileEntry] = {}
    dest.mkdir(parents=True, exist_ok=True)
    # Regular files first, links after: a link never stands where a folder is needed.
    for rel, entry in sorted(files.items(), key=lambda kv: (kv[1].link is not None, kv[0])):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel in untracked:
            from_snapshot(rel, target)
            mode = entry.mode
        else:
            source = base / rel
            if entry.link is not None:
                if not source.is_symlink():
                    return None
                os.symlink(entry.link, target)
                got[rel] = FileEntry(rel, None, 0, 0o777, _snapshot_link(base, rel))
                continue
            if source.is_symlink() or not source.is_file():
                return None
            copy_file(source, target)
            mode = normal_mode(source.lstat().st_mode)
        if target.is_symlink():  # an untracked link, as the snapshot has it
            got[rel] = FileEntry(rel, None, 0, 0o777, os.readlink(target))
            continue
        sha, size = hash_file(target)
        got[rel] = FileEntry(rel, sha, size, mode)
        os.chmod(target, entry.mode)
        if entry.mtime_ns:  # as the snapshot's: artifact detection compares stats
            os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns))
    return got


def _snapshot_link(base: Path, rel: str) -> str:
    """A link's target as a snapshot records it: relative, through the real path."""
    real = os.path.realpath(base / rel)
    target = os.path.relpath(real, os.path.realpath(base)).replace(os.sep, "/")
    return posixpath.relpath(target, posixpath.dirname(rel) or ".")


def _apply(tree: Path, diff: bytes) -> str:
    applied = subprocess.run(
        ["git", "apply", "--binary", "--whitespace=nowarn", "-"],
        input=diff,
        cwd=tree,
        capture_output=True,
        check=False,
    )
    if applied.returncode == 0:
        return ""
    why = applied.stderr.decode(errors="replace").strip().splitlines()
    return why[-1] if why else "git apply failed"


def _differs(dest: Path, origin: RepoOrigin, node: str, fallback: str, why: str) -> Outcome:
    shutil.rmtree(dest, ignore_errors=True)
    return Outcome(
        False, f"{origin.label} fetched on node {node} is not the run's tree ({why}): {fallback}"
    )


def _why(exc: Any) -> str:
    return str(getattr(exc, "message", "") or exc).rstrip(".")
