"""Mark and sweep of ``GRID_HOME``: what no remaining run references is removed.

Why: snapshots copy a project's files (a secret a user shipped included) into
``GRID_HOME/objects``. ``grid delete`` must leave no copy of a deleted run's files, so
after records are deleted this collection removes every snapshot object, snapshot
manifest, cached uv environment and experiment/run folder that no remaining run uses.

Roots (the mark) are the runs in the store: each run's snapshot manifest (and the
objects it lists), its environment key, its run folder and its experiments' folders.
Datastores keep their own object store (``datastores/.objects``) and are not touched.

Concurrency. A ``grid run`` writes its objects and manifest *before* its run is
recorded, and reuses an existing object by touching it (``project/store.py``), so
anything modified in the last ``GRACE_SECONDS`` (15 minutes) is kept: a snapshot in
flight is never collected, whatever it shares with deleted runs. An environment is
removed only under its per-key build lock taken without waiting (a key being built is
skipped), and temp build folders (``envs/.tmp-*``) are left to the builder's own
cleanup. ``GRID_HOME/gc.lock`` keeps two collections from racing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from gridrun.errors import StateError
from gridrun.home import GridHome
from gridrun.specs import RunSpec
from gridrun.store.db import Store

GRACE_SECONDS = 15 * 60


@dataclass
class Freed:
    """What one collection removed (counts and bytes), for the one-line summary."""

    objects: int = 0
    manifests: int = 0
    envs: int = 0
    folders: int = 0
    bytes: int = 0

    def summary(self) -> str:
        return (
            f"Freed {_human(self.bytes)}: {self.objects} object(s), {self.manifests} "
            f"manifest(s), {self.envs} environment(s), {self.folders} folder(s)."
        )

    def as_json(self) -> dict[str, int]:
        return asdict(self)


def collect(home: GridHome, store: Store, grace: float = GRACE_SECONDS) -> Freed:
    """Remove what no run in ``store`` references and is older than ``grace`` seconds.

    Raises ``StateError`` (one line) when ``GRID_HOME`` cannot be written.
    """
    try:
        with _gc_lock(home):
            return _sweep(home, store, time.time() - grace)
    except OSError as exc:
        raise StateError(
            f"Cannot collect garbage in {home.root} ({exc.strerror or exc}).",
            hint=_hint(exc),
        ) from exc


def _sweep(home: GridHome, store: Store, cutoff: float) -> Freed:
    runs = store.list_runs()
    manifests = {r.spec.snapshot_manifest.name for r in runs if _manifest(r.spec)}
    env_keys = {r.env_key for r in runs if r.env_key}
    # A live session (gridrun.sessions) holds its environment and snapshot as a run does.
    from gridrun.specs import RunSpec
    from gridrun.store.sessions import live as live_sessions

    for s in live_sessions(store):
        env_keys |= {s.env_key} if s.env_key else set()
        spec = RunSpec.from_dict(s.spec)
        if _manifest(spec):
            manifests.add(spec.snapshot_manifest.name)
    exp_names = {e.name for r in runs for e in r.experiments}
    run_names = {r.name for r in runs}
    freed = Freed()

    live: set[str] = set()
    for path in _entries(home.snapshots):
        if not path.name.endswith(".json") or not path.is_file():
            continue
        if path.name in manifests or _recent(path, cutoff):
            live |= _listed_objects(path)  # a fresh manifest is a run being submitted
        else:
            freed.bytes += _size(path)
            path.unlink()
            freed.manifests += 1

    for sub in _entries(home.objects):
        if not sub.is_dir() or len(sub.name) != 2:
            continue  # temp files of a store in progress are its own to clean
        for obj in _entries(sub):
            if sub.name + obj.name in live or obj.name.startswith(".") or _recent(obj, cutoff):
                continue
            freed.bytes += _size(obj)
            obj.unlink()
            freed.objects += 1
        with contextlib.suppress(OSError):
            sub.rmdir()  # only when empty

    for folder, names in ((home.root / "experiments", exp_names), (home.root / "runs", run_names)):
        for path in _entries(folder):
            if path.name in names or path.name.startswith(".") or _recent(path, cutoff):
                continue
            freed.bytes += _tree_size(path)
            shutil.rmtree(path)
            freed.folders += 1

    # Repository trees (grid run --repo) no remaining run was made from; the fetched
    # repositories themselves stay, as a cache that makes the next fetch small.
    commits = {r.spec.commit for r in runs if r.spec.commit}
    for repo in _entries(home.cache / "repos"):
        for tree in _entries(repo / "trees"):
            if tree.name in commits or tree.name.startswith(".") or _recent(tree, cutoff):
                continue
            freed.bytes += _tree_size(tree)
            shutil.rmtree(tree)
            freed.folders += 1

    from gridrun.envs.venv import list_envs, remove_idle_env

    for env in list_envs(home.envs):
        if env.key in env_keys or env.last_used >= cutoff:  # built or reused lately
            continue
        if remove_idle_env(home.envs, env.key):
            freed.bytes += env.size
            freed.envs += 1
    return freed


def _manifest(spec: RunSpec) -> bool:
    return spec.snapshot_manifest.name != ""  # an empty path reads as Path(".")


def _listed_objects(manifest: Path) -> set[str]:
    """The object hashes a manifest lists. An unreadable one keeps everything: better a
    leftover than a run whose files are gone."""
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        return {v["sha256"] for v in doc["files"].values() if v.get("sha256")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StateError(
            f"Cannot read the snapshot manifest {manifest} ({exc}); nothing was collected.",
            hint="Move the file away if it is damaged, then run `grid gc` again.",
        ) from exc


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except FileNotFoundError:
        return []


def _recent(path: Path, cutoff: float) -> bool:
    try:
        return path.lstat().st_mtime >= cutoff
    except FileNotFoundError:
        return True  # gone already: nothing to remove


def _size(path: Path) -> int:
    with contextlib.suppress(OSError):
        return path.lstat().st_size
    return 0


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        total += sum(_size(Path(dirpath) / f) for f in files)
    return total


@contextlib.contextmanager
def _gc_lock(home: GridHome) -> Iterator[None]:
    """``GRID_HOME/gc.lock``, held exclusively (the kernel drops it if we die)."""
    fd = os.open(home.root / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _hint(exc: OSError) -> str:
    if exc.errno in (errno.EROFS,):
        return "Remount it read-write; status, history and logs still work."
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "Free some space elsewhere on that disk, then run `grid gc` again."
    return "Check the permissions of GRID_HOME, then run `grid gc` again."


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
