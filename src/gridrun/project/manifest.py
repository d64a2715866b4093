"""Snapshot manifests and the content-addressed object store they point into.

A manifest lists every file of a snapshot with the sha256 of its content, its size and
mode (``0o755`` or ``0o644``, normalised as git does so that the same tree hashes the same
on every machine), or the target of a symlink. The snapshot's hash is the sha256 of the
canonical form of that list, so identical projects share one manifest.

Standard library only: the supervisor imports this to collect artifacts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gridrun.errors import StateError

MANIFEST_FORMAT = 1
CHUNK = 1024 * 1024
# A file modified this close to when it was last looked at may have changed without its
# mtime showing it (timestamp granularity; FAT and some network mounts: 2 s). Both the stat
# cache and artifact detection hash such files rather than trust their stat.
RACY_NS = 2_000_000_000


@dataclass
class FileEntry:
    """One file of a snapshot: a regular file (``sha256`` set) or a symlink (``link`` set).

    ``mtime_ns`` is the source file's modification time, restored on materialize so that
    artifact detection can tell untouched files by their stat alone. It is not part of the
    snapshot hash.
    """

    path: str
    sha256: str | None
    size: int
    mode: int
    link: str | None = None
    mtime_ns: int = 0


def object_path(objects_dir: Path, sha256: str) -> Path:
    """Where the object with this content hash lives: ``objects/ab/cdef...``."""
    return Path(objects_dir) / sha256[:2] / sha256[2:]


def hash_file(path: str | Path) -> tuple[str, int]:
    """sha256 and size of a file's content, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def normal_mode(st_mode: int) -> int:
    """Git's two file modes: executable by its owner or not."""
    return 0o755 if st_mode & 0o100 else 0o644


def canonical_hash(files: dict[str, FileEntry]) -> str:
    """The snapshot hash: sha256 over the sorted (path, sha256, mode, link) of every file."""
    rows = [[p, e.sha256, e.mode, e.link] for p, e in sorted(files.items())]
    blob = json.dumps(rows, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write through a temp file in the same folder and rename, so readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_manifest(path: Path, snapshot_hash: str, files: dict[str, FileEntry]) -> None:
    """Save a manifest once: an existing one describes the same tree already."""
    if path.exists():
        return
    doc = {
        "format": MANIFEST_FORMAT,
        "hash": snapshot_hash,
        "total_bytes": sum(e.size for e in files.values() if e.link is None),
        "files": {
            p: {"sha256": e.sha256, "size": e.size, "mode": e.mode, "link": e.link}
            | ({"mtime_ns": e.mtime_ns} if e.link is None else {})
            for p, e in sorted(files.items())
        },
    }
    atomic_write_text(path, json.dumps(doc, indent=1, ensure_ascii=True) + "\n")


def load_manifest(manifest_path: Path) -> dict[str, FileEntry]:
    """Read a manifest back, refusing one whose paths would escape the destination."""
    manifest_path = Path(manifest_path)
    try:
        doc = json.loads(manifest_path.read_text(encoding="utf-8"))
        raw_files = doc["files"]
        files = {
            p: FileEntry(
                path=p,
                sha256=v.get("sha256"),
                size=int(v["size"]),
                mode=int(v["mode"]),
                link=v.get("link"),
                mtime_ns=int(v.get("mtime_ns", 0)),
            )
            for p, v in raw_files.items()
        }
    except FileNotFoundError as exc:
        raise StateError(
            f"Snapshot manifest {manifest_path} is missing.",
            hint="Submit the run again to take a new snapshot.",
        ) from exc
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StateError(
            f"Snapshot manifest {manifest_path} is unreadable or corrupt ({exc}).",
            hint="Delete it and submit the run again to take a new snapshot.",
        ) from exc
    for p, entry in files.items():
        if not _safe_relpath(p) or (entry.link is None) == (entry.sha256 is None):
            raise StateError(
                f"Snapshot manifest {manifest_path} has an invalid entry {p!r}.",
                hint="Delete it and submit the run again to take a new snapshot.",
            )
    return files


def _safe_relpath(p: str) -> bool:
    parts = p.split("/")
    return bool(p) and not p.startswith("/") and all(x not in ("", ".", "..") for x in parts)
