"""``grid preempt``: a spot reclaim rehearsed on this machine, exactly as a cloud does it.

The experiment's supervisor gets SIGTERM, as on a machine that is shutting down. It
forwards SIGTERM to every process of the experiment, waits the grace period, kills
what is left, saves the artifacts so far, and records a *preemption*: under
``--auto_resume`` the experiment goes back to ``pending`` with its working directory
kept; without it, it fails with the reason "preempted". Nothing here writes a status:
the supervisor does, as it would for a real reclaim.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gridrun.agent.control import wake_agent
from gridrun.agent.reconcile import supervisor_ref
from gridrun.agent.watcher import engine_watched
from gridrun.home import GridHome
from gridrun.store.db import Store
from gridrun.store.models import Experiment, Status

REASON = "grid preempt (a rehearsed spot reclaim)"


@dataclass
class Preempted:
    name: str
    preempted: bool
    status: str
    restarts: int
    message: str

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "preempted": self.preempted,
            "status": self.status,
            "restarts": self.restarts,
            "message": self.message,
        }


def preempt_experiments(
    home: GridHome, store: Store, exps: Iterable[Experiment], grace: float, wait: bool = True
) -> list[Preempted]:
    out: list[Preempted] = []
    sent: list[Experiment] = []
    for e in exps:
        e = store.get_experiment(e.id)
        ref = supervisor_ref(e)
        if e.status != Status.RUNNING or ref is None:
            out.append(
                Preempted(
                    e.name, False, e.status.value, e.restarts, f"not running ({e.status.value})"
                )
            )
            continue
        home.experiment(e.name).preempt_reason.write_text(REASON)
        if engine_watched(e):
            # The agent's engine watcher supervises it: it reads the reason written
            # above on its next step, woken now, and stops the attempt as preempted.
            wake_agent(home)
            sent.append(e)
            continue
        if not ref.signal(signal.SIGTERM):  # only that very supervisor, never a stale pid
            out.append(
                Preempted(e.name, False, e.status.value, e.restarts, "its supervisor is gone")
            )
            continue
        sent.append(e)
    deadline = time.monotonic() + grace + 15
    for e in sent:
        now = store.get_experiment(e.id)
        while wait and _same_attempt(now, e) and time.monotonic() < deadline:
            time.sleep(0.05)
            now = store.get_experiment(e.id)
        out.append(Preempted(e.name, True, now.status.value, now.restarts, _describe(e, now, wait)))
    return out


def _same_attempt(now: Experiment, before: Experiment) -> bool:
    return now.status == Status.RUNNING and now.attempt == before.attempt


def _describe(before: Experiment, now: Experiment, waited: bool) -> str:
    if not waited:
        return "SIGTERM sent to its supervisor"
    if now.attempt > before.attempt:
        where = "running again" if now.status == Status.RUNNING else "queued again"
        return f"preempted; {where} in the same working directory (restart {now.restarts})"
    if now.status == Status.RUNNING:
        return "SIGTERM sent; it is still running"
    return f"preempted; {now.status.value}: {now.error or '-'}"
