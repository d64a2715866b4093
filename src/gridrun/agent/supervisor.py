"""The per-experiment supervisor: runs one experiment and records how it ended.

Started detached (its own session) by the agent with a claim token. It is the only
process that moves an experiment from claimed-pending to ``running`` and from
``running`` to a final status, using conditional updates, so an experiment never runs
twice even when a restarted agent reconciles at the same moment. It also reads the
experiment's metrics as they are written (:mod:`gridrun.metrics.ingest`), so they keep
flowing when the agent dies. Output goes straight
from the backend to ``output.log``; the exit record is written to ``exit.json``
before the database, so a crash between the two is repaired by reconciliation.

Kept free of CLI imports (click, rich) so that it starts fast.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gridrun.agent.jobs import load_job
from gridrun.backends import get_backend
from gridrun.errors import out_of_space
from gridrun.home import GridHome
from gridrun.logs import LogSink
from gridrun.store.db import Store
from gridrun.store.models import Status


def process_start_time(pid: int) -> float | None:
    """A process's start time, to tell a live supervisor from a recycled pid."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None  # dead, only not yet reaped by its parent
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def write_exit_record(exp_dir: Path, record: dict) -> None:
    path = exp_dir / "exit.json"
    tmp = exp_dir / "exit.json.tmp"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def read_exit_record(exp_dir: Path) -> dict | None:
    try:
        return json.loads((exp_dir / "exit.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def final_status(exit_code: int, stopped: bool) -> Status:
    if stopped:
        return Status.STOPPED
    return Status.SUCCEEDED if exit_code == 0 else Status.FAILED


def apply_exit_record(store: Store, exp_id: int, record: dict) -> bool:
    """Move a running experiment to the status its exit record says; idempotent."""
    return store.transition(
        exp_id,
        where=[Status.RUNNING],
        status=Status(record["status"]),
        exit_code=record["exit_code"],
        finished_at=record["finished_at"],
        error=record.get("error"),
        event=record["status"],
    )


def supervise(home: GridHome, exp_id: int, token: str) -> int:
    store = Store(home.db_path)
    exp_dir = home.experiment_dir(store.get_experiment(exp_id).name)
    job, backend_name = load_job(exp_dir / "job.json")
    me = os.getpid()
    claimed = store.transition(
        exp_id,
        where=[Status.PENDING],
        extra_where="claim_token = ?",
        extra_args=[token],
        status=Status.RUNNING,
        started_at=time.time(),
        supervisor_pid=me,
        supervisor_started=process_start_time(me),
        gpu_ids=job.gpu_ids,
        event="running",
    )
    if not claimed:  # stopped, or the claim expired and was given to someone else
        return 0
    backend = get_backend(backend_name)
    grace = job.stop_grace
    stopping = threading.Event()

    def on_term(signum: int, frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=backend.terminate, args=(job, grace), daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    from gridrun.metrics.ingest import LiveIngest, final_ingest, target_for

    run = store.get_run_by_id(store.get_experiment(exp_id).run_id, with_experiments=False)
    metrics = target_for(home, job, run.spec)
    live = LiveIngest(home.db_path, metrics).start()

    error = None
    with LogSink(job.log_path) as sink:
        try:
            exit_code = backend.execute(job, sink)
        except Exception as exc:  # a backend failure is the experiment's failure
            exit_code = -1
            error = f"{type(exc).__name__}: {exc}"
            sink.write("stderr", f"gridrun: {error}")
            with contextlib.suppress(OSError):  # a full disk must not hide the failure
                (exp_dir / "supervisor-error.txt").write_text(traceback.format_exc())
            if out_of_space(exc):
                error = f"{NO_SPACE}: {error}"
        try:
            backend.collect_artifacts(job)
        except Exception as exc:
            sink.write("stderr", f"gridrun: could not save artifacts: {exc}")
            if NO_SPACE in str(exc) and error is None:
                # Its results are lost: the experiment failed, whatever its exit code.
                error = f"{NO_SPACE}: could not save its artifacts"
        # The last metrics pass: after the files were copied out of a container, before
        # the working copy is removed, and before the exit is recorded, so that a
        # finished experiment's metrics are complete the moment its status says so.
        live.stop()
        try:
            final_ingest(store, metrics)
        except Exception as exc:  # a full disk loses the last metrics, not the exit
            sink.write("stderr", f"gridrun: could not record metrics: {exc}")
        try:
            backend.cleanup(job)
        except Exception as exc:
            sink.write("stderr", f"gridrun: cleanup failed: {exc}")

    stopped = stopping.is_set() or when_space(lambda: store.get_experiment(exp_id).stop_requested)
    status = final_status(exit_code, stopped)
    if error is not None and error.startswith(NO_SPACE) and status == Status.SUCCEEDED:
        status = Status.FAILED
    record = {
        "exit_code": exit_code,
        "status": status.value,
        "finished_at": time.time(),
        "error": error,
    }
    # Both retried while the disk is full: the workdir removed above usually made room,
    # and otherwise the experiment is recorded as soon as any space is freed.
    when_space(lambda: write_exit_record(exp_dir, record))
    when_space(lambda: apply_exit_record(store, exp_id, record))
    _wake_agent(home)
    return 0


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


def _wake_agent(home: GridHome) -> None:
    """Tell the agent a slot is free so the next experiment starts at once."""
    try:
        pid = int(home.agent_pid.read_text())
        os.kill(pid, signal.SIGUSR1)
    except (OSError, ValueError):
        pass


def main(argv: list[str]) -> int:
    home_root, exp_id, token = argv
    return supervise(GridHome(Path(home_root)), int(exp_id), token)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
