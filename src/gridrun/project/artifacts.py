"""Finding and saving what an experiment produced.

An experiment's artifacts are the files in its working copy that are new or whose content
differs from the snapshot it started from: checkpoints, metrics, plots, edited configs.
Untouched files are recognised by size and modification time (``materialize`` restored
the snapshot's mtimes) and only hashed when those cannot decide.

Runs in the small supervisor process after each experiment, so it imports nothing beyond
the standard library and the manifest reader.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
from pathlib import Path

from gridrun.errors import StateError
from gridrun.project.manifest import RACY_NS, FileEntry, hash_file, load_manifest

# Python writes bytecode next to imported modules: a by-product, never an artifact.
_SKIP_DIRS = frozenset({"__pycache__"})
_SKIP_SUFFIXES = (".pyc", ".pyo")


def find_artifacts(
    files: dict[str, FileEntry], workdir: Path, skip: Path | None = None
) -> list[str]:
    """Relative paths of new or changed files (and symlinks) under ``workdir``, sorted.

    Does not follow symlinked folders or enter other filesystems (a mounted datastore);
    skips ``skip`` (the artifacts folder, if it lies inside the working copy).
    """
    root = os.fspath(workdir)
    root_dev = os.stat(root).st_dev
    skip_path = os.fspath(skip) if skip is not None else None
    now = time.time_ns()
    found: list[str] = []
    stack = [(root, "")]
    while stack:
        folder, rel_folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.name in _SKIP_DIRS or st.st_dev != root_dev or entry.path == skip_path:
                    continue
                stack.append((entry.path, rel))
            elif stat.S_ISLNK(st.st_mode):
                if _link_changed(files.get(rel), entry.path, root):
                    found.append(rel)
            elif (
                stat.S_ISREG(st.st_mode)
                and not entry.name.endswith(_SKIP_SUFFIXES)
                and _file_changed(files.get(rel), entry.path, st, now)
            ):
                found.append(rel)
    return sorted(found)


def _file_changed(entry: FileEntry | None, path: str, st: os.stat_result, now: int) -> bool:
    if entry is None or entry.link is not None:
        return True
    if st.st_size != entry.size:
        return True
    if st.st_mtime_ns == entry.mtime_ns and st.st_mtime_ns < now - RACY_NS:
        return False
    try:
        return hash_file(path)[0] != entry.sha256
    except OSError:
        return False  # unreadable: nothing we could save anyway


def _link_changed(entry: FileEntry | None, path: str, root: str) -> bool:
    """A new or retargeted link is kept only if it points inside the working copy."""
    try:
        target = os.readlink(path)
    except OSError:
        return False
    if entry is not None and entry.link == target:
        return False
    real = os.path.realpath(path)
    return os.path.exists(real) and (real == root or real.startswith(root + os.sep))


def collect_artifacts(
    manifest_path: Path, workdir: Path, artifacts_dir: Path, *, move: bool = True
) -> list[str]:
    """Save the experiment's new and changed files into ``artifacts_dir``.

    Relative paths are kept. ``move=True`` renames them out of the working copy (cheap on
    one filesystem, a copy across filesystems); ``move=False`` copies. Returns the relative
    paths saved. Saves every file it can before reporting any that failed.
    """
    files = load_manifest(manifest_path)
    workdir = Path(os.path.realpath(workdir))
    artifacts_dir = Path(artifacts_dir)
    skip = Path(os.path.realpath(artifacts_dir))
    saved: list[str] = []
    failures: list[str] = []
    for rel in find_artifacts(files, workdir, skip=skip):
        src = workdir / rel
        dst = artifacts_dir / rel
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(dst) and (dst.is_symlink() or not dst.is_dir()):
                dst.unlink()
            if move:
                _move(src, dst)
            elif src.is_symlink():
                os.symlink(os.readlink(src), dst)
            else:
                shutil.copy2(src, dst)
        except OSError as exc:
            failures.append(f"{rel} ({exc.strerror or exc})")
            continue
        saved.append(rel)
    if failures:
        raise StateError(
            f"Could not save {len(failures)} artifact(s) to {artifacts_dir}: "
            f"{', '.join(failures[:3])}{'...' if len(failures) > 3 else ''}.",
            hint="Free some disk space or check the permissions of GRID_HOME.",
        )
    return saved


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # another filesystem: copy, then delete
            raise
        shutil.move(os.fspath(src), os.fspath(dst))
