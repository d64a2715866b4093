"""Taking a snapshot: walk the project, store what changed, save the manifest.

Every run executes against a frozen copy of the project, so later edits never leak into
queued experiments and a run can always be reproduced. The walk prunes ignored folders
(a 2 GB ignored data folder is never entered), never follows a symlinked folder (in-project
links are stored as links, which cannot loop) and guards against bind-mount loops by the
(st_dev, st_ino) of each folder visited. Anything it cannot take (special files,
unreadable files, links leaving the project) is skipped with a warning, never a crash.

Secrets are kept out by the deny-list of :mod:`gridrun.project.secrets`, on top of the
ignore files, with one warning per file left out. Each file is read through a descriptor
opened with ``O_NOFOLLOW`` whose ``fstat`` must match what the walk saw (device, inode,
regular file), so a file swapped for a symlink to ``/etc/shadow`` between the walk and
the read is refused, never stored. A snapshot that fails (a full disk, a swapped file)
removes the objects it had added, so nothing half-taken stays in ``GRID_HOME``.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from gridrun.errors import ProjectError, StateError
from gridrun.home import GridHome
from gridrun.project.ignore import GRIDIGNORE, IgnoreRules, always_excluded
from gridrun.project.manifest import (
    FileEntry,
    canonical_hash,
    normal_mode,
    write_manifest,
)
from gridrun.project.secrets import SecretFilter
from gridrun.project.store import (
    StatCache,
    SwappedFile,
    open_scanned,
    reuse_object,
    stat_cache_path,
    store_fd,
)

SIZE_WARNING_BYTES = 50 * 1024 * 1024
MAX_WARNINGS = 20
MB = 1024 * 1024


@dataclass
class Snapshot:
    """A stored snapshot of one project folder."""

    hash: str
    root: Path
    files: dict[str, FileEntry]
    total_bytes: int
    warnings: list[str]
    manifest_path: Path
    rehashed: int = 0  # files read this time because the stat cache could not vouch for them
    seconds: float = field(default=0.0, compare=False)

    def paths(self) -> list[str]:
        return sorted(self.files)


class _Walk:
    """Collects the regular files and symlinks a snapshot takes from one project."""

    def __init__(
        self,
        root: str,
        rules: IgnoreRules,
        skip_dirs: set[tuple[int, int]],
        secrets: SecretFilter,
    ) -> None:
        self.root = root
        self.rules = rules
        self.secrets = secrets
        self.skip_dirs = skip_dirs
        self.visited: set[tuple[int, int]] = set()
        self.files: list[tuple[str, str, os.stat_result]] = []
        self.links: dict[str, FileEntry] = {}
        self.link_targets: dict[str, str] = {}  # link path -> target path relative to root
        self.warnings: list[str] = []

    def _left_out(self, path: str, name: str, rel: str, is_dir: bool) -> bool:
        return always_excluded(path, name, is_dir) or self.rules.ignored_here(rel, is_dir)

    def run(self) -> None:
        st = os.stat(self.root)
        self.visited.add((st.st_dev, st.st_ino))
        stack = [(self.root, "")]
        while stack:
            folder, rel_folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError as exc:
                if not rel_folder:
                    raise ProjectError(
                        f"Project folder {folder} cannot be read ({_reason(exc)}).",
                        hint="Check its permissions.",
                    ) from exc
                self.warnings.append(f"{rel_folder}/: cannot be listed ({_reason(exc)}); skipped.")
                continue
            for entry in entries:
                rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
                try:
                    self._visit(entry, rel, stack)
                except OSError as exc:
                    self.warnings.append(f"{rel}: cannot be read ({_reason(exc)}); skipped.")

    def _visit(self, entry: os.DirEntry[str], rel: str, stack: list[tuple[str, str]]) -> None:
        if entry.is_symlink():
            self._link(entry, rel)
        elif entry.is_dir(follow_symlinks=False):
            if self._left_out(entry.path, entry.name, rel, True):
                return
            if self.secrets.denies_dir(rel, entry.name):
                return
            st = entry.stat(follow_symlinks=False)
            key = (st.st_dev, st.st_ino)
            if key in self.skip_dirs:
                return
            if key in self.visited:
                self.warnings.append(f"{rel}/: already visited (a mount loop?); skipped.")
                return
            self.visited.add(key)
            stack.append((entry.path, rel))
        elif entry.is_file(follow_symlinks=False):
            if self._left_out(entry.path, entry.name, rel, False):
                return
            if not self.secrets.denies_file(rel, entry.name):
                self.files.append((rel, entry.path, entry.stat(follow_symlinks=False)))
        elif not self._left_out(entry.path, entry.name, rel, False):
            self.warnings.append(f"{rel}: not a regular file (a FIFO, socket or device); skipped.")

    def _link(self, entry: os.DirEntry[str], rel: str) -> None:
        try:
            target_st = os.stat(entry.path)
        except OSError:
            if not self._left_out(entry.path, entry.name, rel, False):
                target = _readlink(entry.path)
                self.warnings.append(f"{rel}: symlink to {target} is dangling; skipped.")
            return
        is_dir = stat.S_ISDIR(target_st.st_mode)
        if self._left_out(entry.path, entry.name, rel, is_dir):
            return
        if self.secrets.denies_file(rel, entry.name):
            return
        real = os.path.realpath(entry.path)
        if real != self.root and not real.startswith(self.root + os.sep):
            self.warnings.append(
                f"{rel}: symlink to {_readlink(entry.path)} points outside the project; "
                "skipped (use a datastore for data that lives elsewhere)."
            )
            return
        if not (is_dir or stat.S_ISREG(target_st.st_mode)):
            self.warnings.append(f"{rel}: symlink to a special file; skipped.")
            return
        target_rel = os.path.relpath(real, self.root).replace(os.sep, "/")
        link = posixpath.relpath(target_rel, posixpath.dirname(rel) or ".")
        self.links[rel] = FileEntry(rel, None, len(link), 0o777, link=link)
        self.link_targets[rel] = target_rel


def take_snapshot(root: Path, home: GridHome, include_secrets: list[str] | None = None) -> Snapshot:
    """Snapshot the project at ``root`` into ``home``'s object store; see the module doc.

    ``include_secrets`` are project-relative paths the deny-list lets through
    (``snapshot.include_secrets`` in the config).
    """
    started = time.perf_counter()
    real_root = _check_root(Path(root))
    home.ensure()
    rules = IgnoreRules(Path(real_root))
    secrets = SecretFilter(include_secrets)
    walk = _Walk(real_root, rules, _dir_ids(home.root), secrets)
    walk.run()

    created: list[Path] = []
    try:
        files, rehashed = _store_files(walk, home, real_root, secrets, created)
        snapshot_hash = canonical_hash(files)
        manifest_path = home.snapshots / f"{snapshot_hash}.json"
        try:
            write_manifest(manifest_path, snapshot_hash, files)
        except OSError as exc:
            raise StateError(
                f"Cannot save the snapshot manifest in {home.snapshots} ({_reason(exc)}).",
                hint="Free some disk space or set GRID_HOME to a writable folder.",
            ) from exc
    except BaseException:
        for obj in created:  # objects only this failed snapshot would have used
            with contextlib.suppress(OSError):
                obj.unlink()
                obj.parent.rmdir()  # only if it is now empty
        raise

    dangling = _dangling_link_warnings(walk.link_targets, files)
    warnings = secrets.warnings() + walk.warnings + dangling
    total = sum(e.size for e in files.values() if e.link is None)
    if total > SIZE_WARNING_BYTES:
        warnings.append(_size_warning(total, files, rules))
    if not files:
        warnings.append(f"No files selected from {real_root}: check {rules.source}.")
    if len(warnings) > MAX_WARNINGS + len(secrets.left_out):
        # Every secret left out is named; other skips are summarised past a screenful.
        keep = MAX_WARNINGS + len(secrets.left_out) - 1
        warnings = [*warnings[:keep], f"...and {len(warnings) - keep} more skipped entries."]
    return Snapshot(
        hash=snapshot_hash,
        root=Path(real_root),
        files=files,
        total_bytes=total,
        warnings=warnings,
        manifest_path=manifest_path,
        rehashed=rehashed,
        seconds=time.perf_counter() - started,
    )


def _store_files(
    walk: _Walk, home: GridHome, real_root: str, secrets: SecretFilter, created: list[Path]
) -> tuple[dict[str, FileEntry], int]:
    """Hash and store what the walk selected; return the entries and how many were read."""
    hashed_at = time.time_ns()
    cache = StatCache(stat_cache_path(home.snapshots, real_root), real_root)
    files: dict[str, FileEntry] = dict(walk.links)
    rehashed = 0
    for rel, path, st in walk.files:
        sha = cache.lookup(rel, st)
        size = st.st_size
        sniff = rel.lower().endswith(".json")  # service-account keys are found by content
        if sha is None or sniff or not reuse_object(home.objects, sha):
            try:
                fd = open_scanned(path, st)
            except SwappedFile as exc:
                raise ProjectError(
                    f"{rel} changed while the snapshot was taken ({exc.why}); refusing it.",
                    hint="Make sure nothing rewrites the project during `grid run`, then retry.",
                ) from exc
            except OSError as exc:
                walk.warnings.append(f"{rel}: cannot be read ({_reason(exc)}); skipped.")
                continue
            try:
                if secrets.denies_content(rel, posixpath.basename(rel), fd, st.st_size):
                    continue
                if sha is None or not reuse_object(home.objects, sha):
                    sha, size = store_fd(fd, home.objects, created)
                    rehashed += 1
                    if size == st.st_size:  # otherwise it changed while being read: no entry
                        cache.record(rel, st, hashed_at, sha)
            except OSError as exc:
                walk.warnings.append(f"{rel}: cannot be read ({_reason(exc)}); skipped.")
                continue
            finally:
                os.close(fd)
        files[rel] = FileEntry(rel, sha, size, normal_mode(st.st_mode), mtime_ns=st.st_mtime_ns)
    cache.save()
    return files, rehashed


def _check_root(root: Path) -> str:
    if not root.exists():
        raise ProjectError(
            f"Project folder {root} does not exist.",
            hint="Run grid from your project folder, or check the path you passed.",
        )
    if not root.is_dir():
        raise ProjectError(
            f"Project path {root} is not a folder.",
            hint="Pass the folder that holds your script, not a file.",
        )
    return os.path.realpath(root)


def _dir_ids(*paths: Path) -> set[tuple[int, int]]:
    """Identity of folders never to snapshot (GRID_HOME inside the project, say)."""
    ids = set()
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        ids.add((st.st_dev, st.st_ino))
    return ids


def _dangling_link_warnings(targets: dict[str, str], files: dict[str, FileEntry]) -> list[str]:
    """Links kept whose target was left out would dangle in the experiment's copy: say so."""
    if not targets:
        return []
    present = {"."}
    for p in files:
        parts = p.split("/")
        present.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return [
        f"{link}: symlink target {target} is not in the snapshot (ignored?); "
        "the link will dangle in the experiment's copy."
        for link, target in sorted(targets.items())
        if target not in present
    ]


def _size_warning(total: int, files: dict[str, FileEntry], rules: IgnoreRules) -> str:
    largest = sorted((e for e in files.values() if e.link is None), key=lambda e: -e.size)[:3]
    listed = ", ".join(f"{e.path} ({e.size / MB:.0f} MB)" for e in largest)
    where = "patterns to .gridignore" if rules.source == GRIDIGNORE else "a .gridignore"
    return (
        f"Your project is {total / MB:.0f} MB: large snapshots slow every run. "
        f"Add {where} (gitignore syntax) to leave out data and checkpoints, "
        f"and use a datastore for data. Largest files: {listed}."
    )


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
