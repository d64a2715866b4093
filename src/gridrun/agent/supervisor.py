"""The per-experiment supervisor: runs one experiment and records how it ended.

Started detached (its own session) by the agent with a claim token. It is the only
process that moves an experiment from claimed-pending to ``running`` and from
``running`` to a final status, using conditional updates, so an experiment never runs
twice even when a restarted agent reconciles at the same moment. It also reads the
experiment's metrics as they are written (:mod:`gridrun.metrics.ingest`), so they keep
flowing when the agent dies. Output goes straight
from the backend to ``output.log``; the attempt's result (an
:class:`~gridrun.attempts.AttemptResult`) is written to ``exit.json`` before the
database, so a crash between the two is repaired by reconciliation.

Kept free of CLI imports (click, rich) so that it starts fast.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from gridrun.agent.jobs import make_job, save_job
from gridrun.attempts import AttemptResult
from gridrun.backends import get_backend
from gridrun.backends.base import Backend, Job
from gridrun.config import MachineConfig, load_machine_config
from gridrun.errors import out_of_space
from gridrun.fsutil import atomic_write_json
from gridrun.home import ExperimentPaths, GridHome
from gridrun.logs import LogSink
from gridrun.processes import ProcessRef
from gridrun.store.db import Store
from gridrun.store.endings import Ending, Policy, conclude, decide
from gridrun.store.models import Experiment, Run, Status

if TYPE_CHECKING:
    from gridrun.metrics.ingest import IngestTarget, LiveIngest


def write_exit_record(exp_dir: Path, attempt: int | None, result: AttemptResult) -> None:
    # Renamed into place, not fsynced: the record is for a supervisor that dies before
    # the store has the exit (a crash, SIGKILL), and the rename alone makes it whole
    # for the reconciler. A power loss may lose it, but it ends the experiment too and
    # may roll back the store's last commits (synchronous=NORMAL): reconciliation then
    # finds no record and takes it for a preemption, which is what it was.
    atomic_write_json(
        ExperimentPaths(exp_dir).exit_record,
        {"attempt": attempt, **result.to_dict()},
        fsync=False,
    )


def read_exit_record(exp_dir: Path) -> tuple[int | None, AttemptResult] | None:
    """The attempt an exit record is for, and its result; None when there is none."""
    try:
        record = json.loads(ExperimentPaths(exp_dir).exit_record.read_text())
        return record.get("attempt"), AttemptResult.from_dict(record)
    except (FileNotFoundError, json.JSONDecodeError, KeyError, ValueError):
        return None


def settle_attempt(
    store: Store, exp: Experiment, result: AttemptResult, attempt: int | None
) -> Status | None:
    """Decide what an ended attempt makes of its experiment, against the run's policy.

    Decided here, against the run's policy and the counts in the store, so an exit
    record applied late by reconciliation decides the same way as its supervisor.
    """
    assert result.reason is not None, "an attempt that has not ended cannot be settled"
    run = store.get_run_by_id(exp.run_id, with_experiments=False)
    decision = decide(
        result.reason,
        result.detail,
        Policy.of_spec(run.spec),
        restarts=exp.restarts,
        retries=exp.retries,
        preemptions=exp.preemptions,
    )
    return store.settle(exp.id, decision, result, attempt=attempt)


def _job_of(home: GridHome, store: Store, exp_id: int) -> tuple[Job, Run, MachineConfig]:
    """The claimed attempt's job, made from the store and saved as ``job.json``.

    Here and not in the agent: the agent starts experiments one after another, and a
    file written per start was most of its time with a long queue (issue 12); each
    supervisor writes its own, in parallel. It is written before ``store.start`` makes
    the experiment running, so a running experiment always has one for stop and
    reconcile.
    """
    exp = store.get_experiment(exp_id)
    run = store.get_run_by_id(exp.run_id, with_experiments=False)
    machine = load_machine_config(home.config_path)
    job = make_job(home, run, exp, exp.gpu_ids, machine.stop_grace_seconds)
    save_job(job, run.backend)
    return job, run, machine


def supervise(home: GridHome, exp_id: int, token: str) -> int:
    from gridrun.processes import dedicate_process

    dedicate_process()  # every descendant of this process is the experiment's
    store = Store(home.db_path)
    job, run, machine = _job_of(home, store, exp_id)
    exp_dir = job.exp_dir
    backend = get_backend(run.backend, home)
    grace = job.stop_grace
    handle: str | None = None  # the backend's, once launched; kept in the store too
    stopping = threading.Event()
    executing = [True]  # a SIGTERM after the experiment ended on its own changes nothing

    stop_signalled = threading.Event()  # SIGINT is `grid stop`'s own signal

    def on_term(signum: int, frame: object) -> None:
        if signum == signal.SIGINT:
            stop_signalled.set()  # a stop even when a full disk kept it out of the store
        if executing[0] and not stopping.is_set():
            stopping.set()
            threading.Thread(target=backend.stop, args=(job, None, grace), daemon=True).start()

    def on_handle(ref: str) -> None:
        nonlocal handle
        handle = ref
        when_space(lambda: store.record_handle(exp_id, ref))

    # Before the claim: a `grid stop` that sees the experiment running may signal at once.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    me = ProcessRef.current()
    first_start = store.get_experiment(exp_id).started_at  # kept across restarts
    claimed = store.start(
        exp_id,
        token,
        supervisor_pid=me.pid,
        supervisor_started=me.start,
        gpu_ids=job.gpu_ids,
        started_at=first_start or time.time(),
    )
    if not claimed:  # stopped, or the claim expired and was given to someone else
        return 0
    attempt = store.get_experiment(exp_id).attempt
    job.paths.preempt_reason.unlink(missing_ok=True)

    from gridrun.metrics.ingest import LiveIngest, target_for

    metrics = target_for(home, job, run.spec, machine)
    if run.spec.search is not None and run.spec.search.prune != "none":
        # Its pruner judges each value as it comes (SearchDriver.report): read them as
        # often, the files no more often than any experiment's.
        from gridrun.sweep.search import SEARCH_POLL_SECONDS

        every = max(1, round(1.0 / SEARCH_POLL_SECONDS))
        live = LiveIngest(home.db_path, metrics, SEARCH_POLL_SECONDS, 3 * every).start()
    else:
        live = LiveIngest(home.db_path, metrics).start()

    started_at = time.time()
    with LogSink(job.log_path) as sink:
        try:
            result = backend.run(job, sink, on_handle)
        except Exception as exc:  # a backend failure is the experiment's failure
            error = f"{type(exc).__name__}: {exc}"
            sink.write("stderr", f"gridrun: {error}")
            with contextlib.suppress(OSError):  # a full disk must not hide the failure
                job.paths.supervisor_error.write_text(traceback.format_exc())
            if out_of_space(exc):
                error = f"{NO_SPACE}: {error}"
            result = AttemptResult.failed(error)
        executing[0] = False
        if result.exit_code is None:  # lost by its engine: no exit code to tell
            result = replace(result, exit_code=-1)
        stop_requested = stop_signalled.is_set() or when_space(
            lambda: store.get_experiment(exp_id).stop_requested
        )
        preempted = None
        if stopping.is_set() and not stop_requested:
            # SIGTERM to the supervisor that `grid stop` did not send: a machine going
            # down, a node drain, or `grid preempt` rehearsing one.
            preempted = _preempt_reason(exp_dir) or "its supervisor got SIGTERM"
        # ``stopping``: the stop was sent to the script while it ran. One requested
        # only after it had exited 0 on its own (a pruner judging its last step, a
        # late `grid stop`) leaves it succeeded.
        result = conclude(
            result,
            stop_requested=stop_requested,
            stop_sent=stopping.is_set(),
            preempted=preempted,
        )
        result = wrap_up(
            backend,
            job,
            handle,
            result.at(started_at, None),
            attempt,
            sink,
            lambda: _last_metrics(live, store, metrics),
        )

    # Both retried while the disk is full: the workdir removed above usually made room,
    # and otherwise the experiment is recorded as soon as any space is freed.
    final = result
    when_space(lambda: write_exit_record(exp_dir, attempt, final))
    status = when_space(lambda: settle_attempt(store, store.get_experiment(exp_id), final, attempt))
    if status is not None and status.finished:
        shutil.rmtree(job.resume_dir, ignore_errors=True)
    ensure_agent_alive(home, store)
    store.close()
    return 0


def wrap_up(
    backend: Backend,
    job: Job,
    handle: str | None,
    result: AttemptResult,
    attempt: int | None,
    sink: LogSink,
    last_metrics: Callable[[], None],
) -> AttemptResult:
    """Everything between an attempt's end and the store, for a supervisor and for the
    agent's engine watcher alike; ``result`` already concluded. Returns it as kept.

    Collects its files (copied, and its working directory parked, when it may run
    again), takes the last metrics pass, writes the exit record, then releases it.
    """
    if result.ending == Ending.PREEMPTED:
        sink.write("stderr", f"gridrun: preempted ({result.detail})")
    # It may run again: keep its working directory (checkpoints) for the restart.
    again = result.ending in (Ending.PREEMPTED, Ending.FAILED)
    try:
        backend.collect(job, handle, keep_workdir=again)
    except Exception as exc:
        # The experiment keeps its own ending (an exit 0 stays succeeded): what it did
        # is not undone by a disk that could not take a copy of it. The artifacts are
        # marked incomplete, with the one-line reason, in its error.
        note = f"artifacts incomplete: {getattr(exc, 'message', None) or exc}"
        sink.write("stderr", f"gridrun: {note}")
        with contextlib.suppress(OSError):
            job.paths.artifacts_incomplete.write_text(note + "\n")
        result = replace(result, detail=f"{result.detail}; {note}" if result.detail else note)
    # The last metrics pass: after the files were copied out of a container, before
    # the working copy is removed, and before the exit is recorded, so that a finished
    # experiment's metrics are complete the moment its status says so.
    try:
        last_metrics()
    except Exception as exc:  # a full disk loses the last metrics, not the exit
        sink.write("stderr", f"gridrun: could not record metrics: {exc}")
    result = replace(result, finished_at=time.time())
    # Before the release, which forgets the job (the local witness's record goes with
    # it): a supervisor killed from here on leaves this record instead.
    with contextlib.suppress(OSError):
        write_exit_record(job.exp_dir, attempt, result)
    if again:
        park_workdir(job)
    try:
        backend.release(job, handle)
    except Exception as exc:
        sink.write("stderr", f"gridrun: cleanup failed: {exc}")
    return result


def _last_metrics(live: LiveIngest, store: Store, metrics: IngestTarget) -> None:
    from gridrun.metrics.ingest import final_ingest

    live.stop()
    final_ingest(store, metrics)


NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"
T = TypeVar("T")


def when_space(fn: Callable[[], T], pause: float = 1.0) -> T:
    """Call ``fn`` until it stops failing for lack of disk space (other errors propagate)."""
    while True:
        try:
            return fn()
        except Exception as exc:
            if not out_of_space(exc):
                raise
        time.sleep(pause)


def park_workdir(job: Job) -> None:
    """Move the working directory aside so that ``cleanup`` leaves it for a restart."""
    parked = job.resume_dir
    if job.workdir.is_dir():
        shutil.rmtree(parked, ignore_errors=True)
        os.replace(job.workdir, parked)


def _preempt_reason(exp_dir: Path) -> str | None:
    try:
        return ExperimentPaths(exp_dir).preempt_reason.read_text().strip() or None
    except OSError:
        return None


def ensure_agent_alive(home: GridHome, store: Store) -> None:
    """Wake the agent so the next experiment starts at once; start one if it died."""
    from gridrun.agent.control import agent_running, start_agent, wake_agent

    if agent_running(home):
        wake_agent(home)
    elif store.has_active_work():
        start_agent(home)


def main(argv: list[str]) -> int:
    home_root, exp_id, token = argv
    return supervise(GridHome(Path(home_root)), int(exp_id), token)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
