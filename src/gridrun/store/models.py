"""Records as the store hands them out, and the one enum of statuses."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from enum import Enum

from gridrun.attempts import AttemptResult, PollState, TerminationReason
from gridrun.specs import RunSpec


class Status(str, Enum):
    """An experiment's status. The run's status is derived from its experiments."""

    BUILDING = "building"
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    PRUNED = "pruned"  # an adaptive search stopped it early (its reason: prune_reason)

    @property
    def active(self) -> bool:
        return self in (Status.BUILDING, Status.PENDING, Status.RUNNING)

    @property
    def finished(self) -> bool:
        return not self.active


class SessionStatus(str, Enum):
    """An interactive session's status (gridrun.sessions): its own lifecycle."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    DELETED = "deleted"


RunStatus = Status  # a run moves through the same states as its experiments

ACTIVE = tuple(s.value for s in Status if s.active)
FINISHED = tuple(s.value for s in Status if s.finished)


def _column(row: sqlite3.Row, name: str) -> str | None:
    """A column added by a later schema: absent where a database opened read-only
    was never migrated (``Store.reader``)."""
    return row[name] if name in row.keys() else None  # noqa: SIM118 (a Row's `in` reads values)


@dataclass
class Run:
    id: int
    name: str
    created_at: float
    backend: str
    status: Status
    spec: RunSpec
    env_key: str | None
    env_ref: str | None
    error: str | None
    finished_at: float | None
    experiments: list[Experiment] = field(default_factory=list)
    search: str | None = None  # an adaptive search's state: "open", "done", "stopped"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Run:
        return cls(
            id=row["id"],
            name=row["name"],
            created_at=row["created_at"],
            backend=row["backend"],
            status=Status(row["status"]),
            spec=RunSpec.from_dict(json.loads(row["spec"])),
            env_key=row["env_key"],
            env_ref=row["env_ref"],
            error=row["error"],
            finished_at=row["finished_at"],
            search=_column(row, "search"),
        )

    @property
    def search_open(self) -> bool:
        """An adaptive search that will still ask for trials."""
        return self.search == "open"

    def counts(self) -> dict[Status, int]:
        out = {s: 0 for s in Status}
        for exp in self.experiments:
            out[exp.status] += 1
        return out

    def derived_status(self) -> Status:
        """The run's status as users see it, from its experiments."""
        if not self.experiments:
            return self.status
        c = self.counts()
        if c[Status.RUNNING] or (self.search_open and self.status == Status.PENDING):
            return Status.RUNNING  # between two trials, a search is still running
        if c[Status.BUILDING]:
            return Status.BUILDING
        if c[Status.PENDING]:
            return Status.PENDING
        if c[Status.FAILED]:
            return Status.FAILED
        if c[Status.STOPPED]:
            return Status.STOPPED
        return Status.SUCCEEDED

    @property
    def active(self) -> bool:
        return self.derived_status().active


@dataclass
class Experiment:
    id: int
    run_id: int
    run_name: str
    name: str
    index: int
    argv: list[str]
    params: dict[str, str]
    status: Status
    exit_code: int | None
    error: str | None
    cpus: float
    gpus: int
    memory: int | None
    gpu_ids: list[int]
    queued_at: float
    started_at: float | None
    finished_at: float | None
    claim_token: str | None
    claimed_at: float | None
    supervisor_pid: int | None
    supervisor_started: float | None
    pid: int | None
    stop_requested: bool
    backend_ref: str | None
    restarts: int = 0  # requeued after a preemption
    retries: int = 0  # requeued after a code failure (--retries_on_failure)
    preemptions: int = 0  # every preemption, the last one too
    ending: str | None = None  # how the last attempt ended (store.endings.Ending)
    prune_reason: str | None = None  # why an adaptive search stopped it early

    @property
    def attempt(self) -> int:
        """How many times it was started before this attempt (GRID_RESTART_COUNT)."""
        return self.restarts + self.retries

    backend: str = "local"  # the run's

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Experiment:
        return cls(
            id=row["id"],
            run_id=row["run_id"],
            run_name=row["run_name"],
            name=row["name"],
            index=row["idx"],
            argv=json.loads(row["argv"]),
            params=json.loads(row["params"]),
            status=Status(row["status"]),
            exit_code=row["exit_code"],
            error=row["error"],
            cpus=row["cpus"],
            gpus=row["gpus"],
            memory=row["memory"],
            gpu_ids=json.loads(row["gpu_ids"] or "[]"),
            queued_at=row["queued_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            claim_token=row["claim_token"],
            claimed_at=row["claimed_at"],
            supervisor_pid=row["supervisor_pid"],
            supervisor_started=row["supervisor_started"],
            pid=row["pid"],
            stop_requested=bool(row["stop_requested"]),
            backend_ref=row["backend_ref"],
            restarts=row["restarts"],
            retries=row["retries"],
            preemptions=row["preemptions"],
            ending=row["ending"],
            prune_reason=_column(row, "prune_reason"),
            backend=row["backend"],
        )


@dataclass(frozen=True)
class AttemptRecord:
    """One row of the ``attempts`` table: where one attempt ran, and how it ended."""

    experiment_id: int
    attempt: int  # 0 for the first; the experiment's ``attempt`` while it runs
    handle: str | None
    result: AttemptResult

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AttemptRecord:
        reason = row["reason"]
        return cls(
            experiment_id=row["experiment_id"],
            attempt=row["attempt"],
            handle=row["handle"],
            result=AttemptResult(
                PollState(row["state"]),
                row["exit_code"],
                None if reason is None else TerminationReason(reason),
                row["detail"],
                row["node"],
                row["started_at"],
                row["finished_at"],
            ),
        )
