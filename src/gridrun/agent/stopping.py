"""Stopping experiments: pending ones at once, running ones through their supervisor.

The supervisor owns the running process: it receives SIGTERM, forwards it to the
experiment (process group or container), waits the grace period, kills, saves
artifacts and records ``stopped``. An engine's experiment (Ray) has the agent's
engine watcher for supervisor: it is woken, and sends the stop the store recorded.
Only when the supervisor is already gone does the caller stop the experiment itself
and record the status.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable

from gridrun.agent.reconcile import reconcile_experiment, supervisor_alive, supervisor_ref
from gridrun.errors import out_of_space
from gridrun.home import GridHome
from gridrun.store.db import Store
from gridrun.store.models import Experiment, Status


def _terminate_orphan(home: GridHome, exp: Experiment, grace: float) -> None:
    """Stop an experiment whose supervisor is gone, through its backend (a container)."""
    from gridrun.agent.jobs import read_job
    from gridrun.backends import get_backend
    from gridrun.backends.base import PollState, read_handle

    loaded = read_job(home.experiment(exp.name).job)
    if loaded is None:
        return
    job, backend_name = loaded
    backend = get_backend(backend_name, home)
    handle = exp.backend_ref or read_handle(job)
    if handle is None:
        return
    (state,) = backend.poll([(job, handle)])
    if state.state == PollState.RUNNING:
        backend.stop(job, handle, grace)


def _request_stop(store: Store, exp: Experiment, now: float) -> Experiment | None:
    """Mark one experiment stopped (not started yet) or stopping (running).

    Returns it when it was active. It may move between our read and our write (a
    supervisor claims it, a preempted one is queued again), so this retries on the
    new state until one conditional update lands or it has finished: a stop is never
    lost to a requeue, and a requeue never follows a stop (``Store.settle`` turns it
    into ``stopped`` once ``stop_requested`` is set).
    """
    for _ in range(1000):
        e = store.get_experiment(exp.id)
        if e.status.finished:
            return None
        if e.status in (Status.BUILDING, Status.PENDING):
            if store.stop_not_started(e.id, now):
                return e
        else:
            try:
                if store.request_stop(e.id):
                    return store.get_experiment(e.id)
            except Exception as exc:
                # A full disk: the SIGTERM still stops it (recorded when there is room).
                if not out_of_space(exc):
                    raise
                return e
    return None


def stop_run(
    home: GridHome, store: Store, run_id: int, grace: float, wait: bool = True
) -> list[str]:
    """Stop every experiment of a run; returns the names that were active.

    As :func:`stop_experiments`, without reading the run's experiments: the queued ones
    (10^5 in a large sweep) are stopped by one statement in the store, and only the
    running few are read, to be signalled. Repeated until a pass finds nothing new, so
    an experiment requeued (preempted) or started meanwhile is stopped too; one whose
    stop was requested can never be requeued (``Store.settle``).
    """
    now = time.time()
    stopped: list[str] = []
    running: dict[int, Experiment] = {}
    store.end_search(run_id, "stopped")  # first: an adaptive search asks for no more
    while True:
        queued = store.stop_run_queued(run_id, now)
        fresh = [e for e in store.run_experiments(run_id, Status.RUNNING) if e.id not in running]
        stopped += queued
        for exp in fresh:
            e = _request_stop(store, exp, now)
            if e is None:
                continue
            stopped.append(e.name)
            if e.status == Status.RUNNING:
                running[e.id] = e
                signal_supervisor(home, e)
        if not queued and not fresh:
            break
    try:
        store.stop_building_run(run_id, now)
    except Exception as exc:
        if not out_of_space(exc):
            raise
    if wait and running:
        _wait_stopped(home, store, list(running.values()), grace)
    return stopped


def stop_experiments(
    home: GridHome, store: Store, exps: Iterable[Experiment], grace: float, wait: bool = True
) -> list[str]:
    """Stop every experiment given; returns the names that were active.

    With ``wait``, returns once each is recorded ``stopped`` (or finished otherwise)
    and none of its processes is left.
    """
    now = time.time()
    stopped: list[str] = []
    running: list[Experiment] = []
    exps = list(exps)
    run_ids = {e.run_id for e in exps}
    queued = set(store.stop_queued([e.id for e in exps if not e.status.finished], now))
    stopped += [e.name for e in exps if e.id in queued]
    for exp in exps:
        if exp.id in queued:
            continue
        e = _request_stop(store, exp, now)
        if e is None:
            continue
        stopped.append(e.name)
        if e.status == Status.RUNNING:
            running.append(e)
    for run_id in run_ids:
        try:
            store.stop_building_run(run_id, now)
        except Exception as exc:
            if not out_of_space(exc):
                raise
    for e in running:
        signal_supervisor(home, e)
    if wait and running:
        _wait_stopped(home, store, running, grace)
    return stopped


def signal_supervisor(home: GridHome, e: Experiment) -> None:
    from gridrun.agent.watcher import engine_watched

    if engine_watched(e):
        # Its supervisor is the agent's engine watcher: it reads the stop from the
        # store (recorded above) on its next step, woken now, and sends it.
        from gridrun.agent.control import wake_agent

        wake_agent(home)
        return
    ref = supervisor_ref(e)
    if ref is not None:
        # SIGINT, not SIGTERM: the supervisor tells a stop from a preemption (an
        # outside SIGTERM) by it, even when a full disk kept the request unrecorded.
        # It forwards SIGTERM to the experiment either way. Only if it is still
        # that very supervisor.
        ref.signal(signal.SIGINT)


def _wait_stopped(home: GridHome, store: Store, running: list[Experiment], grace: float) -> None:
    """Until each is recorded as ended and none of its processes is left."""
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
        time.sleep(0.05)
