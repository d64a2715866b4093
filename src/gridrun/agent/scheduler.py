"""Which pending experiments start now: first in, first out, never oversubscribing.

Pure functions over records so that the policy can be tested without processes. The
queue is strict FIFO across runs: when the oldest pending experiment does not fit,
nothing younger jumps ahead of it, so a large experiment is never starved by a
stream of small ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gridrun.agent.capacity import Capacity
from gridrun.store.models import Experiment


@dataclass
class Placement:
    experiment: Experiment
    gpu_ids: list[int]


def free_resources(capacity: Capacity, busy: Iterable[Experiment]) -> tuple[float, int, list[int]]:
    cpus, memory = capacity.cpus, capacity.memory
    gpus = list(capacity.gpus)
    for exp in busy:
        cpus -= exp.cpus
        memory -= exp.memory or 0
        for g in exp.gpu_ids:
            if g in gpus:
                gpus.remove(g)
    return cpus, memory, gpus


def place(
    capacity: Capacity, busy: Iterable[Experiment], queue: Sequence[Experiment]
) -> list[Placement]:
    """Placements for the head of ``queue`` that fit in what ``busy`` leaves free."""
    cpus, memory, gpus = free_resources(capacity, busy)
    out: list[Placement] = []
    for exp in queue:
        need_mem = exp.memory or 0
        if exp.cpus > cpus + 1e-9 or need_mem > memory or exp.gpus > len(gpus):
            break
        assigned, gpus = gpus[: exp.gpus], gpus[exp.gpus :]
        cpus -= exp.cpus
        memory -= need_mem
        out.append(Placement(exp, assigned))
    return out


def check_fits(capacity: Capacity, cpus: float, gpus: int, memory: int | None) -> str | None:
    """Why one experiment could never run here, or None when it could."""
    return capacity.refuse(cpus, gpus, memory)
