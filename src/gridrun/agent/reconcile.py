"""Bringing the store back in line with reality after anyone died.

Called by the agent at start-up and on every loop (it is cheap). For each experiment
the store thinks is running, it checks the supervisor is the same live process
(pid *and* start time, so a recycled pid does not fool it). A dead supervisor's exit
record is applied; without one, the backend is polled with the handle it gave at
launch (``backend_ref``). Still running (a container outlives its supervisor) leaves
the experiment running; an engine that cannot be reached is ``unknown``, never taken
for gone, and asked again on a later pass; an exit code the engine kept is recorded.
A backend whose experiments die with their supervisor (local processes) has what is
left stopped. Otherwise the experiment was preempted with its supervisor: failed
"preempted", or queued again under ``--auto_resume``. Stale claims (an agent died
between claiming an experiment and its supervisor starting) are released; the
supervisor's conditional claim makes sure a late one never runs as well.
"""

from __future__ import annotations

import contextlib
import time

from gridrun.agent.jobs import read_job
from gridrun.agent.supervisor import read_exit_record, settle_attempt
from gridrun.attempts import AttemptResult, TerminationReason
from gridrun.backends import get_backend
from gridrun.backends.base import PollState, read_handle
from gridrun.home import GridHome
from gridrun.processes import ProcessRef
from gridrun.store.db import Store
from gridrun.store.endings import conclude
from gridrun.store.models import Experiment, Status

CLAIM_TIMEOUT = 30.0


def supervisor_ref(exp: Experiment) -> ProcessRef | None:
    if not exp.supervisor_pid or exp.supervisor_started is None:
        return None
    return ProcessRef(exp.supervisor_pid, int(exp.supervisor_started))


def supervisor_alive(exp: Experiment) -> bool:
    """Whether the experiment's supervisor is the same live process (pid and start time)."""
    ref = supervisor_ref(exp)
    return ref is not None and ref.alive()


def settle_lost(store: Store, exp: Experiment, result: AttemptResult) -> Status | None:
    """Settle an attempt whose supervisor is gone, as ``result`` says it ended."""
    result = conclude(result, stop_requested=exp.stop_requested)
    return settle_attempt(store, exp, result.at(exp.started_at, time.time()), exp.attempt)


def reconcile_experiment(store: Store, home: GridHome, exp: Experiment) -> str:
    """Settle one running experiment whose supervisor may be gone. Returns what happened.

    The answers, in order: ``alive`` (its supervisor runs, or the engine still runs it
    or cannot be reached to tell), ``finished`` (its exit record was written),
    ``recovered`` (the engine told its exit code), ``requeued`` (lost, and the run
    asked for ``--auto_resume``) and ``lost``.
    """
    if supervisor_alive(exp):
        return "alive"
    exp_dir = home.experiment_dir(exp.name)
    record = read_exit_record(exp_dir)
    if record is not None and record[0] in (None, exp.attempt):
        settle_attempt(store, exp, record[1], record[0])
        return "finished"
    ended: AttemptResult | None = None  # how the backend says it ended, if it kept that
    # Its supervisor died (SIGKILL, OOM, a crash) and took the experiment with it:
    # a preemption, which --auto_resume restarts in the same working directory.
    lost = AttemptResult.gone(
        "lost its supervisor (killed or crashed)", TerminationReason.SUPERVISOR_LOST
    )
    loaded = read_job(home.experiment(exp.name).job)
    if loaded is not None:
        job, backend_name = loaded
        backend = get_backend(backend_name, home)
        handle = exp.backend_ref or read_handle(job)
        state = None
        if not backend.capabilities.survives_supervisor:
            # Its output went with the supervisor: end what is left (a restart under
            # --auto_resume continues in the working directory it left). An attempt
            # that had ended is recorded as it ended, never run again: the backend
            # kept its exit (the local witness), asked before and after the stop.
            if handle is not None:
                (state,) = backend.poll([(job, handle)])
            if state is None or state.state in (PollState.RUNNING, PollState.UNKNOWN):
                backend.stop(job, handle, 1.0)
            elif state.state == PollState.EXITED:
                ended = state
                with contextlib.suppress(Exception):
                    backend.collect(job, handle)
                with contextlib.suppress(Exception):
                    backend.release(job, handle)
            elif state.state == PollState.GONE and state.detail:
                lost = state
        elif handle is not None:
            (state,) = backend.poll([(job, handle)])
            if state.state == PollState.UNKNOWN:
                # The engine cannot tell (unreachable): its container may still run.
                # Never take unknown for gone, or a requeue would run it twice.
                return "unknown"
            if state.state == PollState.RUNNING:
                # The engine still runs it: a later pass records its exit code.
                return "alive"
            if state.state == PollState.EXITED:
                ended = state
                with contextlib.suppress(Exception):
                    backend.collect(job, handle)
                with contextlib.suppress(Exception):
                    backend.release(job, handle)
            elif state.state == PollState.GONE and state.detail:
                lost = state  # the engine's own reason: the node that died
    exp = store.get_experiment(exp.id)
    if ended is not None:
        settle_lost(store, exp, ended)
        return "recovered"
    status = settle_lost(store, exp, lost)
    return "requeued" if status == Status.PENDING else "lost"


def ingest_leftover_metrics(store: Store, home: GridHome, exp: Experiment) -> None:
    """Its supervisor died: read what it had not read yet of the experiment's metrics."""
    from gridrun.metrics.ingest import final_ingest, target_for

    loaded = read_job(home.experiment(exp.name).job)
    if loaded is None:
        return
    job, _backend = loaded
    run = store.get_run_by_id(exp.run_id, with_experiments=False)
    final_ingest(store, target_for(home, job, run.spec))


def reconcile(store: Store, home: GridHome, running: list[Experiment] | None = None) -> None:
    """Settle what died among ``running`` (default: every running experiment), and
    release stale claims. The agent passes those its engine watchers do not follow."""
    for exp in store.experiments(Status.RUNNING) if running is None else running:
        if reconcile_experiment(store, home, exp) != "alive":
            ingest_leftover_metrics(store, home, exp)
    now = time.time()
    for exp in store.claimed_pending():
        if exp.claimed_at and now - exp.claimed_at > CLAIM_TIMEOUT:
            store.expire_claim(exp.id, exp.claim_token or "")
