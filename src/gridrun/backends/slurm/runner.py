"""What runs in a Slurm allocation: one experiment, in an interpreter that imports no gridrun.

The batch script (``script.py``) execs it as ``python -S -I -c "...; import runner"``:
no ``site``, standard library only, its own folder and those of ``witness.py``,
``nsexec.py`` and ``treecopy.py`` last on ``sys.path``. Why: a job array of a hundred
trivial experiments started a hundred interpreters that each imported half of gridrun
(~45 ms of CPU) and then a second one for the exit witness, about ten times the CPU of
the script itself, so on a busy node the array took four times as long as the same
array submitted by hand (issue 22). Here a task costs about one bare interpreter more
than the script.

What the agent could work out at submission is in the experiment's plan
(``slurm-plan.bin``, ``marshal``: :mod:`gridrun.backends.slurm.plan` writes it): the
command, its environment, its confinement, the working copy's files. The runner adds
what only the node knows: Slurm's ``SLURM_*`` variables, the GPUs Slurm granted (its
``CUDA_VISIBLE_DEVICES``), and the node's isolation mode, probed once per node and
boot (``nsexec.read_node_mode``). Then it runs the experiment as the local backend
does: its own working copy, GRID_HOME hidden, the environment copy-on-write, its own
PID namespace, under the exit witness (``witness.main``, called in a forked child:
no interpreter of its own), with each output line written to the experiment's log as
it arrives; and it writes the exit record (:data:`EXIT_FILE`) that the agent reads.

What needs gridrun goes to ``task.py`` (exec'd in this process's place): a restart, a
run from a repository, datastores or a scratch space, and a node whose isolation mode
is not recorded yet. It prepares the experiment and execs this runner again with
``--prepared PLAN``, so there is one way an experiment runs on a node.

SIGTERM (``scancel --signal=TERM``, a time limit's ``--signal``) stops the experiment
as ``grid stop`` does: SIGTERM to its processes, SIGKILL after the grace period.

Usage: ``runner.py --manifest FILE`` (an array task: the plan named on line
``SLURM_ARRAY_TASK_ID``), ``runner.py PLAN``, ``runner.py --prepared PLAN``.
"""

from __future__ import annotations

import marshal
import os
import select
import sys
import time

# The signal module without its enums: ``signal`` imports ``enum`` (and ``typing``
# would import ``re``), a third of the start of the interpreters this module runs in.
TYPE_CHECKING = False  # mypy takes any TYPE_CHECKING for true
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal

try:  # as the batch script starts it: from their folders, on sys.path (see above)
    import nsexec
    import treecopy
    import witness
except ImportError:  # imported as part of gridrun (plan.py, task.py, tests)
    from gridrun.backends.local import witness
    from gridrun.datastores import nsexec
    from gridrun.project import treecopy

PLAN_VERSION = 1
EXIT_FILE = "slurm-exit.json"
TASK_MODULE = "gridrun.backends.slurm.task"
LEFTOVER_GRACE = 1.0  # seconds what the command left running gets after it ended
READ_SIZE = 1 << 16


def run(argv: list[str]) -> None:
    """:func:`main`, then exit at once: the interpreter's own tear-down (a collection,
    every module freed) would cost a task more CPU than its whole run loop."""
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str]) -> int:
    began = time.time()  # when Slurm placed it: its run time starts here
    stop = _Stop()
    prepared = argv[:1] == ["--prepared"]
    try:
        plan = _load(_plan_path(argv[1:] if prepared else argv))
    except (OSError, ValueError, EOFError, KeyError, IndexError, TypeError) as exc:
        print(f"gridrun: no experiment to run ({exc})", file=sys.stderr)
        print("usage: runner.py --manifest FILE | PLAN | --prepared PLAN", file=sys.stderr)
        return 2
    if prepared:
        mode, began = plan["mode"], plan["began"]
    else:
        mode = _node_mode(plan["nodes"])
        if (plan["full"] or mode is None) and not stop.requested:
            return _hand_over(plan, began)
    log = _Log(plan["log"])
    try:
        if stop.requested:
            code = 143  # stopped before it started, as a shell reports SIGTERM
        else:
            if not prepared:
                _working_copy(plan)
            code = _run(plan, mode, log, stop)
    except Exception as exc:  # the experiment could not start here: its failure
        log.write(b"stderr", f"gridrun: {type(exc).__name__}: {exc}".encode())
        code = 1
    finally:
        log.close()
    record_exit(plan["exp_dir"], plan["attempt"], code, stop.requested, began)
    if code < 0:  # killed by a signal: as a shell reports it
        return 128 - code
    return code & 0xFF


# ------------------------------------------------------------------ the plan
def _plan_path(argv: list[str]) -> str:
    if len(argv) == 2 and argv[0] == "--manifest":
        with open(argv[1]) as fh:
            return fh.read().splitlines()[int(os.environ["SLURM_ARRAY_TASK_ID"])]
    if len(argv) != 1:
        raise ValueError("wrong arguments")
    return argv[0]


def _load(path: str) -> dict:
    with open(path, "rb") as fh:
        plan = marshal.load(fh)
    if not isinstance(plan, dict) or plan.get("version") != PLAN_VERSION:
        raise ValueError(f"{path} is not a plan this runner reads")
    return plan


def _node_mode(nodes: str) -> str | None:
    """The node's isolation mode: forced, or recorded for this boot; None: not known."""
    return nsexec.forced_mode() or nsexec.read_node_mode(nodes)


def _hand_over(plan: dict, began: float) -> int:
    """What needs gridrun (see the module docstring): ``task.py`` in this process."""
    argv = [sys.executable, "-m", TASK_MODULE, plan["job"], "--began", repr(began)]
    try:
        os.execv(sys.executable, argv)
    except OSError as exc:
        print(f"gridrun: cannot start {TASK_MODULE}: {exc}", file=sys.stderr)
    return 127


def _working_copy(plan: dict) -> None:
    workdir = plan["workdir"]
    if os.path.lexists(workdir):  # left by an attempt Slurm ran before (never resumed here)
        import shutil

        shutil.rmtree(workdir)
    with open(plan["tree"], "rb") as fh:
        treecopy.write_tree(marshal.load(fh), workdir)


# ------------------------------------------------------------------ the run
def _run(plan: dict, mode: str, log: _Log, stop: _Stop) -> int:
    """Start the experiment under its witness, pump its output, return its exit code
    (Popen's convention: minus the signal that ended it)."""
    env = dict(plan["env"])
    own = set(plan["own"])  # gridrun's variables for it, which win over Slurm's
    env.update({k: v for k, v in os.environ.items() if k.startswith("SLURM") and k not in own})
    # The GPUs are those Slurm granted (its CUDA_VISIBLE_DEVICES), not the agent's.
    granted = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
    env["CUDA_VISIBLE_DEVICES"] = ",".join(g.strip() for g in granted if g.strip().isdigit())
    confine = plan["confine"]  # "--mode" first: the node's own (a prepared plan has it)
    if confine is not None:
        confine = None if mode == "none" else ["--mode", mode, *confine[2:]]
    _become_subreaper()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, _ignore)  # its end wakes the loop below
    init = ["--init"] if confine is not None else []
    pid = os.fork()
    if pid == 0:
        _child(plan, env, confine, [out_r, err_r, wake_r, wake_w, log.fd], out_w, err_w, init)
    os.close(out_w)
    os.close(err_w)
    stop.child = pid
    if stop.requested:
        stop.act(plan["grace"])
    return _pump(pid, {out_r: b"stdout", err_r: b"stderr"}, wake_r, log, stop, plan["grace"])


def _child(
    plan: dict,
    env: dict[str, str],
    confine: list[str] | None,
    close: list[int],
    out_w: int,
    err_w: int,
    init: list[str],
) -> None:
    """The forked child: confined, then the exit witness. Never returns."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()  # its own process group, apart from the runner's
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in {*close, null, out_w, err_w}:
            if fd > 2:  # (a runner started without stdin could have been given 0)
                os.close(fd)
        os.chdir(plan["workdir"])
        os.environ.clear()
        os.environ.update(env)  # the witness execs the command with it
        if confine is not None:
            nsexec.child_setup(nsexec.Plan([*confine, "--", *plan["argv"]]))
        code = witness.main(["-1", str(os.getppid()), *init, "--", *plan["argv"]])
    except BaseException as exc:  # nothing may run unconfined, or unwitnessed
        os.write(2, f"gridrun: cannot start the experiment: {exc}\n".encode())
        code = 126
    os._exit(code)


def _pump(
    pid: int, streams: dict[int, bytes], wake_r: int, log: _Log, stop: _Stop, grace: float
) -> int:
    """Each line to the log as it arrives, until the witness ended and its output did."""
    poller = select.poll()
    for fd in (*streams, wake_r):
        poller.register(fd, select.POLLIN)
    partial = {fd: b"" for fd in streams}
    status: int | None = None
    leftovers_until = 0.0
    while streams or status is None:
        now = time.monotonic()
        waits = [t for t in (stop.deadline, leftovers_until or None) if t is not None]
        timeout = None if not waits else max(0, int((min(waits) - now) * 1000) + 1)
        for fd, _ in poller.poll(timeout):
            if fd == wake_r:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                continue
            data = os.read(fd, READ_SIZE)
            if not data:
                if partial[fd]:
                    log.write(streams[fd], partial.pop(fd))
                poller.unregister(fd)
                os.close(fd)
                del streams[fd]
                continue
            lines = (partial[fd] + data).split(b"\n")
            partial[fd] = lines.pop()
            for line in lines:
                log.write(streams[fd], line)
        if stop.pending:
            stop.act(grace)
        if stop.deadline is not None and status is None and time.monotonic() >= stop.deadline:
            _signal_all(witness._tree(pid), signal.SIGKILL)
            stop.deadline = None
        if status is None:
            got, st = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                status = st
                # What the command left running (without a PID namespace of its own):
                # orphans of the witness, now ours. SIGTERM, SIGKILL after the grace;
                # then its output is read no longer, whoever still holds it open.
                _signal_all(_descendants(), signal.SIGTERM)
                leftovers_until = time.monotonic() + LEFTOVER_GRACE
        if status is not None and leftovers_until and time.monotonic() >= leftovers_until:
            _signal_all(_descendants(), signal.SIGKILL)
            leftovers_until = 0.0
            if streams:  # still held open by something no signal reached: stop reading
                for fd in list(streams):
                    if partial.get(fd):
                        log.write(streams[fd], partial[fd])
                    poller.unregister(fd)
                    os.close(fd)
                    del streams[fd]
    _reap()
    assert status is not None
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


class _Stop:
    """SIGTERM or SIGINT: the experiment's processes get SIGTERM, SIGKILL after the grace."""

    def __init__(self) -> None:
        self.requested = False
        self.pending = False
        self.child = 0
        self.deadline: float | None = None
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        # task.py blocks them before it execs this runner: any that came meanwhile
        # are taken now, by the handler.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})

    def _on_signal(self, signum: int, frame: object) -> None:
        if not self.requested:
            self.requested = self.pending = True

    def act(self, grace: float) -> None:
        self.pending = False
        if self.child:
            _signal_all(witness._tree(self.child), signal.SIGTERM)
            self.deadline = time.monotonic() + grace


def _ignore(signum: int, frame: object) -> None:
    pass


def _signal_all(pids: list[int], sig: int) -> bool:
    sent = False
    for p in pids:
        try:
            os.kill(p, sig)
            sent = True
        except OSError:
            pass
    return sent


def _descendants() -> list[int]:
    return witness._tree(os.getpid())[1:]


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _become_subreaper() -> None:
    """Orphans of the experiment come back to this process, so none outlives it."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(witness.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


# ------------------------------------------------------------ log and record
class _Log:
    """The experiment's log, as ``gridrun.logs.LogSink`` writes it: one ``write(2)`` a
    line, ``[stream] [ISO-8601 UTC time] text``; a line that cannot be written is
    counted, and said once a write succeeds again."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.lost = 0
        self.why = ""

    def write(self, stream: bytes, raw: bytes, ts: float | None = None) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
        line = b"[%s] [%s] %s\n" % (
            stream,
            stamp(time.time() if ts is None else ts).encode(),
            text.encode("utf-8", errors="replace"),
        )
        try:
            if self.lost:
                note = f"gridrun: {self.lost} log line(s) lost: {self.why}".encode()
                os.write(self.fd, b"[stderr] [%s] %s\n" % (stamp(time.time()).encode(), note))
                self.lost = 0
            os.write(self.fd, line)
        except OSError as exc:
            self.lost += 1
            self.why = exc.strerror or str(exc)

    def close(self) -> None:
        os.close(self.fd)


def stamp(ts: float) -> str:
    """``datetime.fromtimestamp(ts, timezone.utc).isoformat()``, without ``datetime``."""
    seconds = int(ts)
    micro = round((ts - seconds) * 1_000_000)
    if micro == 1_000_000:
        seconds, micro = seconds + 1, 0
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{micro:06d}+00:00" if micro else f"{text}+00:00"


def record_exit(exp_dir: str, attempt: int, code: int, stopped: bool, began: float) -> None:
    """The exit record the agent reads (``backends/slurm/backend.py``), written whole or
    not at all (renamed into place); ``task.py`` writes it with this too.

    Not fsynced, as the agent's own exit record (``supervisor.write_exit_record``):
    on a cluster GRID_HOME is a shared file system, where closing the file sends it
    to the server, so a node that dies after this still leaves it; a power loss of
    the machine that holds GRID_HOME takes the experiment's own unsynced files and
    the store's last commits with it, and the experiment is then rightly taken for
    preempted. An fsync per task made each of an array's tasks wait on the disk's
    journal (``benchmarks/bench_slurm.py``).
    """
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    handle = (
        f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
        if array
        else os.environ.get("SLURM_JOB_ID", "")
    )
    text = (
        f'{{"slurm_job": {_quote(handle)}, "attempt": {int(attempt)}, '
        f'"exit_code": {int(code)}, "stopped": {"true" if stopped else "false"}, '
        f'"node": {_quote(os.environ.get("SLURMD_NODENAME", ""))}, "started_at": {began!r}, '
        f'"finished_at": {time.time()!r}}}'
    )
    path = os.path.join(exp_dir, EXIT_FILE)
    tmp = os.path.join(exp_dir, f".{EXIT_FILE}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(text.encode())
    os.replace(tmp, path)


def _quote(text: str) -> str:
    """A JSON string (``json.dumps`` would import ``re``, most of this runner's start)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


if __name__ == "__main__":
    run(sys.argv[1:])
