"""Run a command in a private mount namespace with read-only bind mounts.

Two ways in: the local backend's supervisor calls :func:`child_setup` in the child it
forks for the experiment, before that child execs the script (no interpreter to start);
a caller that can only exec a command starts ``python -S -I nsexec.py --mode M
[OPTIONS] -- CMD...`` (or imports it from a ``-c`` line that calls :func:`main`, to
use its cached bytecode). Either way it becomes the experiment's process: it calls
``unshare(2)``, makes every mount private (nothing propagates to the host),
bind-mounts each datastore tree at its mount dir, remounts that bind read-only, then
``exec``s the command. The mounts disappear when
the last process of the namespace exits; the host never sees them.

As a wrapper it runs before the experiment, so its start-up is kept small: standard
library only and no ``site`` (``-S``: a virtualenv's ``.pth`` files and gridrun's
package are never read), and the plan comes as plain arguments rather than JSON
(``json`` pulls in ``re`` and ``enum``, most of what the wrapper would import).
``benchmarks/bench_nsexec.py`` measures it against a bare start and ``unshare -m``.

Options: ``--hide HOME``, ``--rw PATH`` and ``--ro PATH`` (see ``hide`` below),
``--layer ENV FOLDER`` (below), ``--mount NAME SRC DST`` (a datastore), each repeatable
but ``--mode`` and ``--hide``; ``--scratch PATH BYTES`` (a size-capped tmpfs, Grid's
scratch space); ``--pidns``: the command is the local exit witness, which
makes a PID namespace for the experiment (:func:`new_pid_namespace`) whose init drops
the capabilities (:func:`become_init`), so they are not dropped here.

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
  the experiment's own working copy (read-write) and its environment are bound back
  at their usual paths. They are opened (``O_PATH``) before the tmpfs goes on, and
  bound from those descriptors.
* ``layer``: the environment is a cache shared by every run with the same key, so a
  run must not change it, yet ``pip install x`` in a run must work (and reach only that
  run). An overlay mount over the environment's own path gives both: the cache is its
  read-only lower layer, and what the run writes lands in an upper layer in the
  experiment's folder (``FOLDER/upper``), removed with its working copy. Overlayfs
  mounts work as root and, since Linux 5.11, inside an unprivileged user namespace,
  so both isolation modes get it; unlike a ``--system-site-packages`` venv over the
  cache, the run sees the same ``sys.prefix``, its own ``pip`` and
  ``uninstall``/upgrade of a cached package too. Where the kernel refuses the overlay
  the environment is bound writable, as before, and one line on stderr says so.
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
import os
import sys

# The signal module without its enums: ``signal`` imports ``enum`` (and ``typing``
# would import ``re``), a third of the start of the interpreters this module runs in.
TYPE_CHECKING = False  # mypy takes any TYPE_CHECKING for true
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
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
    uid, gid = os.getuid(), os.getgid()  # before: unmapped ids read as 65534 after
    _check(_libc.unshare(CLONE_NEWNS | (CLONE_NEWUSER if mode == "user" else 0)), "unshare")
    if mode == "user":
        _map_ids(uid, gid)
    _mount(None, "/", MS_REC | MS_PRIVATE)


def _map_ids(uid: int, gid: int) -> None:
    """In a new user namespace: the caller's ids mapped to themselves, and only those."""
    for path, text in (
        ("/proc/self/setgroups", "deny"),
        ("/proc/self/uid_map", f"{uid} {uid} 1"),
        ("/proc/self/gid_map", f"{gid} {gid} 1"),
    ):
        with open(path, "w") as fh:
            fh.write(text)


def new_pid_namespace() -> None:
    """Make this process's next child the first process of a new PID namespace.

    Called by the exit witness (which stays where it is) just before it forks the
    experiment's init. As root it has the capability; an unprivileged witness (the
    ``user`` isolation mode: it lost its capabilities at ``exec``) makes a nested user
    namespace for it, which also locks every mount made so far. OSError: neither works.
    """
    if _libc.unshare(CLONE_NEWPID) == 0:
        return
    uid, gid = os.getuid(), os.getgid()
    _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWPID), "unshare a PID namespace")
    _map_ids(uid, gid)


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


def layer(env: str, folder: str) -> str | None:
    """Mount a per-run writable overlay over ``env``; None, or why it was refused."""
    paths = [env, *(os.path.join(folder, p) for p in ("upper", "work"))]
    for path in paths[1:]:
        os.makedirs(path, mode=0o700, exist_ok=True)
    # Every layer by descriptor: no path of GRID_HOME (spaces, commas, colons) ever has
    # to survive overlayfs's option syntax.
    fds = [os.open(p, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for p in paths]
    lower, upper, work = (f"/proc/self/fd/{fd}" for fd in fds)
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}".encode()
    try:
        rc = _libc.mount(b"gridrun-env", env.encode(), b"overlay", MS_NOSUID | MS_NODEV, opts)
        return None if rc == 0 else os.strerror(ctypes.get_errno())
    finally:
        for fd in fds:
            os.close(fd)


def scratch(path: str, size: int) -> None:
    """Grid's scratch space: a tmpfs of ``size`` bytes at ``path``, in this namespace only.

    Writes past the size fail with ENOSPC inside the experiment; the host's disk never
    fills, and the space is gone with the namespace. The mount point is made on the host
    if missing (an empty folder, like Docker's bind targets).
    """
    os.makedirs(path, mode=0o755, exist_ok=True)
    opts = f"size={size},mode=1777".encode()
    _check(
        _libc.mount(b"gridrun-scratch", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts),
        f"mount a scratch space on {path}",
    )


def drop_privileges() -> None:
    """Lose, for good, the capabilities that could undo the mounts (see the module doc).

    A process with no capability at all (an unprivileged witness whose PID namespace
    could not be made) may not change its bounding set (EPERM), and needs not: it has
    nothing to lose, and ``no_new_privs`` keeps setuid programs from giving any back.
    """
    for cap in DROPPED_CAPS:
        rc = _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        err = ctypes.get_errno()
        if rc != 0 and err == errno.EPERM and os.geteuid() != 0 and not _any_capability():
            break
        if rc != 0 and err != errno.EINVAL:  # EINVAL: unknown to this kernel
            _check(rc, "drop capability")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")


def _any_capability() -> bool:
    """Whether this process holds any capability (its permitted set is not empty)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapPrm:"):
                    return int(line.split()[1], 16) != 0
    except (OSError, ValueError):
        pass
    return True  # unknown: assume it does, so a failure to drop is an error


def become_init() -> str | None:
    """In the first process of a new PID namespace: a ``/proc`` that shows only it.

    The experiment's own init (the exit witness's child) mounts a fresh ``proc`` in a
    mount namespace of its own, so the witness outside keeps the host's ``/proc``;
    the experiment then sees its own processes only, and no other experiment's
    ``/proc/PID/cwd`` or ``/proc/PID/root`` (which same-uid processes may otherwise
    open: issue 21). Then the capabilities are dropped, as :func:`confine` does
    without a PID namespace. Returns None, or why ``/proc`` could not be replaced (the
    experiment then runs with the host's, and one line says so).
    """
    refused = None
    try:
        _check(_libc.unshare(CLONE_NEWNS), "unshare")
        _mount(None, "/", MS_REC | MS_PRIVATE)
        _check(
            _libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
            "mount /proc",
        )
    except OSError as exc:
        refused = str(exc)
    drop_privileges()
    return refused


MODES = ("root", "user", "none")


def forced_mode() -> str | None:
    """``GRIDRUN_DATASTORE_ISOLATION``, when it names a mode (the probe is skipped)."""
    forced = os.environ.get("GRIDRUN_DATASTORE_ISOLATION", "").strip().lower()
    return forced if forced in MODES else None


def node_record(folder: str) -> tuple[str, str]:
    """Where a node's probed isolation mode is kept, and what it is kept for.

    The key is the node's name, its boot, the user and the Python (one a line), so a
    node rebooted into another kernel, or a cluster that shares ``folder`` between
    nodes, probes again. Plain lines, not JSON: the Slurm runner reads it in an
    interpreter that imports as little as it can.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip()
    except OSError:
        boot = ""
    node = os.uname().nodename
    key = "\n".join([node, boot, str(os.geteuid()), sys.executable])
    return os.path.join(folder, f"isolation-{node}"), key


def read_node_mode(folder: str) -> str | None:
    """The mode recorded for this node, boot, user and Python (:func:`node_record`)."""
    path, key = node_record(folder)
    try:
        with open(path) as fh:
            mode, _, recorded = fh.read().partition("\n")
    except OSError:
        return None
    if recorded != key + "\n" or not key.split("\n")[1] or mode not in MODES:
        return None  # another boot, user or Python's; or a boot that cannot be told
    return mode


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


class Plan:
    """What ``local_mount_command`` asks for, parsed from plain arguments (see top)."""

    def __init__(self, argv: list[str]) -> None:
        self.mode = ""
        self.hide = ""
        self.rw: list[str] = []
        self.ro: list[str] = []
        self.layers: list[tuple[str, str]] = []
        self.mounts: list[tuple[str, str, str]] = []
        self.pidns = False  # --pidns: the caller's child becomes a PID namespace's init
        self.scratch: tuple[str, int] | None = None  # --scratch PATH BYTES
        i = 0
        while argv[i] != "--":
            opt = argv[i]
            if opt == "--pidns":
                self.pidns = True
                i += 1
                continue
            if opt == "--mode":
                self.mode = argv[i + 1]
            elif opt == "--hide":
                self.hide = argv[i + 1]
            elif opt == "--rw":
                self.rw.append(argv[i + 1])
            elif opt == "--ro":
                self.ro.append(argv[i + 1])
            elif opt == "--layer":
                self.layers.append((argv[i + 1], argv[i + 2]))
                i += 1
            elif opt == "--scratch":
                self.scratch = (argv[i + 1], int(argv[i + 2]))
                i += 1
            elif opt == "--mount":
                self.mounts.append((argv[i + 1], argv[i + 2], argv[i + 3]))
                i += 2
            else:
                raise ValueError(opt)
            i += 2
        self.command = argv[i + 1 :]
        if self.mode not in ("root", "user") or not self.command:
            raise ValueError("--mode")


class Refused(Exception):
    """The confinement could not be set up: the experiment must not run (exit 126)."""


def confine(plan: Plan) -> list[str]:
    """Everything between the caller's fork and ``exec``; returns warnings to show.

    Raises :class:`Refused` with the one line to print. Run in a process of its own,
    single-threaded (``unshare(CLONE_NEWUSER)`` requires it): this wrapper, or the
    child a supervisor forks for its experiment (:func:`child_setup`).
    """
    warnings: list[str] = []
    # The working directory, entered before the namespace, still points into the
    # host's GRID_HOME once the tmpfs covers it (``..`` would reach other runs): it is
    # entered again, by path, once the mounts are made.
    cwd = os.getcwd()
    try:
        enter(plan.mode)
    except OSError as exc:
        raise Refused(f"gridrun: cannot isolate the datastore mounts: {exc}") from exc
    # Datastore trees live in GRID_HOME: open them before it is hidden.
    sources = {name: os.open(src, O_PATH | os.O_DIRECTORY) for name, src, _ in plan.mounts}
    rw = list(plan.rw)
    for env, folder in plan.layers:
        try:
            refused = layer(env, folder)
        except OSError as exc:
            refused = str(exc)
        if refused:
            warnings.append(
                f"gridrun: no private layer over the cached environment here ({refused}): "
                "what this run installs changes it for every run that shares it"
            )
        if plan.hide and env.startswith(plan.hide.rstrip("/") + "/"):
            rw.append(env)  # bound back over the tmpfs: the overlay, or the env itself
    if plan.hide:
        try:
            hide(plan.hide, rw, plan.ro)
        except OSError as exc:
            raise Refused(f"gridrun: cannot hide GRID_HOME from the experiment: {exc}") from exc
    if plan.scratch is not None:
        try:
            scratch(*plan.scratch)
        except OSError as exc:
            raise Refused(f"gridrun: cannot make the scratch space: {exc}") from exc
    for name, _, dst in plan.mounts:
        try:
            bind_readonly(f"/proc/self/fd/{sources[name]}", dst)
            os.close(sources[name])
        except OSError as exc:
            raise Refused(f"gridrun: cannot mount datastore '{name}' at {dst}: {exc}") from exc
    try:
        if not plan.pidns:  # with one, the namespace's init drops them (become_init)
            drop_privileges()
    except OSError as exc:
        raise Refused(f"gridrun: cannot drop privileges: {exc}") from exc
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise Refused(f"gridrun: cannot enter {cwd} in the namespace: {exc}") from exc
    return warnings


def child_setup(plan: Plan) -> None:
    """``subprocess.Popen(preexec_fn=...)`` in a supervisor: :func:`confine` in the
    forked child, so no second interpreter starts per experiment (~20 ms of CPU each).

    Only raw ``write(2)`` to stderr (the experiment's pipe by now): the child of a
    threaded process must not take a lock another thread may have held at the fork,
    which ``sys.stderr`` has. Refused: the child exits 126, as the wrapper does.
    """
    # The supervisor's handlers (inherited by the fork) must not run here: a stop
    # that comes before the exec ends this child as it would end the experiment.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        for line in confine(plan):
            os.write(2, (line + "\n").encode())
    except Refused as exc:
        os.write(2, (str(exc) + "\n").encode())
        os._exit(126)
    except BaseException as exc:  # nothing may run unconfined
        os.write(2, f"gridrun: cannot confine the experiment: {exc}\n".encode())
        os._exit(126)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "--probe":
        return probe(argv[1], argv[2])
    try:
        plan = Plan(argv)
    except (ValueError, IndexError):
        print("usage: nsexec.py --mode root|user [OPTIONS] -- COMMAND...", file=sys.stderr)
        return 2
    try:
        for line in confine(plan):
            print(line, file=sys.stderr)
    except Refused as exc:
        print(exc, file=sys.stderr)
        return 126
    try:
        os.execvp(plan.command[0], plan.command)
    except OSError as exc:
        print(f"gridrun: cannot run {plan.command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
