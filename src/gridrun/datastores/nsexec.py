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
    present = os.statvfs(dst).f_flag
    keep = 0
    for bit, flag in KEEP.items():
        if present & bit:
            keep |= flag
    _mount(None, dst, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)


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
    for m in plan["mounts"]:
        try:
            bind_readonly(m["src"], m["dst"])
        except OSError as exc:
            print(
                f"gridrun: cannot mount datastore '{m['name']}' at {m['dst']}: {exc}",
                file=sys.stderr,
            )
            return 126
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"gridrun: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
