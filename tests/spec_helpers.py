"""Typed specs for tests that record runs straight in the store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from gridrun.specs import DatastoreMount, EnvSpec, ExperimentSpec, Resources, RunSpec
from gridrun.store.db import Store
from gridrun.store.models import Status


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


def force_experiment(store: Store, exp_id: int, **fields: object) -> None:
    """Put one experiment's row in a given state for a test's set-up, by raw SQL.

    Product code moves rows only through the store's named transitions; a test that
    needs, say, a running row with a dead supervisor writes it here, in the open.
    """
    values = [v.value if isinstance(v, Status) else v for v in fields.values()]
    values = [json.dumps(v) if isinstance(v, list | dict) else v for v in values]
    cols = ", ".join(f"{k} = ?" for k in fields)
    with store.transaction() as c:
        c.execute(f"UPDATE experiments SET {cols} WHERE id = ?", (*values, exp_id))


def force_run_experiments(store: Store, run_id: int, frm: Status, to: Status) -> None:
    """Every experiment of a run in status ``frm`` set to ``to``, for a test's set-up."""
    with store.transaction() as c:
        c.execute(
            "UPDATE experiments SET status = ? WHERE run_id = ? AND status = ?",
            (to.value, run_id, frm.value),
        )
