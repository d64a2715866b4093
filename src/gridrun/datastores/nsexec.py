"""Run a command in a private mount namespace with read-only bind mounts.

Started as a *script* (``python -I nsexec.py PLAN -- CMD...``, standard library only,
so it does not import gridrun and starts in milliseconds), it becomes the
experiment's process: it calls ``unshare(2)``, makes every mount private (nothing
propagates to the host), bind-mounts each datastore tree at its mount dir, remounts
that bind read-only, then ``exec``s the command. The mounts disappear when the last
process of the namespace exits; the host never sees them.

Two ways in, chosen by the caller's probe (:mod:`gridrun.datastores.mount`):

``root``  euid 0 with CAP_SYS_ADMIN: ``unshare(CLONE_NEWNS)``.
``user``  anyone, where unprivileged user namespaces are allowed:
          ``unshare(CLONE_NEWUSER | CLONE_NEWNS)`` mapping the caller's uid/gid to
          themselves. The mount syscalls are made here, before ``exec`` drops the
          namespace capabilities (``mount(8)`` itself would refuse a non-root uid).

A read-only *bind* mount stops writes by root too (EROFS), which permission bits
do not. The remount keeps the flags the kernel locks in a user namespace (nosuid,
nodev, noexec, atime), or it would be refused with EPERM.

Before ``exec`` two more things make the mounts hold against a root experiment (the
probe behind this found one that remounted its read-only bind read-write and wrote
through it, and deduplication then spread the altered file to new datastores):

* ``hide``: a fresh tmpfs is mounted over ``GRID_HOME``, so its object stores, other
  runs' working copies and the datastores' host paths are not reachable at all; only
  the experiment's own working copy (read-write) and its environment (read-only) are
  bound back at their usual paths. They are opened (``O_PATH``) before the tmpfs goes
  on, and bound from those descriptors.
* the capabilities that could undo that are dropped from the bounding set
  (``CAP_SYS_ADMIN``: mount, remount, umount; ``CAP_SYS_PTRACE``: reaching the host's
  mounts through ``/proc/PID/root``; ``CAP_DAC_READ_SEARCH``: ``open_by_handle_at``;
  ``CAP_SYS_MODULE``, ``CAP_SYS_RAWIO``), and ``no_new_privs`` is set, so no setuid
  program gets them back. A root experiment keeps every other power of root; a nested
  user namespace gets its capabilities only over mounts the kernel has locked.

``--probe MODE DIR`` checks MODE end to end on DIR and prints ``ok``.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME = 16384, 1 << 18, 1 << 21
# statvfs f_flag bit -> mount flag to keep on remount
KEEP = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: MS_NOATIME,
        2048: MS_NODIRATIME, 4096: MS_RELATIME}  # fmt: skip

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]  # fmt: skip
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]  # fmt: skip
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
CAP_DAC_READ_SEARCH, CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_PTRACE, CAP_SYS_ADMIN = (
    2, 16, 17, 19, 21)  # fmt: skip
DROPPED_CAPS = (CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH, CAP_SYS_MODULE,
                CAP_SYS_RAWIO)  # fmt: skip
O_PATH = getattr(os, "O_PATH", 0o10000000)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, dst: str, flags: int) -> None:
    _check(
        _libc.mount(src.encode() if src else None, dst.encode(), None, flags, None),
        f"mount {dst}",
    )


def enter(mode: str) -> None:
    """Enter a new private mount namespace (and a user namespace in ``user`` mode)."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | (CLONE_NEWUSER if mode == "user" else 0)
    _check(_libc.unshare(flags), "unshare")
    if mode == "user":
        for path, text in (
            ("/proc/self/setgroups", "deny"),
            ("/proc/self/uid_map", f"{uid} {uid} 1"),
            ("/proc/self/gid_map", f"{gid} {gid} 1"),
        ):
            with open(path, "w") as fh:
                fh.write(text)
    _mount(None, "/", MS_REC | MS_PRIVATE)


def bind_readonly(src: str, dst: str) -> None:
    _mount(src, dst, MS_BIND | MS_REC)
    _remount_readonly(dst)


def _remount_readonly(dst: str) -> None:
    present = os.statvfs(dst).f_flag
    keep = 0
    for bit, flag in KEEP.items():
        if present & bit:
            keep |= flag
    _mount(None, dst, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)


def hide(home: str, keep_rw: list[str], keep_ro: list[str]) -> None:
    """Cover ``home`` with an empty tmpfs, then bind back only the folders listed."""
    fds = {p: os.open(p, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for p in keep_rw + keep_ro}
    _check(
        _libc.mount(b"gridrun-hidden", home.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                    b"mode=0700,size=1m"),
        f"mount tmpfs on {home}",
    )  # fmt: skip
    for path in keep_rw + keep_ro:
        os.makedirs(path, mode=0o700, exist_ok=True)
        _mount(f"/proc/self/fd/{fds[path]}", path, MS_BIND | MS_REC)
        if path in keep_ro:
            _remount_readonly(path)
        os.close(fds[path])


def drop_privileges() -> None:
    """Lose, for good, the capabilities that could undo the mounts (see the module doc)."""
    for cap in DROPPED_CAPS:
        rc = _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        if rc != 0 and ctypes.get_errno() != errno.EINVAL:  # EINVAL: unknown to this kernel
            _check(rc, "drop capability")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")


def probe(mode: str, folder: str) -> int:
    try:
        enter(mode)
        bind_readonly(folder, folder)
        try:
            with open(os.path.join(folder, "probe"), "w"):
                pass
        except OSError as exc:
            if exc.errno == errno.EROFS:
                print("ok")
                return 0
        return 1
    except OSError:
        return 1


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "--probe":
        return probe(argv[1], argv[2])
    if len(argv) < 3 or argv[1] != "--":
        print("usage: nsexec.py PLAN -- COMMAND...", file=sys.stderr)
        return 2
    plan = json.loads(argv[0])
    command = argv[2:]
    try:
        enter(plan["mode"])
    except OSError as exc:
        print(f"gridrun: cannot isolate the datastore mounts: {exc}", file=sys.stderr)
        return 126
    # Datastore trees live in GRID_HOME: open them before it is hidden.
    sources = {m["name"]: os.open(m["src"], O_PATH | os.O_DIRECTORY) for m in plan["mounts"]}
    if plan.get("hide"):
        try:
            hide(plan["hide"], plan.get("keep_rw", []), plan.get("keep_ro", []))
        except OSError as exc:
            print(f"gridrun: cannot hide GRID_HOME from the experiment: {exc}", file=sys.stderr)
            return 126
    for m in plan["mounts"]:
        try:
            bind_readonly(f"/proc/self/fd/{sources[m['name']]}", m["dst"])
            os.close(sources[m["name"]])
        except OSError as exc:
            print(
                f"gridrun: cannot mount datastore '{m['name']}' at {m['dst']}: {exc}",
                file=sys.stderr,
            )
            return 126
    try:
        drop_privileges()
    except OSError as exc:
        print(f"gridrun: cannot drop privileges: {exc}", file=sys.stderr)
        return 126
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"gridrun: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
