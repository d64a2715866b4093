"""The exit witness: the one process that reaps a local experiment and writes down how.

The supervisor starts it in the experiment's place (``python -S -I``, standard library
only, like ``datastores/nsexec.py``); it forks and execs the experiment's command and
is its parent until the end. Why a process of its own (issue 21): an experiment whose
supervisor was killed ran on unsupervised to its end, and one that ended a moment
before its supervisor was killed had its exit status reaped by init and lost, so
``--auto_resume`` ran a completed experiment a second time. The witness closes both:

* ``PR_SET_PDEATHSIG``: when the supervisor dies, the kernel signals the witness,
  which kills the experiment and every descendant of it (it is their child subreaper,
  so none escapes by starting its own session) and records ``supervisor_died``: a
  true preemption, resumed under ``--auto_resume``, never a run that goes on alone.
* It is the experiment's only reaper, so it always knows whether the experiment had
  already ended (its real exit status, recorded) or was killed by it (a preemption).
  The record goes to a descriptor the supervisor opened in the experiment's folder
  (``witness.json``; the folder itself is hidden from the experiment), is written
  before the witness exits, and reconciliation honours it: an experiment that
  finished is never run again.

The witness ignores the usual termination signals (a ``grid stop`` signals the
experiment's processes itself, and the process group reaches both) and exits with the
experiment's own status, signal included, so the supervisor sees what it always saw.

``--init`` (when the supervisor confined the witness with ``nsexec``'s ``--pidns``):
the witness's child is the first process of a PID namespace of the experiment's own,
and becomes its init (:func:`run_init`): a ``/proc`` that shows the experiment's
processes only, so no experiment reaches another's working copy through
``/proc/PID/cwd`` (issue 21), as in a container. The init runs the command as its
child, reaps what is orphaned in the namespace, and when the command ends, ends the
rest (SIGTERM, SIGKILL after :data:`LEFTOVER_GRACE`; the kernel kills whatever is left
when an init exits). It sends the command's raw wait status to the witness over a pipe,
so a signal death is recorded as itself (an init cannot die of its own signals).
Usage: ``witness.py RECORD_FD SUPERVISOR_PID [--init] -- COMMAND...``; a RECORD_FD of -1
writes no record: the Slurm runner (``backends/slurm/runner.py``) calls :func:`main` in a
child it forked, and records the exit status it reaps itself.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time

# The signal module without its enums: ``signal`` imports ``enum`` (and ``typing``
# would import ``re``), a third of the start of the interpreters this module runs in.
TYPE_CHECKING = False  # mypy takes any TYPE_CHECKING for true
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
DEATH_SIGNAL = signal.SIGUSR2  # sent by the kernel when the supervisor dies
RECORD_SIZE = 512  # bytes the supervisor reserves for the record (blanks)
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
LEFTOVER_GRACE = 1.0  # seconds the command's leftovers get after it ended, as locally


class SupervisorDied(Exception):
    pass


def _on_death(signum: int, frame: object) -> None:
    if os.getppid() != SUPERVISOR[0]:  # a stray SIGUSR2 from elsewhere is not a death
        raise SupervisorDied


SUPERVISOR = [0]


def _children() -> list[int]:
    out: list[int] = []
    me = os.getpid()
    try:
        for tid in os.listdir(f"/proc/{me}/task"):
            with open(f"/proc/{me}/task/{tid}/children") as fh:
                out += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return out


def _tree(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        p = stack.pop()
        found.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    stack += [int(x) for x in fh.read().split()]
        except OSError:
            pass
    return found


def _kill_everything() -> None:
    """SIGKILL every descendant; orphans come back to us (subreaper) and are reaped."""
    while True:
        kids = _children()
        if not kids:
            try:
                while os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
            except ChildProcessError:
                pass
            return
        for kid in kids:
            for pid in _tree(kid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


ME = [""]


def _read_all(fd: int) -> bytes:
    out = b""
    try:
        while chunk := os.read(fd, 64):
            out += chunk
    except OSError:
        pass
    return out


def _me() -> str:
    """This process as ``ProcessRef.dump`` writes it: the handle the supervisor keeps,
    so a record is matched to its own attempt and never to a later one."""
    with open("/proc/self/stat", "rb") as fh:
        data = fh.read()
    return f"{os.getpid()} {int(data[data.rfind(b')') + 2 :].split()[19])}"


def _record(fd: int, code: int | None, died: bool) -> None:
    if fd < 0:  # its caller keeps the record (a Slurm task's runner: its exit status)
        return
    text = (
        f'{{"witness": "{ME[0] or _me()}", "exit_code": {"null" if code is None else code}, '
        f'"supervisor_died": {"true" if died else "false"}, "finished_at": {time.time()!r}}}\n'
    )
    # Over the blank bytes the supervisor wrote: no block to allocate, so a full disk
    # (an experiment that filled it) cannot refuse the record. Best effort all the
    # same: a record that cannot be written must never change the exit status.
    try:
        os.pwrite(fd, text.encode().ljust(RECORD_SIZE), 0)
        os.fsync(fd)
    except OSError:
        pass


def _exec(command: list[str]) -> None:
    """In a forked child: the command, with the signals as a fresh process has them."""
    try:
        for sig in (*FORWARDED, DEATH_SIGNAL):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [DEATH_SIGNAL])
        os.execvp(command[0], command)
    except OSError as exc:
        os.write(2, f"gridrun: cannot run {command[0]}: {exc.strerror}\n".encode())
    os._exit(127)


def _drop_privileges_or_exit() -> None:
    import nsexec

    try:
        nsexec.drop_privileges()
    except OSError as exc:
        os.write(2, f"gridrun: cannot confine the experiment: {exc}\n".encode())
        os._exit(126)


def run_init(command: list[str], status_fd: int) -> None:
    """PID 1 of the experiment's namespace: its ``/proc``, its command, its reaper.

    Never returns. Signals from outside reach the command's processes directly (the
    host sees every one of them); this init ignores them, so only SIGKILL ends it.
    """
    import nsexec  # beside datastores/, put on sys.path by the supervisor's command

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)  # the witness died: all go
    try:
        refused = nsexec.become_init()
    except OSError as exc:
        os.write(2, f"gridrun: cannot confine the experiment: {exc}\n".encode())
        os._exit(126)
    if refused:
        os.write(2, f"gridrun: the experiment sees every process here ({refused})\n".encode())
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_IGN)
    pid = os.fork()
    if pid == 0:
        _exec(command)
    status = 0
    while True:
        try:
            got, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if got == pid:
            status = st
            break
    deadline = time.monotonic() + LEFTOVER_GRACE
    try:
        os.kill(-1, signal.SIGTERM)  # every process of the namespace but this one
    except OSError:
        pass
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.02)
        except ChildProcessError:
            break
    try:
        os.write(status_fd, status.to_bytes(4, "little"))
    except OSError:
        pass
    os._exit(0)  # what is left dies with this init, by the kernel's SIGKILL


def _code(status: int) -> int:
    """Popen's convention: the exit code, or minus the signal that ended it."""
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def main(argv: list[str]) -> int:
    try:
        fd, supervisor = int(argv[0]), int(argv[1])
        command = argv[argv.index("--") + 1 :]
        init = "--init" in argv[2 : argv.index("--")]
    except (ValueError, IndexError):
        print("usage: witness.py RECORD_FD SUPERVISOR_PID -- COMMAND...", file=sys.stderr)
        return 2
    if not command:
        print("usage: witness.py RECORD_FD SUPERVISOR_PID -- COMMAND...", file=sys.stderr)
        return 2
    SUPERVISOR[0] = supervisor
    if fd >= 0:
        os.set_inheritable(fd, False)  # the experiment never gets its own record
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_IGN)
    # Held back until the wait below, so that the death is always handled there.
    signal.pthread_sigmask(signal.SIG_BLOCK, [DEATH_SIGNAL])
    signal.signal(DEATH_SIGNAL, _on_death)
    libc.prctl(PR_SET_PDEATHSIG, int(DEATH_SIGNAL), 0, 0, 0)
    if os.getppid() != supervisor:  # it died before the death signal was armed
        _record(fd, None, True)
        return 137
    ME[0] = _me()  # before the fork: an init's /proc is not the witness's
    status_r = status_w = -1
    if init:
        import nsexec  # beside datastores/, put on sys.path by the supervisor's command

        try:
            nsexec.new_pid_namespace()
            status_r, status_w = os.pipe()
        except OSError as exc:  # the experiment runs as before, and one line says so
            os.write(2, f"gridrun: the experiment sees every process here ({exc})\n".encode())
            init = False
    pid = os.fork()
    if pid == 0:
        if init:
            os.close(status_r)
            if fd >= 0:
                os.close(fd)
            run_init(command, status_w)
        elif "--init" in argv[2 : argv.index("--")]:
            _drop_privileges_or_exit()  # the init would have: nothing runs with them
        _exec(command)
    if init:
        os.close(status_w)
    status: int | None = None
    died = False
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [DEATH_SIGNAL])
        while status is None:
            got, st = os.waitpid(-1, 0)  # orphans of the experiment are reaped as well
            if got == pid:
                status = st
        signal.pthread_sigmask(signal.SIG_BLOCK, [DEATH_SIGNAL])
    except SupervisorDied:
        signal.pthread_sigmask(signal.SIG_BLOCK, [DEATH_SIGNAL])
        died = True
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            while status is None:
                got, st = os.waitpid(-1, 0)
                if got == pid:
                    status = st
        except ChildProcessError:
            pass
        _kill_everything()
        # Killed by us, or it had ended by itself a moment before: then a real exit.
        if status is not None:
            died = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    if init and status is not None and not died:
        # The command's own status, as its init saw it (an init exits 0 by itself).
        raw = _read_all(status_r)
        if len(raw) == 4:
            status = int.from_bytes(raw, "little")
        elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == 126:
            pass  # the init could not confine it: 126, as nsexec's refusal
        else:
            status = 9  # the init died before the command ended: killed (SIGKILL)
    code = None if status is None or died else _code(status)
    _record(fd, code, died)
    if died:
        return 137
    assert status is not None
    if os.WIFSIGNALED(status):
        killer = os.WTERMSIG(status)
        if killer not in (signal.SIGKILL, signal.SIGSTOP):  # these two take no handler
            signal.signal(killer, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [killer])
        os.kill(os.getpid(), killer)
        return 128 + killer  # a signal that does not end a process (not reached usually)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
