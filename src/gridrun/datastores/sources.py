"""Reading a source (folder, tar, zip) as a validated list of entries.

Every entry is validated before a single byte is stored: a member with an absolute
path or a ``..`` component, a symlink that resolves outside the datastore (checked
by resolving it through the other symlinks of the same source, as the kernel
would), a hard link to anything but an earlier regular file, a path that goes
through a symlink or a file, and device or fifo members are all refused. That is
what lets the tree be written later without re-checking anything.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gridrun.errors import DatastoreError

MAX_LINK_HOPS = 40


@dataclass
class Entry:
    path: str  # normalised relative POSIX path
    kind: str  # "file", "dir" or "link"
    size: int = 0
    key: str = ""  # quick-check key: unchanged key + existing object = nothing to read
    target: str | None = None  # symlink target, relative
    same_as: str | None = None  # tar hard link: the earlier file it duplicates
    ref: Path | int | None = None  # Path (folder) or member index (archives)
    ident: tuple[int, int] | None = None  # (st_dev, st_ino) seen by the folder scan


class Refused(DatastoreError):
    """The source's content cannot become a datastore (retrying will not help)."""


def _refuse(what: str) -> Refused:
    return Refused(
        f"{what}; refusing the source (nothing was written).",
        hint="Fix the source so that every path stays inside it.",
    )


def normalize(name: str) -> str | None:
    """A member name as a safe relative path; None for the root itself."""
    if "\x00" in name:
        raise _refuse(f"Member name {name!r} contains a NUL byte")
    if name.startswith("/"):
        raise _refuse(f"Member '{name}' has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(f"Member '{name}' would be written outside the datastore ('..')")
    return "/".join(parts) or None


def resolve_link(path: str, target: str, links: dict[str, str]) -> str:
    """Where the symlink at ``path`` leads, resolved through ``links``; raise if outside."""
    if target.startswith("/"):
        raise _refuse(f"Symlink '{path}' points to the absolute path '{target}'")
    pending = [*path.split("/")[:-1], *target.split("/")]
    stack: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                raise _refuse(f"Symlink '{path}' -> '{target}' points outside the datastore")
            stack.pop()
            continue
        stack.append(part)
        here = "/".join(stack)
        if here in links:
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise _refuse(f"Symlink '{path}' -> '{target}' is a loop")
            link_target = links[here]
            if link_target.startswith("/"):
                raise _refuse(f"Symlink '{here}' points to the absolute path '{link_target}'")
            stack.pop()
            pending = [*link_target.split("/"), *pending]
    return "/".join(stack)


def validate(entries: list[Entry]) -> list[Entry]:
    """Check the whole set; return it with duplicates resolved (the last one wins)."""
    final: dict[str, Entry] = {}
    for e in entries:
        final[e.path] = e
    for e in final.values():
        parts = e.path.split("/")
        for i in range(1, len(parts)):
            parent = final.get("/".join(parts[:i]))
            if parent is not None and parent.kind != "dir":
                raise _refuse(f"Member '{e.path}' goes through the {parent.kind} '{parent.path}'")
        if e.same_as is not None:
            src = final.get(e.same_as)
            if src is None or src.kind != "file":
                raise _refuse(f"Hard link '{e.path}' points to '{e.same_as}', not a file")
    links = {p: e.target or "" for p, e in final.items() if e.kind == "link"}
    for p, target in links.items():
        resolve_link(p, target, links)
    return list(final.values())


# -------------------------------------------------------------------- folder
def scan_folder(root: Path) -> list[Entry]:
    out: list[Entry] = []

    def walk(folder: Path, rel: str) -> None:
        try:
            items = sorted(os.scandir(folder), key=lambda d: d.name)
        except OSError as exc:
            raise DatastoreError(f"Cannot read folder {folder}: {exc.strerror or exc}.") from exc
        for item in items:
            path = f"{rel}{item.name}"
            st = item.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                out.append(Entry(path, "link", target=os.readlink(item.path)))
            elif stat.S_ISDIR(st.st_mode):
                out.append(Entry(path, "dir"))
                walk(Path(item.path), f"{path}/")
            elif stat.S_ISREG(st.st_mode):
                if not os.access(item.path, os.R_OK):
                    raise DatastoreError(f"Cannot read {item.path}: permission denied.")
                key = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
                ident = (st.st_dev, st.st_ino)
                out.append(Entry(path, "file", st.st_size, key, ref=Path(item.path), ident=ident))
            else:
                raise _refuse(f"'{item.path}' is not a file, folder or symlink")

    walk(root, "")
    return validate(out)


def read_folder(entries: list[Entry]) -> Iterator[tuple[Entry, IO[bytes]]]:
    """Open each scanned file again, refusing one swapped since the scan (TOCTOU).

    The scan refused every symlink, but a file can be replaced by one (to
    ``/etc/shadow``, say) between the scan and this read. ``O_NOFOLLOW`` refuses a
    symlink in the file's place, ``O_NONBLOCK`` a FIFO's endless open, and the
    ``fstat`` of what was opened must be the scanned regular file (device, inode),
    which also catches a folder on the way swapped for a symlink.
    """
    for e in entries:
        if isinstance(e.ref, Path):
            fh = open_scanned(e.ref, e.ident)
            with fh:
                yield e, fh


def open_scanned(path: Path, ident: tuple[int, int] | None) -> IO[bytes]:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _swapped(path, "it is now a symlink") from exc
        raise DatastoreError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (ident is not None and (st.st_dev, st.st_ino) != ident):
        os.close(fd)
        raise _swapped(path, "it is now another file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _swapped(path: Path, why: str) -> DatastoreError:
    return DatastoreError(
        f"{path} changed after it was scanned ({why}); refusing to store it.",
        hint="Make sure nothing rewrites the source while the datastore is created, then retry.",
    )


# ------------------------------------------------------------------ archives
ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error)


def archive_kind(path: Path) -> str | None:
    """``"zip"``, ``"tar"`` or None, by content (extensions lie; URLs have none)."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        return "tar" if tarfile.is_tarfile(path) else None
    except (OSError, *ARCHIVE_ERRORS):
        return None


def _broken(path: Path, exc: BaseException) -> Refused:
    return Refused(f"The archive {path.name} is unreadable or truncated ({exc}).")


def scan_archive(path: Path, kind: str) -> list[Entry]:
    try:
        return validate(_scan_zip(path) if kind == "zip" else _scan_tar(path))
    except ARCHIVE_ERRORS as exc:
        raise _broken(path, exc) from exc


def _scan_tar(path: Path) -> list[Entry]:
    out: list[Entry] = []
    files_before: dict[str, int] = {}
    with tarfile.open(path, "r:*") as tf:
        for i, m in enumerate(tf.getmembers()):
            rel = normalize(m.name)
            if rel is None:
                continue
            if m.isdir():
                out.append(Entry(rel, "dir"))
            elif m.issym():
                out.append(Entry(rel, "link", target=m.linkname))
            elif m.islnk():
                src = normalize(m.linkname)
                if src is None or src not in files_before:
                    raise _refuse(
                        f"Hard link '{rel}' points to '{m.linkname}', which is not an "
                        "earlier file of the archive"
                    )
                out.append(Entry(rel, "file", files_before[src], same_as=src, ref=i))
            elif m.isfile():
                out.append(Entry(rel, "file", m.size, f"{m.size}:{m.mtime}:{i}", ref=i))
                files_before[rel] = m.size
            else:
                raise _refuse(f"Member '{m.name}' is a device or fifo")
    return out


def _scan_zip(path: Path) -> list[Entry]:
    out: list[Entry] = []
    with zipfile.ZipFile(path) as zf:
        for i, info in enumerate(zf.infolist()):
            rel = normalize(info.filename)
            if rel is None:
                continue
            if info.flag_bits & 0x1:
                raise Refused(f"Member '{info.filename}' is encrypted; cannot read it.")
            mode = info.external_attr >> 16
            if info.is_dir():
                out.append(Entry(rel, "dir"))
            elif stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8", errors="replace")
                out.append(Entry(rel, "link", target=target))
            else:
                key = f"{info.file_size}:{info.CRC}:{i}"
                out.append(Entry(rel, "file", info.file_size, key, ref=i))
    return out


def read_archive(path: Path, kind: str, entries: list[Entry]) -> Iterator[tuple[Entry, IO[bytes]]]:
    """Stream the wanted file entries, in archive order (forward-only: fast on .tar.gz)."""
    wanted = {e.ref: e for e in entries if e.same_as is None and isinstance(e.ref, int)}
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
                for i in sorted(wanted):
                    with zf.open(infos[i]) as fh:
                        yield wanted[i], fh
            return
        with tarfile.open(path, "r:*") as tf:
            for i, m in enumerate(tf):
                if i in wanted:
                    member = tf.extractfile(m)
                    if member is None:
                        raise _broken(path, ValueError(f"no data for {m.name}"))
                    with member:
                        yield wanted[i], member
    except ARCHIVE_ERRORS as exc:
        raise _broken(path, exc) from exc
