"""Every state change an experiment or a run may go through, in one table.

Each named transition says from which statuses it may start and to which it may lead;
:class:`~gridrun.store.db.Store` has one method per name, each one transaction that
checks the move against this table, applies it only if the row is still in an
allowed status (a conditional ``UPDATE``, so the loser of a race changes nothing) and
records an event. Nothing outside ``gridrun.store`` writes a status.

The one rule from an ended attempt to the experiment's next status lives in
:mod:`gridrun.store.endings` (``decide``); ``finish`` and ``requeue`` are its two
outcomes, applied by ``Store.settle``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gridrun.errors import StateError
from gridrun.store.models import SessionStatus, Status

B, P, R = Status.BUILDING, Status.PENDING, Status.RUNNING
S, F, X = Status.SUCCEEDED, Status.FAILED, Status.STOPPED
PR = Status.PRUNED
# Sessions (gridrun.sessions) have statuses of their own.
SS, SR, SP, SF, SD = (
    SessionStatus.STARTING,
    SessionStatus.RUNNING,
    SessionStatus.PAUSED,
    SessionStatus.FAILED,
    SessionStatus.DELETED,
)


@dataclass(frozen=True)
class Transition:
    name: str
    frm: tuple[Status | SessionStatus, ...]  # the statuses it may start from
    to: tuple[Status | SessionStatus, ...]  # where it may lead (== frm: it sets fields only)
    what: str


TABLE: dict[str, Transition] = {
    t.name: t
    for t in (
        # Experiments
        Transition("claim", (P,), (P,), "the agent reserves a pending one for a supervisor"),
        Transition("expire_claim", (P,), (P,), "a claim no supervisor took up is released"),
        Transition("start", (P,), (R,), "its supervisor, holding the claim, runs it"),
        Transition("request_stop", (R,), (R,), "grid stop asks a running one to stop"),
        Transition("placed", (R,), (R,), "its engine placed it on a node: it runs from now"),
        Transition("stop_queued", (B, P), (X,), "grid stop ends one not started yet"),
        Transition("finish", (R,), (S, F, X, PR), "an attempt ended, and it is final"),
        Transition("requeue", (R,), (P,), "an attempt ended, and it runs again"),
        Transition("add_trial", (P,), (P,), "a built run's search queues one more trial"),
        Transition("request_prune", (R,), (R,), "the search stops a running trial early"),
        Transition("mark_built", (B,), (P,), "its run's environment is ready"),
        Transition("fail_build", (B,), (F,), "its run's environment could not be built"),
        # Runs (runs.status is only the build's progress; users see Run.derived_status)
        Transition("run_built", (B,), (P,), "the run's environment is ready"),
        Transition("run_build_failed", (B,), (F,), "the run's environment failed"),
        Transition("run_stopped_building", (B,), (X,), "grid stop while it builds"),
        # Sessions
        Transition("session_serving", (SS,), (SR,), "its JupyterLab answers"),
        Transition("session_start_failed", (SS,), (SF,), "its environment or server failed"),
        Transition("session_pause", (SS, SR), (SP,), "grid session pause, or idle too long"),
        Transition("session_lost", (SR,), (SP,), "its server died; the working copy stays"),
        Transition("session_resume", (SP, SF), (SS,), "grid session resume"),
        Transition("session_delete", (SS, SR, SP, SF), (SD,), "grid session delete"),
    )
}


class EventKind(str, Enum):
    """What an event records: a submission, or one of the table's named transitions.

    Each transition's event is its name, so the events table reads as the table does;
    the outcomes of ``settle`` (``finish``, ``requeue``) carry the ending and its reason
    in the event's message as ``ending: reason``.
    """

    SUBMITTED = "submitted"
    CLAIM = "claim"
    EXPIRE_CLAIM = "expire_claim"
    START = "start"
    REQUEST_STOP = "request_stop"
    PLACED = "placed"
    STOP_QUEUED = "stop_queued"
    FINISH = "finish"
    REQUEUE = "requeue"
    ADD_TRIAL = "add_trial"
    REQUEST_PRUNE = "request_prune"
    MARK_BUILT = "mark_built"
    FAIL_BUILD = "fail_build"
    RUN_BUILT = "run_built"
    RUN_BUILD_FAILED = "run_build_failed"
    RUN_STOPPED_BUILDING = "run_stopped_building"
    SEARCH_ENDED = "search_ended"  # a run's adaptive search closed (not a status change)
    SESSION_CREATED = "session_created"  # a session recorded (not a status change)
    SESSION_SERVING = "session_serving"
    SESSION_START_FAILED = "session_start_failed"
    SESSION_PAUSE = "session_pause"
    SESSION_LOST = "session_lost"
    SESSION_RESUME = "session_resume"
    SESSION_DELETE = "session_delete"


def allowed_from(name: str) -> tuple[Status | SessionStatus, ...]:
    """The statuses transition ``name`` may start from: every status write asks here."""
    t = TABLE.get(name)
    if t is None:
        raise StateError(f"No state transition is called '{name}'.")
    return t.frm


def check(name: str, to: Status | SessionStatus) -> Transition:
    """The transition called ``name``, if it may lead to ``to``; StateError otherwise."""
    t = TABLE.get(name)
    if t is None:
        raise StateError(f"No state transition is called '{name}'.")
    if to not in t.to:
        raise StateError(
            f"Transition '{name}' cannot lead to '{to.value}' "
            f"(only {', '.join(s.value for s in t.to)})."
        )
    return t
