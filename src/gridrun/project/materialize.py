"""Turning a snapshot back into a folder: the experiment's own working copy.

Files are copied, never hard-linked: experiments write to their working copy, and a hard
link would let them rewrite the object store that every other run reads. The copy uses
``copy_file_range``, which the kernel turns into a reflink (instant, no extra space) on
filesystems that can share blocks, and falls back to an ordinary copy elsewhere.
Modification times are restored so that artifact detection can tell untouched files
from their stat alone.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from gridrun.errors import StateError
from gridrun.project.manifest import load_manifest, object_path

_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}


def copy_file(src: Path, dst: Path) -> None:
    """Copy the content of ``src`` to a new ``dst``, in the kernel where it can."""
    if hasattr(os, "copy_file_range"):
        try:
            with open(src, "rb") as fin, open(dst, "wb") as fout:
                while os.copy_file_range(fin.fileno(), fout.fileno(), 1 << 30):
                    pass
            return
        except OSError as exc:
            if exc.errno not in _NO_COPY_RANGE:
                raise
    shutil.copyfile(src, dst)


def materialize(manifest_path: Path, objects_dir: Path, dest: Path) -> None:
    """Write the snapshot described by ``manifest_path`` into ``dest``.

    ``dest`` is created if needed; files already there with the same paths are replaced.
    """
    files = load_manifest(manifest_path)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    made: set[Path] = {dest}
    # Regular files first, links after: a link never stands where a folder is needed.
    for rel, entry in sorted(files.items(), key=lambda kv: (kv[1].link is not None, kv[0])):
        target = dest / rel
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        if os.path.lexists(target):
            target.unlink()
        if entry.link is not None:
            os.symlink(entry.link, target)
            continue
        assert entry.sha256 is not None  # load_manifest guarantees one of the two
        source = object_path(objects_dir, entry.sha256)
        try:
            copy_file(source, target)
        except FileNotFoundError as exc:
            if source.exists():
                raise
            raise StateError(
                f"Snapshot object {source} for {rel} is missing from the store.",
                hint="Submit the run again to take a new snapshot.",
            ) from exc
        os.chmod(target, entry.mode)
        if entry.mtime_ns:
            os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns))
