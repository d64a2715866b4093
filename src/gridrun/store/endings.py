"""How an attempt ended, and what the experiment becomes: the one rule, in one place.

Three different things end an attempt before it succeeds, and each is recorded as
itself (the experiment's ``ending``), with its reason, and counted apart:

- a **preemption**: SIGTERM from outside gridrun (a spot reclaim, a node drain, a
  machine shutting down, ``grid preempt``), a lost supervisor, a Docker engine
  restart. Under ``--auto_resume`` the experiment goes back to ``pending`` and keeps
  its working directory, at most ``--max_restarts`` times; without it, it fails with
  the reason "preempted".
- a **code failure**: a non-zero exit on the script's own. Retried, counted apart,
  only with ``--retries_on_failure N``.
- a **stop**: a user's ``grid stop``. Always final, and it wins over a requeue.

Pure functions, so the policy is unit-tested without processes.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from enum import Enum

from gridrun.specs import DEFAULT_MAX_RESTARTS, RunSpec
from gridrun.store.models import Status

__all__ = ["DEFAULT_MAX_RESTARTS", "Decision", "Ending", "Policy"]


class Ending(str, Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the script's own non-zero exit
    STOPPED = "stopped"  # grid stop
    PREEMPTED = "preempted"


# Exit codes that say "killed by SIGTERM": -15 from the kernel, 143 (128 + 15) from a
# shell or a launcher that reports signals the shell's way.
SIGTERM_CODES = (-signal.SIGTERM, 128 + signal.SIGTERM)


@dataclass(frozen=True)
class Policy:
    """What a run asked for when an attempt does not succeed."""

    auto_resume: bool = False
    max_restarts: int = DEFAULT_MAX_RESTARTS
    retries_on_failure: int = 0

    @classmethod
    def of_spec(cls, spec: RunSpec) -> Policy:
        return cls(
            auto_resume=spec.auto_resume,
            max_restarts=spec.max_restarts,
            retries_on_failure=spec.retries_on_failure,
        )


@dataclass(frozen=True)
class Decision:
    """The experiment's next status, and what to record with it."""

    status: Status  # PENDING means: run it again, in the same working directory
    ending: Ending
    error: str | None
    restart: bool = False  # counts a restart after a preemption
    retry: bool = False  # counts a retry after a code failure

    @property
    def requeue(self) -> bool:
        return self.status == Status.PENDING


def classify(
    exit_code: int, *, stop_requested: bool, preempted: str | None, error: str | None = None
) -> tuple[Ending, str | None]:
    """How one attempt ended, and why.

    ``preempted`` is the reason when gridrun knows the attempt was preempted (its
    supervisor got SIGTERM, the engine restarted): then even an exit 0 within the
    grace period is a preemption, since the script only saved its state and left.
    Otherwise an exit by SIGTERM that gridrun did not send is a preemption too.
    """
    if stop_requested:
        return Ending.STOPPED, None
    if preempted:
        return Ending.PREEMPTED, preempted
    if error is None and exit_code in SIGTERM_CODES:
        return Ending.PREEMPTED, f"SIGTERM from outside gridrun (exit code {exit_code})"
    if exit_code == 0 and error is None:
        return Ending.SUCCEEDED, None
    return Ending.FAILED, error


def decide(
    ending: Ending,
    reason: str | None,
    policy: Policy,
    *,
    restarts: int,
    retries: int,
    preemptions: int,
) -> Decision:
    """The status after an attempt ended with ``ending``, given the counts so far."""
    if ending == Ending.SUCCEEDED:  # a reason here is a note (artifacts incomplete)
        return Decision(Status.SUCCEEDED, ending, reason)
    if ending == Ending.STOPPED:
        return Decision(Status.STOPPED, ending, None)
    if ending == Ending.FAILED:
        if retries < policy.retries_on_failure:
            return Decision(Status.PENDING, ending, reason, retry=True)
        if policy.retries_on_failure:
            times = _times(retries + 1)
            why = f"failed {times} (--retries_on_failure {policy.retries_on_failure})"
            return Decision(Status.FAILED, ending, f"{why}: {reason}" if reason else why)
        return Decision(Status.FAILED, ending, reason)
    # A preemption.
    if not policy.auto_resume:
        return Decision(Status.FAILED, ending, f"preempted: {reason}" if reason else "preempted")
    if restarts < policy.max_restarts:
        return Decision(Status.PENDING, ending, reason, restart=True)
    n = preemptions + 1
    return Decision(
        Status.FAILED,
        ending,
        f"preempted {_times(n)} (--max_restarts {policy.max_restarts}); last: {reason}",
    )


def _times(n: int) -> str:
    return f"{n} time" if n == 1 else f"{n} times"
