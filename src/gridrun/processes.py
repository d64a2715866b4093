"""Process identity and collection: signal only the process we mean, leave none behind.

A pid alone names whichever process holds that number *now*: after the process we
meant exits, the kernel hands the number to the next one, so ``kill(pid)`` from a
pid file can hit an unrelated program (SIGUSR1 kills most of them). Every pid that
gridrun keeps is therefore a :class:`ProcessRef`, the pid plus the process's start
time in clock ticks since boot (``/proc/<pid>/stat`` field 22, exact, unlike a
wall-clock float). Signalling opens a pidfd first, then checks the start time, then
signals through the pidfd: once the pidfd is open the number cannot be recycled under
us, so the check and the signal are about the same process.

The supervisor of an experiment makes itself a *child subreaper*
(``PR_SET_CHILD_SUBREAPER``): an experiment's descendants whose parents exit are
re-parented to the supervisor instead of init, including ones that started their own
session, so :func:`descendants` finds them all and :func:`kill_descendants` ends them.
When the supervisor itself is gone, :func:`experiment_processes` finds what is left
by the variables every experiment process inherits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None when it is gone or a zombie."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces or ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    if not fields or fields[0] in (b"Z", b"X"):  # state: zombie or dead
        return None
    return int(fields[19])  # field 22 overall; fields[0] is field 3


@dataclass(frozen=True)
class ProcessRef:
    """One particular process: a pid and the start time that tells it from a successor."""

    pid: int
    start: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef | None:
        ticks = start_ticks(pid)
        return None if ticks is None else cls(pid, ticks)

    @classmethod
    def current(cls) -> ProcessRef:
        ref = cls.of(os.getpid())
        assert ref is not None  # we are running
        return ref

    @classmethod
    def parse(cls, text: str) -> ProcessRef | None:
        """``"<pid> <start ticks>"`` as :meth:`dump` writes it; None for anything else.

        A bare pid (an old file, or one written by someone else) is refused: it cannot
        be checked, so it must never be signalled.
        """
        parts = text.split()
        if len(parts) != 2:
            return None
        try:
            pid, start = int(parts[0]), int(parts[1])
        except ValueError:
            return None
        return cls(pid, start) if pid > 0 else None

    def dump(self) -> str:
        return f"{self.pid} {self.start}"

    def alive(self) -> bool:
        """Whether this very process still runs (a zombie does not)."""
        return start_ticks(self.pid) == self.start

    def signal(self, sig: int) -> bool:
        """Send ``sig`` if, and only if, this process still runs. Returns whether it was sent."""
        try:
            fd = os.pidfd_open(self.pid)
        except (ProcessLookupError, OSError):
            return False
        try:
            if start_ticks(self.pid) != self.start:
                return False  # the pid now belongs to another process
            signal.pidfd_send_signal(fd, sig)
            return True
        except (ProcessLookupError, PermissionError, OSError):
            return False
        finally:
            os.close(fd)

    def wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True


def read_ref(path: Path) -> ProcessRef | None:
    try:
        return ProcessRef.parse(path.read_text())
    except OSError:
        return None


def write_ref(path: Path, ref: ProcessRef) -> None:
    from gridrun.fsutil import atomic_write_text

    atomic_write_text(path, ref.dump())


# ----------------------------------------------------------- collecting processes
def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process (Linux >= 3.4)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children(pid: int) -> list[int] | None:
    """Direct children of ``pid`` from ``/proc/<pid>/task/*/children``; None if unsupported.

    Reading the kernel's list of each thread's children costs a few files, where
    scanning every process of the machine for its parent costs hundreds, and the
    supervisor asks after every experiment.
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return [] if not os.path.exists(f"/proc/{pid}") else None
    out: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(x) for x in fh.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            return None  # a kernel without CONFIG_PROC_CHILDREN
        except OSError:
            continue
    return out


_DEDICATED = False  # set by dedicate_process(): every descendant is the experiment's


def dedicate_process() -> None:
    """Declare that this process exists to run one experiment (the supervisor does).

    Then every descendant of it is the experiment's and is ended with it, whatever it
    did to its environment. A process that also runs other things (a test, an embedding
    program) never declares it, and only the experiment's marked processes are ended.
    """
    global _DEDICATED
    _DEDICATED = True


def experiment_descendants(home: Path, experiment_id: int) -> list[ProcessRef]:
    """This process's descendants that belong to the experiment (all, when dedicated)."""
    found = descendants()
    if _DEDICATED:
        return found
    return [r for r in found if _carries_mark(r.pid, home, experiment_id)]


def _carries_mark(pid: int, home: Path, experiment_id: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    env = dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return (
        env.get(b"GRID_EXPERIMENT_ID") == str(experiment_id).encode()
        and env.get(b"GRID_HOME") == str(home).encode()
    )


def descendants(pid: int | None = None) -> list[ProcessRef]:
    """Every live descendant of ``pid`` (this process by default), parents first."""
    root = pid or os.getpid()
    found: list[int] = []
    stack = [root]
    while stack:
        kids = children(stack.pop())
        if kids is None:
            return _descendants_by_scan(root)
        found += kids
        stack += kids
    return [ref for p in found if (ref := ProcessRef.of(p)) is not None]


def _descendants_by_scan(pid: int) -> list[ProcessRef]:
    import psutil

    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [ref for p in procs if (ref := ProcessRef.of(p.pid)) is not None]


def experiment_processes(home: Path, experiment_id: int) -> list[ProcessRef]:
    """Processes of one experiment found by the environment they inherit.

    Used when the experiment's supervisor is gone (SIGKILL, a crash): its orphans are
    then children of init, and the only mark they carry is ``GRID_HOME`` and
    ``GRID_EXPERIMENT_ID`` in their environment. Processes of other users, which we
    could not signal anyway, cannot be read and are skipped.
    """
    return marked_processes({"GRID_HOME": str(home), "GRID_EXPERIMENT_ID": str(experiment_id)})


def marked_processes(marks: dict[str, str]) -> list[ProcessRef]:
    """Every process (but this one) whose environment holds all of ``marks``.

    What an experiment's or a session's processes inherit is how they are found once
    whoever started them is gone; processes of other users cannot be read and are
    skipped.
    """
    import psutil

    me = os.getpid()
    out = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            env = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
        if all(env.get(k) == v for k, v in marks.items()):
            ref = ProcessRef.of(proc.pid)
            if ref is not None:
                out.append(ref)
    return out


def terminate_all(refs: Iterable[ProcessRef], grace: float) -> None:
    """SIGTERM each process, SIGKILL those still running after ``grace`` seconds."""
    refs = [r for r in refs if r.signal(signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while refs and time.monotonic() < deadline:
        refs = [r for r in refs if r.alive()]
        time.sleep(0.02)
    kill_all(refs)


def kill_all(refs: Iterable[ProcessRef]) -> None:
    for r in refs:
        r.signal(signal.SIGKILL)


def kill_descendants(
    grace: float = 1.0, rounds: int = 20, pick: Callable[[], list[ProcessRef]] = descendants
) -> None:
    """End every descendant of this process that ``pick`` names (it should be a subreaper).

    Repeated until none is left, since a dying process may fork, and re-parenting of
    its orphans to us is only visible once it has exited.
    """
    for i in range(rounds):
        found = pick()
        if not found:
            return
        if i == 0:
            terminate_all(found, grace)
        else:
            kill_all(found)
        _reap_children(None if _DEDICATED else [r.pid for r in found])
        time.sleep(0.01)


def _reap_children(pids: list[int] | None = None) -> None:
    """Collect exited re-parented orphans (only ``pids``, if given), so none lingers."""
    if pids is not None:
        for pid in pids:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        return
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
