"""How one attempt of an experiment stands, told one way: :class:`AttemptResult`.

Every backend answers :meth:`~gridrun.backends.base.Backend.poll` and
:meth:`~gridrun.backends.base.Backend.wait` with an ``AttemptResult``; the supervisor
keeps the final one in ``exit.json`` (its :meth:`~AttemptResult.to_dict`) and the store
in the ``attempts`` table, one row per attempt. Why an attempt ended is a
:class:`TerminationReason`, never free text: each reason knows its :class:`Ending`,
hence the experiment's next status and whether a retry policy may run it again
(:mod:`gridrun.store.endings` holds that table). ``detail`` is the human sentence
shown beside it ("lost: Ray node 127.0.0.1 (ab12cd34) died").

Kept free of any backend or store import, so that every layer can use it.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

__all__ = [
    "SIGTERM_CODES",
    "AttemptResult",
    "Ending",
    "PollState",
    "TerminationReason",
]

RESULT_VERSION = 1


class PollState(str, Enum):
    """Where an attempt stands, as its backend sees it now."""

    RUNNING = "running"
    EXITED = "exited"  # it ended, with ``exit_code``
    GONE = "gone"  # the engine answers and does not know it: lost
    UNKNOWN = "unknown"  # the engine cannot be reached: ask again later, never "gone"


class Ending(str, Enum):
    """The kind of ending: what is counted (restarts, retries) and shown in ``grid status``."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the script's own non-zero exit, or the backend could not run it
    STOPPED = "stopped"  # grid stop
    PREEMPTED = "preempted"


class TerminationReason(str, Enum):
    """Why an attempt ended. Its ending (and so its status and retry) is in ``ENDINGS``."""

    SUCCEEDED = "succeeded"  # exit 0
    SCRIPT_FAILED = "script_failed"  # a non-zero exit on the script's own
    BACKEND_FAILED = "backend_failed"  # the backend could not launch or follow it
    STOPPED = "stopped"  # grid stop
    SIGTERM = "sigterm"  # killed by a SIGTERM gridrun did not send (a spot reclaim)
    SUPERVISOR_SIGNALLED = "supervisor_signalled"  # its supervisor got SIGTERM (grid preempt)
    SUPERVISOR_LOST = "supervisor_lost"  # its supervisor died (SIGKILL, OOM, a crash)
    ENGINE_RESTARTED = "engine_restarted"  # the engine ended it while going away (dockerd)
    ENGINE_LOST = "engine_lost"  # the engine no longer knows it (a Ray driver ended)
    NODE_DIED = "node_died"  # the node it ran on died

    @property
    def ending(self) -> Ending:
        return ENDINGS[self]


ENDINGS: dict[TerminationReason, Ending] = {
    TerminationReason.SUCCEEDED: Ending.SUCCEEDED,
    TerminationReason.SCRIPT_FAILED: Ending.FAILED,
    TerminationReason.BACKEND_FAILED: Ending.FAILED,
    TerminationReason.STOPPED: Ending.STOPPED,
    TerminationReason.SIGTERM: Ending.PREEMPTED,
    TerminationReason.SUPERVISOR_SIGNALLED: Ending.PREEMPTED,
    TerminationReason.SUPERVISOR_LOST: Ending.PREEMPTED,
    TerminationReason.ENGINE_RESTARTED: Ending.PREEMPTED,
    TerminationReason.ENGINE_LOST: Ending.PREEMPTED,
    TerminationReason.NODE_DIED: Ending.PREEMPTED,
}

# Exit codes that say "killed by SIGTERM": -15 from the kernel, 143 (128 + 15) from a
# shell or a launcher that reports signals the shell's way.
SIGTERM_CODES = (-signal.SIGTERM, 128 + signal.SIGTERM)


def reason_of_exit(code: int) -> TerminationReason:
    """What an exit code alone says (no stop asked, no preemption known)."""
    if code == 0:
        return TerminationReason.SUCCEEDED
    if code in SIGTERM_CODES:
        return TerminationReason.SIGTERM
    return TerminationReason.SCRIPT_FAILED


@dataclass(frozen=True)
class AttemptResult:
    """One attempt, now: still running, ended (how and why), lost, or not reachable.

    ``reason`` is set once the attempt ended (``exited`` or ``gone``); ``node`` is
    where an engine ran it, when it says; the timestamps are wall-clock seconds.
    """

    state: PollState
    exit_code: int | None = None
    reason: TerminationReason | None = None
    detail: str = ""  # why, in words: shown in logs and in the experiment's error
    node: str = ""
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def ending(self) -> Ending | None:
        return None if self.reason is None else self.reason.ending

    @property
    def ended(self) -> bool:
        return self.state in (PollState.EXITED, PollState.GONE)

    # ------------------------------------------------------------ constructors
    @classmethod
    def running(cls, node: str = "") -> AttemptResult:
        return cls(PollState.RUNNING, node=node)

    @classmethod
    def exited(
        cls, code: int, *, reason: TerminationReason | None = None, detail: str = "", node: str = ""
    ) -> AttemptResult:
        """It ended with ``code``; the reason is the code's own unless told otherwise."""
        code = int(code)
        why = reason or reason_of_exit(code)
        if not detail and why == TerminationReason.SIGTERM:
            detail = f"SIGTERM from outside gridrun (exit code {code})"
        return cls(PollState.EXITED, code, why, detail, node)

    @classmethod
    def gone(
        cls, detail: str = "", reason: TerminationReason = TerminationReason.ENGINE_LOST
    ) -> AttemptResult:
        return cls(PollState.GONE, reason=reason, detail=detail)

    @classmethod
    def unknown(cls, detail: str = "") -> AttemptResult:
        return cls(PollState.UNKNOWN, detail=detail)

    @classmethod
    def failed(cls, detail: str) -> AttemptResult:
        """The backend itself failed while running it: the attempt failed, exit -1."""
        return cls(PollState.EXITED, -1, TerminationReason.BACKEND_FAILED, detail)

    # ---------------------------------------------------------------- changes
    def because(self, reason: TerminationReason, detail: str | None = None) -> AttemptResult:
        """The same attempt, ended for ``reason`` (a stop, a preemption gridrun knows of)."""
        return replace(self, reason=reason, detail=self.detail if detail is None else detail)

    def at(self, started_at: float | None, finished_at: float | None) -> AttemptResult:
        return replace(self, started_at=started_at, finished_at=finished_at)

    # ----------------------------------------------------------------- on disk
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": RESULT_VERSION,
            "state": self.state.value,
            "exit_code": self.exit_code,
            "reason": None if self.reason is None else self.reason.value,
            "detail": self.detail,
            "node": self.node,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AttemptResult:
        """Read :meth:`to_dict`'s output, or an exit record of an older gridrun."""
        if "version" in d:
            reason = d.get("reason")
            return cls(
                PollState(d["state"]),
                d.get("exit_code"),
                None if reason is None else TerminationReason(reason),
                d.get("detail") or "",
                d.get("node") or "",
                d.get("started_at"),
                d.get("finished_at"),
            )
        # Before attempt results: {"exit_code", "ending" or "status", "reason" or "error"}.
        ending = Ending(d.get("ending") or d["status"])
        detail = d.get("reason") if "ending" in d else d.get("error")
        code = d.get("exit_code")
        why = {
            Ending.SUCCEEDED: TerminationReason.SUCCEEDED,
            Ending.STOPPED: TerminationReason.STOPPED,
            Ending.PREEMPTED: TerminationReason.SUPERVISOR_SIGNALLED,
        }.get(ending, TerminationReason.SCRIPT_FAILED)
        state = PollState.GONE if code is None else PollState.EXITED
        return cls(state, code, why, detail or "", finished_at=d.get("finished_at"))
