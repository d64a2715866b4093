"""Putting file content into the object store, and remembering what was hashed.

Objects are named by the sha256 of their content and written once (temp file, then
``os.replace``), so a file that did not change between runs costs no space. Objects are
made owner-only and read-only (0400): experiments only ever get copies.

The stat cache lets a re-snapshot of an unchanged project skip reading its files: a file
whose (size, mtime_ns, ctime_ns, inode) match what was recorded keeps its hash. As in git's
"racy" check, an entry is trusted only if the file was last modified well before it was
hashed, since a same-size edit within the filesystem's timestamp granularity would
otherwise go unseen.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

from gridrun.errors import StateError
from gridrun.project.manifest import CHUNK, RACY_NS, atomic_write_text, object_path

CACHE_FORMAT = 1


def open_scanned(path: str, scanned: os.stat_result) -> int:
    """Open a file the walk listed, refusing anything swapped in since (TOCTOU-safe).

    ``O_NOFOLLOW`` refuses a symlink put in the file's place, ``O_NONBLOCK`` keeps a FIFO
    from hanging the open, and the ``fstat`` of what was actually opened must be the
    regular file that was scanned (same device and inode): a folder on the way swapped
    for a symlink leads to another inode and is refused too. Raises ``SwappedFile``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SwappedFile(path, "it was replaced by a symlink") from exc
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (
        scanned.st_dev,
        scanned.st_ino,
    ):
        os.close(fd)
        raise SwappedFile(path, "it was replaced by another file")
    return fd


class SwappedFile(OSError):
    """A file that changed identity between the scan and the read."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(errno.ESTALE, why, path)
        self.path = path
        self.why = why


def _hash_fd(fd: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        digest.update(chunk)
        size += len(chunk)
        offset += len(chunk)
    return digest.hexdigest(), size


def store_fd(fd: int, objects_dir: Path, created: list[Path] | None = None) -> tuple[str, int]:
    """Store the content of an open file; return its sha256 and size.

    Hashes first and writes only when the object is new; ``created`` collects the objects
    this call added, so that a snapshot that fails can take them back. Objects are
    owner-only (0400): ``GRID_HOME`` is private, and a source file's mode says nothing
    about who may read the copy. Store write errors become ``StateError``.
    """
    sha, size = _hash_fd(fd)
    if reuse_object(objects_dir, sha):
        return sha, size
    # Copy and hash again in one pass: the name must describe what was written, even if
    # the file changed since the first read.
    try:
        tmp_fd, tmp = tempfile.mkstemp(dir=objects_dir, prefix=".tmp-")
    except OSError as exc:
        raise _store_error(objects_dir, exc) from exc
    try:
        digest = hashlib.sha256()
        size = offset = 0
        with os.fdopen(tmp_fd, "wb") as out:
            while chunk := os.pread(fd, CHUNK, offset):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
                offset += len(chunk)
        sha = digest.hexdigest()
        final = object_path(objects_dir, sha)
        final.parent.mkdir(mode=0o700, exist_ok=True)
        os.chmod(tmp, 0o400)
        existed = final.exists()
        os.replace(tmp, final)
        if created is not None and not existed:
            created.append(final)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _store_error(objects_dir, exc) from exc
        raise
    return sha, size


def reuse_object(objects_dir: Path, sha: str) -> bool:
    """Whether the object exists; if so, touch it so that ``grid gc`` (which keeps anything
    modified in its grace period) cannot collect it before this snapshot is recorded."""
    path = object_path(objects_dir, sha)
    try:
        os.utime(path)
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return path.exists()


def store_file(path: str, objects_dir: Path) -> tuple[str, int]:
    """Store one file's content by path (no symlink followed); see :func:`store_fd`."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return store_fd(fd, objects_dir)
    finally:
        os.close(fd)


def _store_error(objects_dir: Path, exc: OSError) -> StateError:
    return StateError(
        f"Cannot write to the object store {objects_dir} ({exc.strerror or exc}).",
        hint="Free some disk space or set GRID_HOME to a writable folder.",
    )


StatKey = tuple[int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class StatCache:
    """Per-project record of ``path -> (stat key, hashed_at_ns, sha256)``, one JSON file.

    A cache: losing or corrupting it only costs a re-hash, and concurrent writers simply
    race to leave one complete version (atomic replace).
    """

    def __init__(self, path: Path, root: str) -> None:
        self.path = path
        self.root = root
        self._old: dict[str, list] = {}
        self._new: dict[str, list] = {}
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") == CACHE_FORMAT and doc.get("root") == root:
                self._old = dict(doc["entries"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self._old = {}

    def lookup(self, rel: str, st: os.stat_result) -> str | None:
        """The cached hash of ``rel`` if its stat says it cannot have changed."""
        row = self._old.get(rel)
        if row is None or len(row) != 6:
            return None
        size, mtime_ns, ctime_ns, ino, hashed_at, sha = row
        if (size, mtime_ns, ctime_ns, ino) != stat_key(st) or mtime_ns >= hashed_at - RACY_NS:
            return None
        self._new[rel] = row
        return sha

    def record(self, rel: str, st: os.stat_result, hashed_at_ns: int, sha: str) -> None:
        self._new[rel] = [*stat_key(st), hashed_at_ns, sha]

    def save(self) -> None:
        """Keep exactly the entries looked up or recorded in this run (deleted files go)."""
        if self._new == self._old:
            return
        doc = {"format": CACHE_FORMAT, "root": self.root, "entries": self._new}
        with contextlib.suppress(OSError):
            atomic_write_text(self.path, json.dumps(doc, separators=(",", ":")))


def stat_cache_path(snapshots_dir: Path, root: str) -> Path:
    """One cache file per project folder, named after its real path."""
    key = hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return Path(snapshots_dir) / "statcache" / f"{key}.json"
