"""Typed specs for tests that record runs straight in the store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gridrun.specs import DatastoreMount, EnvSpec, ExperimentSpec, Resources, RunSpec


def run_spec(
    script: str = "t.py", datastores: Sequence[DatastoreMount] = (), **kw: object
) -> RunSpec:
    """A run spec with nothing resolved: enough for the store and the CLI's tables."""
    fields: dict = {
        "script": script,
        "env": EnvSpec(python="3.11"),
        "snapshot_hash": "0" * 64,
        "snapshot_manifest": Path("/nonexistent/manifest.json"),
        "datastores": tuple(datastores),
    }
    fields.update(kw)
    return RunSpec(**fields)


def experiments(*argvs: Sequence[str], cpus: float = 1, gpus: int = 0) -> list[ExperimentSpec]:
    return [
        ExperimentSpec(i, tuple(a), {}, Resources(cpus=cpus, gpus=gpus))
        for i, a in enumerate(argvs)
    ]
