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
- a **stop**: a user's ``grid stop`` (or a search pruning a trial). Always final,
  and it wins over a requeue; but not over an exit 0 the script reached before the
  stop was sent to it: a script that finished on its own succeeded, whatever stop
  was requested meanwhile.

Why an attempt ended is a :class:`~gridrun.attempts.TerminationReason`; each reason
has its ending (``gridrun.attempts.ENDINGS``), and each ending its rule below (final,
or retried under which flag). Pure functions, so the policy is unit-tested without
processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridrun.attempts import SIGTERM_CODES, AttemptResult, Ending, TerminationReason
from gridrun.specs import DEFAULT_MAX_RESTARTS, RunSpec
from gridrun.store.models import Status

__all__ = [
    "DEFAULT_MAX_RESTARTS",
    "SIGTERM_CODES",
    "Decision",
    "Ending",
    "Policy",
    "TerminationReason",
    "conclude",
    "decide",
]


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
    reason: TerminationReason | None = None

    @property
    def requeue(self) -> bool:
        return self.status == Status.PENDING


def conclude(
    result: AttemptResult,
    *,
    stop_requested: bool,
    stop_sent: bool = True,
    preempted: str | None = None,
) -> AttemptResult:
    """The final reason of an ended attempt, with what its supervisor knows besides.

    ``preempted`` is the reason when gridrun knows the attempt was preempted (its
    supervisor got SIGTERM): then even an exit 0 within the grace period is a
    preemption, since the script only saved its state and left. A stop wins over all,
    except an exit 0 when the stop was never sent to the script (``stop_sent``): it
    was requested (``grid stop``, a search's pruner) after the script had finished on
    its own, and the script's own success stands. Once sent, even an exit 0 is the
    script obeying it (saving its state and leaving), so the attempt was stopped.
    """
    if stop_requested and (stop_sent or result.reason != TerminationReason.SUCCEEDED):
        return result.because(TerminationReason.STOPPED, "")
    if preempted:
        return result.because(TerminationReason.SUPERVISOR_SIGNALLED, preempted)
    return result


def decide(
    reason: TerminationReason,
    detail: str | None,
    policy: Policy,
    *,
    restarts: int,
    retries: int,
    preemptions: int,
) -> Decision:
    """The status after an attempt ended for ``reason``, given the counts so far."""
    ending = reason.ending
    detail = detail or None
    if ending == Ending.SUCCEEDED:  # a detail here is a note (artifacts incomplete)
        return Decision(Status.SUCCEEDED, ending, detail, reason=reason)
    if ending == Ending.STOPPED:
        return Decision(Status.STOPPED, ending, None, reason=reason)
    if ending == Ending.FAILED:  # retried only under --retries_on_failure
        if retries < policy.retries_on_failure:
            return Decision(Status.PENDING, ending, detail, retry=True, reason=reason)
        if policy.retries_on_failure:
            times = _times(retries + 1)
            why = f"failed {times} (--retries_on_failure {policy.retries_on_failure})"
            error = f"{why}: {detail}" if detail else why
            return Decision(Status.FAILED, ending, error, reason=reason)
        return Decision(Status.FAILED, ending, detail, reason=reason)
    # A preemption: restarted only under --auto_resume, at most --max_restarts times.
    if not policy.auto_resume:
        error = f"preempted: {detail}" if detail else "preempted"
        return Decision(Status.FAILED, ending, error, reason=reason)
    if restarts < policy.max_restarts:
        return Decision(Status.PENDING, ending, detail, restart=True, reason=reason)
    n = preemptions + 1
    return Decision(
        Status.FAILED,
        ending,
        f"preempted {_times(n)} (--max_restarts {policy.max_restarts}); last: {detail}",
        reason=reason,
    )


def _times(n: int) -> str:
    return f"{n} time" if n == 1 else f"{n} times"
