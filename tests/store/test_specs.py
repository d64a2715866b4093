"""Typed specs round-trip through the store, and older records still load."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gridrun.specs import SPEC_VERSION, DatastoreMount, EnvSpec, Job, Resources, RunSpec
from gridrun.store import schema
from gridrun.store.db import Store
from spec_helpers import experiments, run_spec

pytestmark = pytest.mark.unit


def _full_spec(tmp_path: Path) -> RunSpec:
    return RunSpec(
        script="src/train.py",
        script_args=("--lr", "[0.1, 0.01]"),
        localdir=str(tmp_path),
        project_name="proj",
        env=EnvSpec(
            python="3.12",
            requirements=("numpy==2.0",),
            dependency_source="requirements.txt",
            base_image="python:3.12-slim",
            apt_packages=("ffmpeg",),
        ),
        snapshot_hash="ab" * 32,
        snapshot_manifest=tmp_path / "m.json",
        snapshot_bytes=123,
        resources=Resources(cpus=2.5, gpus=1, memory=2**30),
        strategy="random_search",
        num_trials=3,
        seed=7,
        datastores=(DatastoreMount("mnist", 2, tmp_path / "tree", "/datastores/mnist"),),
        auto_resume=True,
        env_vars={"WANDB_MODE": "offline"},
    )


def test_run_spec_round_trips_through_the_store(tmp_path: Path) -> None:
    spec = _full_spec(tmp_path)
    store = Store(tmp_path / "grid.db")
    run = store.create_run(
        name="r-1", backend="local", spec=spec, env_key="k", experiments=experiments(["a"])
    )
    assert run.spec == spec
    raw = store.conn.execute("SELECT spec FROM runs").fetchone()[0]
    assert json.loads(raw)["version"] == SPEC_VERSION


def test_legacy_flat_spec_still_loads(tmp_path: Path) -> None:
    flat = {
        "script": "t.py",
        "script_args": ["--x", "1"],
        "localdir": "/p",
        "project_name": "p",
        "python": "3.11",
        "cpus": 2.0,
        "gpus": 0,
        "memory": None,
        "strategy": "grid_search",
        "num_trials": None,
        "seed": None,
        "snapshot_hash": "h",
        "snapshot_manifest": "/m.json",
        "snapshot_bytes": 5,
        "requirements": ["rich"],
        "dependency_source": "imports",
        "dockerfile": None,
        "base_image": None,
        "apt_packages": [],
        "conda_file": None,
        "datastores": [{"name": "d", "version": 1, "source": "/s", "mount_dir": "/datastores/d"}],
        "auto_resume": True,
    }
    spec = RunSpec.from_dict(flat)
    assert spec.env.requirements == ("rich",) and spec.env.python == "3.11"
    assert spec.cpus == 2.0 and spec.auto_resume
    assert spec.datastores == (DatastoreMount("d", 1, Path("/s"), "/datastores/d"),)
    assert RunSpec.from_dict(spec.to_dict()) == spec


def test_a_newer_spec_is_refused() -> None:
    data = run_spec().to_dict()
    data["version"] = SPEC_VERSION + 1
    with pytest.raises(ValueError, match="newer"):
        RunSpec.from_dict(data)


def test_job_round_trips(tmp_path: Path) -> None:
    job = Job(
        run_name="r",
        experiment_name="r-exp0",
        experiment_id=3,
        env_ref="/envs/k",
        script="t.sh",
        args=["--a", "b c"],
        exp_dir=tmp_path,
        workdir=tmp_path / "w",
        snapshot_manifest=tmp_path / "m.json",
        objects_dir=tmp_path / "o",
        env={"GRID_RUN_NAME": "r"},
        cpus=0.5,
        memory=10,
        gpus=1,
        gpu_ids=[1],
        datastores=[DatastoreMount("d", 1, tmp_path, "data")],
        stop_grace=2.0,
    )
    assert Job.from_dict(json.loads(json.dumps(job.to_dict()))) == job


def test_migrations_apply_in_order_from_any_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "grid.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    conn.close()
    # A later release adds a step: an existing database gets exactly that step.
    import gridrun.store.db as db

    steps = [*schema.MIGRATIONS, "ALTER TABLE runs ADD COLUMN note TEXT"]
    monkeypatch.setattr(db, "MIGRATIONS", steps)
    monkeypatch.setattr(db, "SCHEMA_VERSION", len(steps))
    store = Store(path)
    cols = {r[1] for r in store.conn.execute("PRAGMA table_info(runs)")}
    assert "note" in cols
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(steps)
    store.close()
    Store(path).close()  # opening again applies nothing twice
