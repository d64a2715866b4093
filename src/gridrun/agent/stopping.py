"""Stopping experiments: pending ones at once, running ones through their supervisor.

The supervisor owns the running process: it receives SIGTERM, forwards it to the
experiment (process group or container), waits the grace period, kills, saves
artifacts and records ``stopped``. Only when the supervisor is already gone does the
caller stop the experiment itself and record the status.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable

from gridrun.agent.reconcile import reconcile_experiment, supervisor_alive
from gridrun.errors import out_of_space
from gridrun.home import GridHome
from gridrun.store.db import Store
from gridrun.store.models import Experiment, Status


def _terminate_orphan(home: GridHome, exp: Experiment, grace: float) -> None:
    """Stop an experiment whose supervisor is gone, through its backend (a container)."""
    from gridrun.agent.jobs import load_job
    from gridrun.backends import get_backend

    job_path = home.experiment_dir(exp.name) / "job.json"
    if not job_path.exists():
        return
    job, backend_name = load_job(job_path)
    backend = get_backend(backend_name)
    is_running = getattr(backend, "is_running", None)
    if is_running is not None and is_running(job):
        backend.terminate(job, grace)


def stop_experiments(
    home: GridHome, store: Store, exps: Iterable[Experiment], grace: float, wait: bool = True
) -> list[str]:
    """Stop every experiment given; returns the names that were active."""
    now = time.time()
    stopped: list[str] = []
    running: list[Experiment] = []
    run_ids = set()
    for e in exps:
        run_ids.add(e.run_id)
        if e.status in (Status.BUILDING, Status.PENDING):
            if store.transition(
                e.id,
                where=[Status.BUILDING, Status.PENDING],
                status=Status.STOPPED,
                stop_requested=1,
                finished_at=now,
                event="stopped",
            ):
                stopped.append(e.name)
                continue
            e = store.get_experiment(e.id)  # it started meanwhile
        if e.status == Status.RUNNING:
            try:
                store.transition(e.id, where=[Status.RUNNING], stop_requested=1)
            except Exception as exc:
                # A full disk: the SIGTERM below still stops it, and its supervisor
                # records "stopped" from the signal as soon as there is room.
                if not out_of_space(exc):
                    raise
            stopped.append(e.name)
            running.append(e)
    for run_id in run_ids:
        try:
            with store.transaction() as c:
                c.execute(
                    "UPDATE runs SET status = ?, finished_at = ? WHERE id = ? AND status = ?",
                    (Status.STOPPED.value, now, run_id, Status.BUILDING.value),
                )
        except Exception as exc:
            if not out_of_space(exc):
                raise
    for e in running:
        if supervisor_alive(e) and e.supervisor_pid:
            try:
                os.kill(e.supervisor_pid, signal.SIGTERM)
            except OSError:
                pass
    if wait and running:
        deadline = time.monotonic() + grace + 10
        ids = {e.id for e in running}
        while time.monotonic() < deadline:
            left = [store.get_experiment(i) for i in ids]
            left = [x for x in left if x.status == Status.RUNNING]
            if not left:
                break
            for x in left:
                if not supervisor_alive(x):
                    _terminate_orphan(home, x, grace)
                    reconcile_experiment(store, home, x)
            time.sleep(0.1)
    return stopped
