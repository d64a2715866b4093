"""Finding and saving what an experiment produced.

An experiment's artifacts are the files in its working copy that are new or whose content
differs from the snapshot it started from: checkpoints, metrics, plots, edited configs.
Untouched files are recognised by size and modification time (``materialize`` restored
the snapshot's mtimes) and only hashed when those cannot decide.

Why every access goes through directory file descriptors: the working copy belongs to the
experiment, and a process it left behind can still rewrite it while its artifacts are
saved -- swap a folder for a symlink to ``/etc``, say. A path such as ``work/ckpt/x``
would then be resolved through that symlink. Here the walk opens each folder with
``O_NOFOLLOW | O_DIRECTORY`` relative to its parent's descriptor, and each file with
``O_NOFOLLOW`` relative to its folder's, then checks with ``fstat`` that it opened a
regular file: nothing outside the working copy can be reached, whatever is swapped in.
Artifacts are copied, never moved (a move through a swapped path would take a file out
of its place on the host), and only regular files and in-copy symlinks are saved.
The destination is written the same way (``O_NOFOLLOW``, ``O_EXCL``, relative to the
artifacts folder's descriptor), so links planted there are replaced, never followed.

Runs in the small supervisor process after each experiment, so it imports nothing beyond
the standard library and the manifest reader.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import stat
import time
from collections.abc import Callable
from pathlib import Path

from gridrun.errors import StateError
from gridrun.project.manifest import CHUNK, RACY_NS, FileEntry, load_manifest

# Python writes bytecode next to imported modules: a by-product, never an artifact.
_SKIP_DIRS = frozenset({"__pycache__"})
_SKIP_SUFFIXES = (".pyc", ".pyo")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

# (relative path, folder fd, name, lstat) -> None, called for each artifact found.
OnFile = Callable[[str, int, str, os.stat_result], None]
OnLink = Callable[[str, str], None]


def _hash_fd(fd: int) -> str:
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _open_file(dir_fd: int, name: str) -> int | None:
    """The regular file ``name`` in ``dir_fd``, never through a symlink; else None."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _file_changed(
    entry: FileEntry | None, dir_fd: int, name: str, st: os.stat_result, now: int
) -> bool:
    if entry is None or entry.link is not None:
        return True
    if st.st_size != entry.size:
        return True
    if st.st_mtime_ns == entry.mtime_ns and st.st_mtime_ns < now - RACY_NS:
        return False
    fd = _open_file(dir_fd, name)
    if fd is None:
        return False  # unreadable or swapped: nothing we could save anyway
    try:
        return _hash_fd(fd) != entry.sha256
    except OSError:
        return False
    finally:
        os.close(fd)


def _inside(rel: str, target: str) -> str | None:
    """Where a link at ``rel`` leads, lexically, if that stays inside the working copy."""
    if target.startswith("/"):
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    return None if joined == ".." or joined.startswith("../") else joined


def _walk(
    files: dict[str, FileEntry],
    workdir: Path,
    skip: Path | None,
    on_file: OnFile,
    on_link: OnLink,
) -> None:
    """Visit every new or changed regular file and in-copy symlink of the working copy."""
    root_fd = os.open(os.fspath(workdir), _DIR_FLAGS)
    root_dev = os.fstat(root_fd).st_dev
    skip_id = None
    if skip is not None:
        with contextlib.suppress(OSError):
            sst = os.stat(skip, follow_symlinks=False)
            skip_id = (sst.st_dev, sst.st_ino)
    now = time.time_ns()
    stack = [(root_fd, "")]
    while stack:
        dir_fd, rel_folder = stack.pop()
        try:
            with os.scandir(dir_fd) as it:
                names = [e.name for e in it]
            for name in names:
                rel = f"{rel_folder}/{name}" if rel_folder else name
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if name in _SKIP_DIRS or st.st_dev != root_dev:
                        continue  # bytecode, or another filesystem (a mounted datastore)
                    if (st.st_dev, st.st_ino) == skip_id:
                        continue
                    try:
                        sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                    except OSError:
                        continue  # swapped for a symlink since the stat: not entered
                    if (os.fstat(sub).st_dev, os.fstat(sub).st_ino) != (st.st_dev, st.st_ino):
                        os.close(sub)
                        continue
                    stack.append((sub, rel))
                elif stat.S_ISLNK(st.st_mode):
                    try:
                        target = os.readlink(name, dir_fd=dir_fd)
                    except OSError:
                        continue
                    entry = files.get(rel)
                    if (entry is None or entry.link != target) and _inside(rel, target):
                        on_link(rel, target)
                elif (
                    stat.S_ISREG(st.st_mode)
                    and not name.endswith(_SKIP_SUFFIXES)
                    and _file_changed(files.get(rel), dir_fd, name, st, now)
                ):
                    on_file(rel, dir_fd, name, st)
        finally:
            os.close(dir_fd)


def find_artifacts(
    files: dict[str, FileEntry], workdir: Path, skip: Path | None = None
) -> list[str]:
    """Relative paths of new or changed files (and in-copy symlinks) under ``workdir``.

    Does not follow symlinks or enter other filesystems (a mounted datastore); skips
    ``skip`` (the artifacts folder, if it lies inside the working copy).
    """
    found: list[str] = []
    _walk(
        files, workdir, skip, lambda rel, *_: found.append(rel), lambda rel, _t: found.append(rel)
    )
    return sorted(found)


class _Destination:
    """The artifacts folder, written only through descriptors (see the module doc)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dirs: dict[str, int] = {}

    def folder(self, rel_dir: str) -> int:
        """The descriptor of ``rel_dir``, created as needed; a link there is replaced."""
        if rel_dir in self.dirs:
            return self.dirs[rel_dir]
        if not rel_dir:  # created at the first artifact: none, no folder
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.dirs[""] = os.open(os.fspath(self.root), _DIR_FLAGS)
            return self.dirs[""]
        parent_rel, _, name = rel_dir.rpartition("/")
        parent = self.folder(parent_rel)
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                os.mkdir(name, 0o700, dir_fd=parent)
            elif exc.errno in (errno.ELOOP, errno.ENOTDIR):
                os.unlink(name, dir_fd=parent)  # a file or link where a folder goes
                os.mkdir(name, 0o700, dir_fd=parent)
            else:
                raise
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        self.dirs[rel_dir] = fd
        return fd

    def _clear(self, dir_fd: int, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "a folder stands there", name)
            os.unlink(name, dir_fd=dir_fd)

    def write_file(self, rel: str, src_fd: int, st: os.stat_result) -> None:
        dir_rel, _, name = rel.rpartition("/")
        dir_fd = self.folder(dir_rel)
        self._clear(dir_fd, name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(name, flags, 0o600 | (st.st_mode & 0o100), dir_fd=dir_fd)
        try:
            _copy_fd(src_fd, out)
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        except BaseException:
            os.close(out)
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)  # never a partial artifact
            raise
        os.close(out)

    def write_link(self, rel: str, target: str) -> None:
        dir_rel, _, name = rel.rpartition("/")
        dir_fd = self.folder(dir_rel)
        self._clear(dir_fd, name)
        os.symlink(target, name, dir_fd=dir_fd)

    def close(self) -> None:
        for fd in self.dirs.values():
            with contextlib.suppress(OSError):
                os.close(fd)


FICLONE = 0x40049409  # ioctl: share all of src's blocks with dst (btrfs, XFS, bcachefs)


def _copy_fd(src: int, dst: int) -> None:
    """Copy a whole file between descriptors, keeping its holes.

    A checkpoint is often sparse (a 5 GB file with 4 KB written): copied densely it
    took 5 GB, and failed a run that had succeeded on a disk without them (issue 21).
    A reflink first, where the filesystem shares blocks (no data copied at all); else
    each data extent found with ``SEEK_DATA``/``SEEK_HOLE`` is copied in the kernel
    (``copy_file_range``) at its own offset, and the holes are left as holes.
    """
    try:
        import fcntl

        fcntl.ioctl(dst, FICLONE, src)
        return
    except OSError:
        pass  # not a reflink filesystem, or another one: copy the data extents
    size = os.fstat(src).st_size
    for start, end in _data_extents(src, size):
        _copy_range(src, dst, start, end)
    os.ftruncate(dst, size)  # a hole at the end is only a length


def _data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` ranges of ``fd`` that hold data; the whole file where the
    filesystem cannot tell holes (EINVAL, or no ``SEEK_DATA`` at all)."""
    if not hasattr(os, "SEEK_DATA"):
        return [(0, size)]
    extents: list[tuple[int, int]] = []
    offset = 0
    try:
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            if end <= start:  # the file changed under us: copy the rest as data
                extents.append((start, size))
                break
            extents.append((start, end))
            offset = end
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
        return [(0, size)]
    return extents


def _copy_range(src: int, dst: int, start: int, end: int) -> None:
    offset = start
    if hasattr(os, "copy_file_range"):
        try:
            while offset < end:
                n = os.copy_file_range(src, dst, min(end - offset, 1 << 30), offset, offset)
                if n == 0:  # the source shrank
                    return
                offset += n
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
    while offset < end and (chunk := os.pread(src, min(CHUNK, end - offset), offset)):
        os.pwrite(dst, chunk, offset)
        offset += len(chunk)


def collect_artifacts(manifest_path: Path, workdir: Path, artifacts_dir: Path) -> list[str]:
    """Copy the experiment's new and changed files into ``artifacts_dir``, paths kept.

    Returns the relative paths saved. Saves every file it can before reporting any that
    failed, in one line (a full disk names itself: "No space left on device").
    """
    files = load_manifest(manifest_path)
    workdir = Path(os.path.realpath(workdir))
    artifacts_dir = Path(artifacts_dir)
    saved: list[str] = []
    failures: list[str] = []
    dest = _Destination(artifacts_dir)

    def save_file(rel: str, dir_fd: int, name: str, st: os.stat_result) -> None:
        fd = _open_file(dir_fd, name)
        if fd is None:
            return  # swapped for something that is not a regular file: not saved
        try:
            dest.write_file(rel, fd, os.fstat(fd))
            saved.append(rel)
        except OSError as exc:
            failures.append(f"{rel} ({exc.strerror or exc})")
        finally:
            os.close(fd)

    def save_link(rel: str, target: str) -> None:
        try:
            dest.write_link(rel, target)
            saved.append(rel)
        except OSError as exc:
            failures.append(f"{rel} ({exc.strerror or exc})")

    try:
        _walk(files, workdir, Path(os.path.realpath(artifacts_dir)), save_file, save_link)
    finally:
        dest.close()
    if failures:
        raise StateError(
            f"Could not save {len(failures)} artifact(s) to {artifacts_dir}: "
            f"{', '.join(failures[:3])}{'...' if len(failures) > 3 else ''}.",
            hint="Free some disk space or check the permissions of GRID_HOME.",
        )
    return sorted(saved)
