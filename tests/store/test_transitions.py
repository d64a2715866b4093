"""The named transitions: each moves only from the statuses its table row allows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gridrun.attempts import AttemptResult, TerminationReason
from gridrun.errors import StateError
from gridrun.store.db import Store
from gridrun.store.endings import Decision, Ending
from gridrun.store.models import Status
from gridrun.store.transitions import TABLE, EventKind, check
from spec_helpers import experiments, run_spec

pytestmark = pytest.mark.unit

SRC = Path(__file__).resolve().parents[2] / "src" / "gridrun"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "grid.db")


def _run(store: Store, n: int = 1):
    return store.create_run(
        name="r-1",
        backend="local",
        spec=run_spec(),
        env_key="k",
        experiments=experiments(*[[str(i)] for i in range(n)]),
    )


def test_the_table_refuses_a_move_it_does_not_list() -> None:
    assert check("start", Status.RUNNING).frm == (Status.PENDING,)
    with pytest.raises(StateError, match="cannot lead to 'succeeded'"):
        check("requeue", Status.SUCCEEDED)
    with pytest.raises(StateError, match="No state transition"):
        check("teleport", Status.RUNNING)
    for t in TABLE.values():
        assert t.frm and t.to and t.what


def test_an_experiment_goes_through_its_life_by_named_moves_only(store: Store) -> None:
    run = _run(store)
    exp = run.experiments[0]
    assert not store.claim(exp.id, "t1", [])  # still building
    assert not store.request_stop(exp.id)  # not running
    store.mark_built(run.id, "/envs/k")
    assert store.get_run("r-1").env_ref == "/envs/k"
    assert store.get_experiment(exp.id).status == Status.PENDING
    assert not store.start(exp.id, "t1", supervisor_pid=1, supervisor_started=1, gpu_ids=[],
                           started_at=1.0)  # fmt: skip
    assert store.claim(exp.id, "t1", [])
    assert not store.claim(exp.id, "t2", [])  # claimed once
    assert store.expire_claim(exp.id, "t1")
    assert store.claim(exp.id, "t2", [0])
    assert not store.start(exp.id, "t1", supervisor_pid=1, supervisor_started=1, gpu_ids=[],
                           started_at=1.0)  # fmt: skip
    assert store.start(exp.id, "t2", supervisor_pid=1, supervisor_started=1, gpu_ids=[0],
                       started_at=1.0)  # fmt: skip
    assert store.get_experiment(exp.id).status == Status.RUNNING
    assert not store.stop_not_started(exp.id, 2.0)  # it has started
    assert store.request_stop(exp.id)
    settled = store.settle(
        exp.id, Decision(Status.PENDING, Ending.PREEMPTED, "x", restart=True),
        AttemptResult.exited(-15).at(1.0, 3.0),
    )  # fmt: skip
    assert settled == Status.STOPPED  # a stop wins over a requeue
    (attempt,) = store.attempts(exp.id)  # one row per attempt, with how it ended
    assert attempt.attempt == 0 and attempt.result.reason == TerminationReason.STOPPED
    assert attempt.result.exit_code == -15 and attempt.result.finished_at == 3.0
    kinds = [
        k for (k,) in store.conn.execute("SELECT kind FROM events WHERE experiment_id = ?",
                                         (exp.id,))
    ]  # fmt: skip
    assert kinds[:6] == ["claim", "expire_claim", "claim", "start", "request_stop", "finish"]


def _running(store: Store, n: int) -> list[int]:
    run = _run(store, n)
    store.mark_built(run.id, "/envs/k")
    for e in run.experiments:
        assert store.claim(e.id, f"t{e.id}", [])
        assert store.start(e.id, f"t{e.id}", supervisor_pid=1, supervisor_started=1,
                           gpu_ids=[], started_at=1.0)  # fmt: skip
    return [e.id for e in run.experiments]


def test_a_success_stands_against_a_stop_or_a_prune_requested_meanwhile(store: Store) -> None:
    pruned, stopped, finished, user = _running(store, 4)
    success = Decision(Status.SUCCEEDED, Ending.SUCCEEDED, None)
    obeyed = Decision(Status.STOPPED, Ending.STOPPED, None)
    assert store.request_prune(pruned, "val_loss 0.9 at step 3 worse than the median")
    assert store.request_prune(finished, "val_loss 0.2 at step 12 worse than the median")
    assert store.request_stop(stopped) and store.request_stop(user)
    # Ended by the stop (its supervisor sent it): pruned with the reason, or stopped.
    stop = AttemptResult.exited(-15).because(TerminationReason.STOPPED, "")
    assert store.settle(pruned, obeyed, stop) == Status.PRUNED
    assert store.get_experiment(pruned).prune_reason.startswith("val_loss 0.9")
    assert store.settle(stopped, obeyed, stop) == Status.STOPPED
    # Exited 0 on its own before the stop was sent (``endings.conclude`` said so).
    assert store.settle(finished, success, AttemptResult.exited(0)) == Status.SUCCEEDED
    assert store.settle(user, success, AttemptResult.exited(0)) == Status.SUCCEEDED
    assert store.get_experiment(finished).prune_reason is None  # no reason for a success
    (attempt,) = store.attempts(finished)
    assert attempt.result.reason == TerminationReason.SUCCEEDED


def test_a_failed_build_fails_only_what_still_builds(store: Store) -> None:
    run = _run(store, 2)
    assert store.stop_not_started(run.experiments[0].id, 1.0)
    store.fail_build(run.id, "Could not install 'x'")
    after = store.get_run("r-1")
    assert [e.status for e in after.experiments] == [Status.STOPPED, Status.FAILED]
    assert after.experiments[1].error == "Could not install 'x'"
    assert not store.stop_building_run(run.id, 2.0)  # it failed already


def test_every_transition_is_an_event_kind_and_every_write_asks_the_table() -> None:
    """The table is the mechanism: each named move records an event of its own kind,
    and every statement in the store that sets a status takes its start statuses from
    the table (``allowed_from``/``check``), never from a status spelled out in SQL."""
    not_moves = {"submitted", "search_ended", "session_created"}
    assert {t for t in TABLE} == {k.value for k in EventKind} - not_moves
    db = (SRC / "store" / "db.py").read_text()
    assert "def transition(" not in db and "set_experiments_status" not in db
    methods = re.split(r"\n    def ", db)
    for body in methods:
        if re.search(r"UPDATE (runs|experiments) SET status", body):
            name = body.split("(", 1)[0]
            assert "check(" in body or "allowed_from(" in body, name
            assert "Status.BUILDING.value" not in body and "Status.RUNNING.value" not in body, name


def test_a_move_from_a_status_the_table_does_not_list_changes_nothing(store: Store) -> None:
    run = _run(store, 2)
    a, b = run.experiments
    assert store.stop_queued([a.id], 1.0) == [a.id]  # building: listed
    assert store.stop_queued([a.id], 2.0) == []  # stopped: not listed
    assert (
        store.settle(
            b.id, Decision(Status.SUCCEEDED, Ending.SUCCEEDED, None), AttemptResult.exited(0)
        )
        is None
    )  # building, not running
    assert store.get_experiment(b.id).status == Status.BUILDING
    kinds = [k for (k,) in store.conn.execute("SELECT kind FROM events WHERE experiment_id = ?",
                                              (a.id,))]  # fmt: skip
    assert kinds == ["stop_queued"]


def test_nothing_outside_the_store_writes_a_status() -> None:
    """The store is the only writer: no raw UPDATE of runs/experiments, no ad-hoc moves."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if "store" in path.relative_to(SRC).parts[:1]:
            continue
        text = path.read_text()
        if re.search(r"UPDATE\s+(runs|experiments)\b|\.transition\(", text):
            offenders.append(str(path.relative_to(SRC)))
    assert offenders == []


def test_no_sql_runs_outside_the_store() -> None:
    """Queries of grid.db live in gridrun.store; pigar's module index is its own database."""
    own_database = {Path("deps/pypimodules.py")}
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "store" or rel in own_database:
            continue
        if re.search(r"\.execute(many)?\(|\bconn\.", path.read_text()):
            offenders.append(str(rel))
    assert offenders == []


def test_one_owner_names_each_file_of_a_run_and_an_experiment() -> None:
    """home.py's RunPaths and ExperimentPaths name gridrun's per-run and per-experiment
    files; no other module spells one (a backend's own files are its own)."""
    names = ["output.log", "job.json", "exit.json", "backend.ref", "preempt.reason",
             "artifacts.incomplete", "supervisor.log", "supervisor-error.txt", "build.log",
             "build-warnings.json", "study.journal"]  # fmt: skip
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "home.py":
            continue
        text = path.read_text()
        offenders += [f"{path.relative_to(SRC)}: {n}" for n in names if f'"{n}"' in text]
    assert offenders == []
