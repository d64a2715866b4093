"""Unit tests for the pieces with no processes: store, scheduler, names, config."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridrun.agent.capacity import Capacity
from gridrun.agent.scheduler import check_fits, place
from gridrun.config import load_machine_config, load_run_config, parse_memory
from gridrun.errors import ConfigError, NotFoundError, StateError, UsageError
from gridrun.names import generate_run_name, split_experiment_name, validate_run_name
from gridrun.store.db import Store
from gridrun.store.models import Status
from spec_helpers import experiments, force_experiment, force_run_experiments, run_spec

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "grid.db")


def make_run(store: Store, name: str, n: int = 2, cpus: float = 1, gpus: int = 0):
    return store.create_run(
        name=name,
        backend="local",
        spec=run_spec("t.py"),
        env_key="k",
        experiments=experiments(*[[str(i)] for i in range(n)], cpus=cpus, gpus=gpus),
    )


def test_run_and_experiments_recorded_atomically(store: Store) -> None:
    run = make_run(store, "alpha-beta-123", 3)
    assert [e.name for e in run.experiments] == [f"alpha-beta-123-exp{i}" for i in range(3)]
    assert all(e.status == Status.BUILDING for e in run.experiments)
    with pytest.raises(UsageError, match="already exists"):
        make_run(store, "alpha-beta-123")
    assert len(store.list_runs()) == 1


def test_conditional_transition_is_won_once(store: Store) -> None:
    exp = make_run(store, "r-1", 1).experiments[0]
    store.mark_built(exp.run_id, "/envs/k")
    assert store.claim(exp.id, "a", [])
    assert not store.claim(exp.id, "b", [])
    assert store.get_experiment(exp.id).claim_token == "a"


def test_derived_run_status(store: Store) -> None:
    run = make_run(store, "r-2", 2)
    assert run.derived_status() == Status.BUILDING
    force_run_experiments(store, run.id, Status.BUILDING, Status.SUCCEEDED)
    assert store.get_run("r-2").derived_status() == Status.SUCCEEDED
    force_experiment(store, run.experiments[1].id, status=Status.FAILED)
    assert store.get_run("r-2").derived_status() == Status.FAILED


def test_unknown_run(store: Store) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        store.get_run("nope")


def test_corrupt_database_raises_and_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "grid.db"
    db.write_bytes(b"garbage" * 200)
    with pytest.raises(StateError, match="corrupt"):
        Store(db)
    assert db.read_bytes() == b"garbage" * 200


def test_scheduler_fifo_and_gpu_assignment(store: Store) -> None:
    run = make_run(store, "r-3", 4, cpus=1, gpus=1)
    exps = run.experiments
    cap = Capacity(cpus=8, memory=2**34, gpus=[0, 1, 2])
    placed = place(cap, [], exps)
    assert [p.gpu_ids for p in placed] == [[0], [1], [2]]
    busy = exps[0]
    busy.gpu_ids = [1]
    placed = place(cap, [busy], exps[1:])
    assert [p.gpu_ids for p in placed] == [[0], [2]]


def test_scheduler_never_oversubscribes_and_keeps_order(store: Store) -> None:
    big = make_run(store, "big-1", 1, cpus=2).experiments
    small = make_run(store, "small-1", 3, cpus=1).experiments
    cap = Capacity(cpus=2, memory=2**34)
    busy = small[:1]
    # The big one is first in line and does not fit: nothing younger jumps the queue.
    assert place(cap, busy, [*big, *small[1:]]) == []
    assert len(place(cap, [], [*small])) == 2


def test_check_fits() -> None:
    cap = Capacity(cpus=2, memory=2**30, gpus=[])
    assert check_fits(cap, 1, 0, None) is None
    assert "4 CPUs" in check_fits(cap, 4, 0, None)
    assert "GPU" in check_fits(cap, 1, 1, None)
    assert "memory" in check_fits(cap, 1, 0, 2**31)


@pytest.mark.parametrize("name", ["spiffy-sunfish-821", "a", "run-2"])
def test_valid_names(name: str) -> None:
    assert validate_run_name(name)


@pytest.mark.parametrize(
    "name", ["Upper", "under_score", "-lead", "trail-", "x-exp1", "", "a" * 64, "sp ace"]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(UsageError):
        validate_run_name(name)


def test_generated_names_look_like_grids() -> None:
    import re

    for _ in range(20):
        assert re.fullmatch(r"[a-z]+(-[a-z]+)+-\d{3}", generate_run_name())
    assert split_experiment_name("spiffy-sunfish-821-exp12") == ("spiffy-sunfish-821", 12)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512M", 512 * 10**6),
        ("4G", 4 * 10**9),
        ("2Gi", 2 * 2**30),
        ("100", 100),
        ("1.5g", 1_500_000_000),
    ],
)
def test_parse_memory(text: str, expected: int) -> None:
    assert parse_memory(text) == expected


def test_parse_memory_rejects_junk() -> None:
    with pytest.raises(UsageError, match="memory"):
        parse_memory("lots")


def test_machine_config(tmp_path: Path) -> None:
    p = tmp_path / "config.yaml"
    p.write_text("capacity: {cpus: 3, memory: 8G, gpus: 2}\nstop_grace_seconds: 1\n")
    cfg = load_machine_config(p)
    assert (cfg.cpus, cfg.memory, cfg.gpus, cfg.stop_grace_seconds) == (3, 8 * 10**9, [0, 1], 1)
    p.write_text("capacity: {cpu: 3}\n")
    with pytest.raises(ConfigError, match="cpu"):
        load_machine_config(p)


def test_run_config(tmp_path: Path) -> None:
    p = tmp_path / "run.yml"
    p.write_text(
        "compute:\n  train:\n    cpus: 2\n    datastore_name: mnist\n"
        "hyper_params:\n  settings:\n    strategy: random_search\n"
    )
    cfg = load_run_config(p)
    assert cfg.train["cpus"] == 2 and cfg.hyper_params["settings"]["strategy"] == "random_search"
    p.write_text("compute:\n  train:\n    actions:\n      on_image_build: [make]\n")
    with pytest.raises(ConfigError, match="actions"):
        load_run_config(p)
    p.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_run_config(p)
