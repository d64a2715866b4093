"""Writing a snapshot's files into a folder: standard library only.

Why a module of its own: besides :func:`gridrun.project.materialize.materialize`, the
Slurm runner (``backends/slurm/runner.py``) makes working copies with it in an
interpreter that starts without ``site`` and imports nothing of gridrun, so that an
array task costs little more CPU than the script it runs. It imports this file as a
top-level module, from its folder.

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

_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}

# One file of a tree: (relative path, object path or None, mode, mtime_ns, link or None);
# regular files have an object path, symlinks a link.
Entry = tuple[str, "str | None", int, int, "str | None"]


def copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy the content of ``src`` to a new ``dst``, in the kernel where it can."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        if hasattr(os, "copy_file_range"):
            try:
                while os.copy_file_range(fin.fileno(), fout.fileno(), 1 << 30):
                    pass
                return
            except OSError as exc:
                if exc.errno not in _NO_COPY_RANGE:
                    raise
                fin.seek(0)
                fout.seek(0)
                fout.truncate()
        while chunk := fin.read(1 << 20):
            fout.write(chunk)


def write_tree(entries: list[Entry], dest: str) -> None:
    """Write ``entries`` into ``dest`` (created if needed), replacing files of the same
    paths. Regular files first, links after: a link never stands where a folder is
    needed. FileNotFoundError names a missing object."""
    os.makedirs(dest, exist_ok=True)
    made = {dest}
    ordered = sorted(entries, key=lambda e: (e[4] is not None, e[0]))
    for rel, source, mode, mtime_ns, link in ordered:
        target = os.path.join(dest, rel)
        parent = os.path.dirname(target)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        if os.path.lexists(target):
            os.unlink(target)
        if link is not None:
            os.symlink(link, target)
            continue
        assert source is not None
        copy_file(source, target)
        os.chmod(target, mode)
        if mtime_ns:
            os.utime(target, ns=(mtime_ns, mtime_ns))
