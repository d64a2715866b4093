"""The one way gridrun writes a file others may read at any moment, and locks one.

Every record another process reads while it may be written (``job.json``, exit
records, handles, caches, manifests) goes through :func:`atomic_write_text`: written to
a temp file in the same folder, fsynced, then renamed over the old one, so a reader
sees the old content or the new, never half, and a crash leaves no torn file.

:func:`file_lock` is an ``flock`` held for a ``with`` block. The kernel drops it when
its process dies, so a crashed holder never leaves a stale lock to clean up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (same-folder temp file, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_text(path: Path, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: Path, data: Any, *, fsync: bool = True, **dumps: Any) -> None:
    atomic_write_text(path, json.dumps(data, **dumps), fsync=fsync)


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False, blocking: bool = True) -> Iterator[bool]:
    """Hold an ``flock`` on ``path`` (created if needed) for the block.

    Yields whether the lock is held: always True when ``blocking``; with
    ``blocking=False`` a lock held elsewhere yields False at once instead of waiting.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, flags if blocking else flags | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
