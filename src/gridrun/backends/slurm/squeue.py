"""What Slurm says about jobs and nodes, typed: ``squeue --json`` and ``sinfo --json``.

One ``squeue --json --jobs=ID,ID,...`` answers for every experiment being watched: the
agent never asks once per experiment. A job Slurm no longer lists (past ``MinJobAge``
without accounting) is told by the task's own exit record instead (``task.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gridrun.specs import Capacity

#: Slurm states in which the job holds, or waits for, an allocation.
WAITING = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
ACTIVE = frozenset({"RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STOPPED",
                    "RESIZING", "SIGNALING", "STAGE_OUT"}) | WAITING  # fmt: skip
#: Ended by its machine or the scheduler, not by the script: a preemption.
PREEMPTIONS = frozenset({"NODE_FAIL", "PREEMPTED", "BOOT_FAIL"})


@dataclass(frozen=True)
class SlurmJob:
    job_id: str
    state: str  # Slurm's job_state: PENDING, RUNNING, COMPLETED, NODE_FAIL, ...
    reason: str = ""  # state_reason: Resources, Priority, NodeDown, ...
    nodes: str = ""
    exit_code: int | None = None
    restarts: int = 0

    @property
    def waiting(self) -> bool:
        return self.state in WAITING

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def preempted(self) -> bool:
        return self.state in PREEMPTIONS or self.restarts > 0


def _state(raw: Any) -> str:
    # 22.05 gives a string; 23.x and later a list of flags, the base state first.
    if isinstance(raw, list):
        return str(raw[0]) if raw else "UNKNOWN"
    return str(raw or "UNKNOWN")


def _exit_code(raw: Any) -> int | None:
    # 22.05: a number (the wait status's exit code); later: {"return_code": {...}}.
    if isinstance(raw, int):
        return raw
    if isinstance(raw, dict):
        rc = raw.get("return_code")
        if isinstance(rc, dict):
            rc = rc.get("number") if rc.get("set", True) else None
        return int(rc) if isinstance(rc, int) else None
    return None


def json_errors(text: str) -> list[str]:
    """The errors a ``--json`` answer carries (it exits 0 when the controller is down)."""
    try:
        data = json.loads(text)
    except ValueError:
        return [f"not JSON: {text[:80]!r}"]
    out = []
    for e in data.get("errors") or []:
        if isinstance(e, dict):
            out.append(str(e.get("description") or e.get("error") or e))
        else:
            out.append(str(e))
    return out


def parse_jobs(text: str) -> dict[str, SlurmJob]:
    """Jobs by id from ``squeue --json``'s output; an array task by ``ARRAY_TASK``."""
    data = json.loads(text)
    out: dict[str, SlurmJob] = {}
    for j in data.get("jobs") or []:
        job_id = str(j.get("job_id"))
        task = j.get("array_task_id")
        if isinstance(task, dict):  # later versions: {"set": true, "number": 3}
            task = task.get("number") if task.get("set") else None
        if task is not None and j.get("array_job_id"):
            array = j["array_job_id"]
            array = array.get("number") if isinstance(array, dict) else array
            job_id = f"{array}_{task}"
        reason = str(j.get("state_reason") or "")
        pending_tasks = _task_ids(str(j.get("array_task_string") or ""))
        if pending_tasks and task is None:
            # An array's tasks not started yet are one record ("7", tasks "2-9%4"):
            # each of them waits as the record says.
            array = j.get("array_job_id") or j.get("job_id")
            array = array.get("number") if isinstance(array, dict) else array
            for i in pending_tasks:
                key = f"{array}_{i}"
                out[key] = SlurmJob(
                    job_id=key,
                    state=_state(j.get("job_state")),
                    reason="" if reason == "None" else reason,
                    restarts=int(j.get("restart_cnt") or 0),
                )
            continue
        out[job_id] = SlurmJob(
            job_id=job_id,
            state=_state(j.get("job_state")),
            reason="" if reason == "None" else reason,
            nodes=str(j.get("nodes") or ""),
            exit_code=_exit_code(j.get("exit_code")),
            restarts=int(j.get("restart_cnt") or 0),
        )
    return out


def _task_ids(text: str) -> list[int]:
    """Task ids of an array's task string: ``2-9``, ``[3,5,7-9]``, ``0-99%4``."""
    text = text.strip().strip("[]").split("%")[0]
    out: list[int] = []
    for part in text.split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        step = 1
        if ":" in hi:
            hi, _, st = hi.partition(":")
            step = int(st) if st.isdigit() else 1
        if lo.isdigit() and (hi.isdigit() or not hi):
            out.extend(range(int(lo), int(hi or lo) + 1, step))
    return out


def parse_capacity(text: str, partition: str | None) -> tuple[Capacity, str] | None:
    """The largest node of ``partition`` (every partition when None) and its name."""
    data = json.loads(text)
    best: tuple[Capacity, str] | None = None
    for n in data.get("nodes") or []:
        parts = n.get("partitions") or []
        if partition and partition not in parts:
            continue
        gpus = _gres_gpus(str(n.get("gres") or ""))
        cap = Capacity(
            cpus=float(n.get("cpus") or 0),
            memory=int(n.get("real_memory") or 0) * 2**20,
            gpus=list(range(gpus)),
        )
        if best is None or (cap.cpus, len(cap.gpus), cap.memory) > (
            best[0].cpus,
            len(best[0].gpus),
            best[0].memory,
        ):
            best = (cap, str(n.get("name") or "?"))
    return best


def _gres_gpus(gres: str) -> int:
    """GPUs in a node's gres string: ``gpu:4``, ``gpu:a100:2(S:0-1)``, comma-separated."""
    total = 0
    for item in gres.split(","):
        fields = item.split("(")[0].split(":")
        if fields[0] == "gpu" and fields[-1].isdigit():
            total += int(fields[-1])
    return total
