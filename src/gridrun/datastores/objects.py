"""The datastore object store: one file per distinct content, named by its sha256.

Why publishing uses ``os.link`` rather than ``os.replace``: the object is linked
into the version's tree *before* it is published, and ``link`` never replaces an
existing object. So an object always has a link count of at least 2 while any
version uses it, and garbage collection is simply "remove objects whose link
count is 1" -- with no lock between a collection and a concurrent creation (the
worst a race can do is lose the dedup of one file, never data).

Why every reuse re-hashes the object: an object is shared by every version that has
the same content, so one altered object (root writing through the host path, or an
experiment that got around a read-only mount) would otherwise spread into every new
version made from an untouched source. :func:`link_existing` reads the object and
compares its sha256 with its name before linking it; a mismatch takes the object's
name out of the store (the versions that hold it keep their link, and ``grid
datastore verify`` reports them), and the caller stores a fresh copy from the source.
Objects are owner-only (0400), like everything in ``GRID_HOME``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO

CHUNK = 1 << 20

Advance = Callable[[int], None]


def object_path(objects: Path, sha: str) -> Path:
    return objects / sha[:2] / sha[2:]


def hash_file(path: Path, advance: Advance | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            if advance:
                advance(len(chunk))
    return h.hexdigest()


def write_temp(stream: IO[bytes], tmp: Path, advance: Advance | None = None) -> tuple[str, int]:
    """Copy ``stream`` into ``tmp`` while hashing it; return (sha256, size)."""
    h = hashlib.sha256()
    size = 0
    with open(tmp, "wb") as out:
        while chunk := stream.read(CHUNK):
            h.update(chunk)
            out.write(chunk)
            size += len(chunk)
            if advance:
                advance(len(chunk))
    os.chmod(tmp, 0o400)
    return h.hexdigest(), size


def _place(src: Path, dest: Path) -> None:
    """Hard-link ``src`` at ``dest`` (replacing it); copy where links are impossible."""
    with contextlib.suppress(FileNotFoundError):
        dest.unlink()
    try:
        os.link(src, dest)
    except FileNotFoundError:
        raise
    except OSError:
        # A filesystem without hard links: a copy is correct, only dedup is lost.
        shutil.copyfile(src, dest)
        os.chmod(dest, 0o400)


def intact(obj: Path, sha: str) -> bool:
    """Whether the object still holds the content its name says (False if it is gone)."""
    try:
        return hash_file(obj) == sha
    except FileNotFoundError:
        return False


def link_existing(objects: Path, sha: str, dest: Path) -> bool:
    """Put the existing object ``sha`` at ``dest`` once its content is verified; False if
    there is no such object or it was altered (it is then taken out of the store)."""
    obj = object_path(objects, sha)
    if not intact(obj, sha):
        with contextlib.suppress(FileNotFoundError):
            obj.unlink()  # never reuse it; the versions holding it keep their link
        return False
    try:
        _place(obj, dest)
        return True
    except FileNotFoundError:
        return False


def publish(objects: Path, tmp: Path, sha: str, dest: Path) -> None:
    """Make the fully written ``tmp`` (content ``sha``) both ``dest`` and the object."""
    if link_existing(objects, sha, dest):
        tmp.unlink()
        return
    _place(tmp, dest)  # first in the tree: the object is never at link count 1 ...
    obj = object_path(objects, sha)
    try:
        for attempt in range(3):
            obj.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(tmp, obj)  # ... when it appears here
                break
            except FileNotFoundError:
                if attempt == 2:  # a collection kept removing the empty shard folder
                    raise
    except FileExistsError:
        link_existing(objects, sha, dest)  # published meanwhile: share that one
    except OSError:
        shutil.copyfile(tmp, obj)
        os.chmod(obj, 0o400)
    tmp.unlink()


def collect_garbage(objects: Path) -> tuple[int, int]:
    """Remove objects no version tree links to; return (count, bytes) freed."""
    count = freed = 0
    if not objects.is_dir():
        return 0, 0
    for shard in objects.iterdir():
        if not shard.is_dir():
            continue
        for obj in shard.iterdir():
            try:
                st = obj.lstat()
                if st.st_nlink == 1:
                    obj.unlink()
                    count += 1
                    freed += st.st_size
            except FileNotFoundError:
                continue
        with contextlib.suppress(OSError):
            shard.rmdir()  # only succeeds when empty
    return count, freed


def usage(objects: Path) -> tuple[int, int]:
    """(objects, bytes) actually stored: what dedup saves is visible here."""
    count = total = 0
    if objects.is_dir():
        for shard in objects.iterdir():
            for obj in shard.iterdir() if shard.is_dir() else ():
                count += 1
                total += obj.lstat().st_size
    return count, total
