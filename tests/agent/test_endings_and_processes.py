"""Unit tests: attempt results, the ending/decision rule, process identity, the queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gridrun.attempts import ENDINGS, AttemptResult, TerminationReason
from gridrun.processes import ProcessRef, read_ref, start_ticks, write_ref
from gridrun.specs import ExperimentSpec, RunSpec
from gridrun.store.db import Store
from gridrun.store.endings import Ending, Policy, conclude, decide
from gridrun.store.models import Status


@pytest.mark.unit
def test_an_exit_code_alone_tells_the_three_apart() -> None:
    assert AttemptResult.exited(0).reason == TerminationReason.SUCCEEDED
    assert AttemptResult.exited(2).ending == Ending.FAILED
    assert AttemptResult.failed("x").reason == TerminationReason.BACKEND_FAILED
    assert AttemptResult.failed("x").ending == Ending.FAILED
    for code in (-15, 143):
        ended = AttemptResult.exited(code)
        assert ended.reason == TerminationReason.SIGTERM and ended.ending == Ending.PREEMPTED
        assert ended.detail == f"SIGTERM from outside gridrun (exit code {code})"


@pytest.mark.unit
def test_conclude_adds_what_the_supervisor_knows() -> None:
    # Exit 0 within the grace after a preemption SIGTERM: resumable, not succeeded.
    ended = conclude(AttemptResult.exited(0), stop_requested=False, preempted="node drain")
    assert ended.reason == TerminationReason.SUPERVISOR_SIGNALLED
    assert (ended.ending, ended.detail, ended.exit_code) == (Ending.PREEMPTED, "node drain", 0)
    # A user's stop wins over everything.
    stopped = conclude(AttemptResult.exited(-15), stop_requested=True, preempted="x")
    assert stopped.reason == TerminationReason.STOPPED and stopped.ending == Ending.STOPPED
    plain = AttemptResult.exited(2)
    assert conclude(plain, stop_requested=False) == plain


@pytest.mark.unit
def test_a_stop_never_sent_leaves_an_exit_0_succeeded() -> None:
    # Requested (a pruner judging the last step, a late `grid stop`) after the script
    # had exited 0 on its own: it succeeded.
    done = AttemptResult.exited(0)
    assert conclude(done, stop_requested=True, stop_sent=False) == done
    # Sent while it ran: an exit 0 is the script obeying the stop.
    obeyed = conclude(done, stop_requested=True, stop_sent=True)
    assert obeyed.reason == TerminationReason.STOPPED and obeyed.exit_code == 0
    # Any other end is the stop's, sent or not (a requeue never follows a stop).
    for other in (AttemptResult.exited(1), AttemptResult.exited(-15)):
        ended = conclude(other, stop_requested=True, stop_sent=False)
        assert ended.reason == TerminationReason.STOPPED


def test_every_reason_has_an_ending() -> None:
    assert set(ENDINGS) == set(TerminationReason)
    for reason in TerminationReason:
        assert isinstance(reason.ending, Ending)
    preempting = {r for r in TerminationReason if r.ending == Ending.PREEMPTED}
    assert TerminationReason.NODE_DIED in preempting
    assert TerminationReason.SUPERVISOR_LOST in preempting


def test_a_result_survives_its_record() -> None:
    ended = AttemptResult.gone("lost: Ray node n1 died", TerminationReason.NODE_DIED)
    ended = replace(ended, node="n1 (ab12cd34)").at(1.0, 2.0)
    assert AttemptResult.from_dict(json.loads(json.dumps(ended.to_dict()))) == ended
    # An exit record written by an older gridrun.
    old = AttemptResult.from_dict(
        {"exit_code": 0, "ending": "preempted", "reason": "drain", "finished_at": 3.0}
    )
    assert (old.ending, old.detail, old.exit_code) == (Ending.PREEMPTED, "drain", 0)
    older = AttemptResult.from_dict({"exit_code": 1, "status": "failed", "error": "boom"})
    assert (older.ending, older.detail) == (Ending.FAILED, "boom")


@pytest.mark.unit
def test_decide_counts_restarts_and_retries_apart() -> None:
    lost = TerminationReason.NODE_DIED
    code = TerminationReason.SCRIPT_FAILED
    ar = Policy(auto_resume=True, max_restarts=2)
    d = decide(lost, "r", ar, restarts=0, retries=0, preemptions=0)
    assert d.requeue and d.restart and not d.retry and d.reason == lost
    d = decide(lost, "r", ar, restarts=2, retries=0, preemptions=2)
    assert d.status == Status.FAILED and d.error.startswith("preempted 3 times (--max_restarts 2)")
    d = decide(TerminationReason.SIGTERM, "spot", Policy(), restarts=0, retries=0, preemptions=0)
    assert d.status == Status.FAILED and d.error == "preempted: spot"
    d = decide(code, None, ar, restarts=0, retries=0, preemptions=0)
    assert d.status == Status.FAILED and d.error is None  # a code failure is not a preemption
    retry = Policy(retries_on_failure=1)
    d = decide(code, "", retry, restarts=0, retries=0, preemptions=0)
    assert d.requeue and d.retry and not d.restart
    d = decide(code, None, retry, restarts=0, retries=1, preemptions=0)
    assert d.status == Status.FAILED and "failed 2 times" in (d.error or "")
    stop = TerminationReason.STOPPED
    assert decide(stop, None, ar, restarts=0, retries=0, preemptions=0).status == Status.STOPPED


@pytest.mark.unit
def test_policy_defaults() -> None:
    # As read from a stored run: the keys an older record lacks take their defaults.
    assert Policy.of_spec(RunSpec.from_dict({})) == Policy(False, 3, 0)
    stored = RunSpec.from_dict({"auto_resume": True, "max_restarts": 0})
    assert Policy.of_spec(stored).max_restarts == 0


def test_process_ref_refuses_a_recycled_or_bare_pid(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        ref = ProcessRef.of(proc.pid)
        assert ref is not None and ref.alive()
        impostor = ProcessRef(proc.pid, ref.start + 1)  # same pid, another start time
        assert not impostor.alive()
        assert not impostor.signal(signal.SIGKILL)
        assert proc.poll() is None
        assert ProcessRef.parse(str(proc.pid)) is None  # a bare pid is never trusted
        write_ref(tmp_path / "x.pid", ref)
        assert read_ref(tmp_path / "x.pid") == ref
        assert ref.signal(signal.SIGTERM)
        proc.wait(timeout=10)
        assert not ref.alive() and not ref.signal(signal.SIGTERM)
    finally:
        proc.kill()
        proc.wait()


def test_zombie_is_not_alive() -> None:
    proc = subprocess.Popen(["true"])
    # Exited, not reaped: a zombie. Waited for, however long a loaded machine takes.
    deadline = time.monotonic() + 60
    while _state(proc.pid) != "Z":
        assert time.monotonic() < deadline, "true never exited"
        time.sleep(0.01)
    assert start_ticks(proc.pid) is None
    proc.wait()
    assert ProcessRef.current().alive() and ProcessRef.current().pid == os.getpid()


@pytest.mark.unit
def test_queue_head_reads_only_the_head(tmp_path: Path) -> None:
    store = Store(tmp_path / "grid.db")
    run = store.create_run(
        name="big",
        backend="local",
        spec=RunSpec.from_dict({}),
        env_key=None,
        experiments=[ExperimentSpec(i, (str(i),)) for i in range(2000)],
        status=Status.PENDING,
    )
    head = store.queue_head(5)
    assert [e.index for e in head] == [0, 1, 2, 3, 4]
    plan = store.conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM experiments e WHERE e.status = ? AND"
        " e.claim_token IS NULL ORDER BY e.status, e.queued_at, e.run_id, e.idx LIMIT 5",
        ("pending",),
    ).fetchall()
    text = " ".join(str(tuple(r)) for r in plan)
    assert "experiments_queue" in text and "TEMP B-TREE" not in text, text
    assert store.claimed_pending() == []
    stopped = store.stop_queued([e.id for e in run.experiments], time.time())
    assert len(stopped) == 2000 and store.queue_head(5) == []
    store.close()


@pytest.mark.unit
def test_a_run_is_stopped_and_claimed_in_bulk(tmp_path: Path) -> None:
    """``grid stop run`` on a large queue: one indexed statement, an event per experiment;
    the agent's batched claim takes only what is still pending and unclaimed."""
    store = Store(tmp_path / "grid.db")
    spec = RunSpec.from_dict({})
    other = store.create_run(
        name="other",
        backend="local",
        spec=spec,
        env_key=None,
        experiments=[ExperimentSpec(i, (str(i),)) for i in range(3)],
        status=Status.PENDING,
    )
    run = store.create_run(
        name="big",
        backend="local",
        spec=spec,
        env_key=None,
        experiments=[ExperimentSpec(i, (str(i),)) for i in range(3000)],
        status=Status.PENDING,
    )
    first, second, third = run.experiments[:3]
    claims = [(first.id, "t1", [0]), (second.id, "t2", []), (first.id, "t3", [])]
    assert store.claim_many(claims) == [first.id, second.id]  # claimed once
    assert store.get_experiment(first.id).gpu_ids == [0]
    assert store.start(
        second.id, "t2", supervisor_pid=1, supervisor_started=1, gpu_ids=[], started_at=1.0
    )
    plan = store.conn.execute(
        "EXPLAIN QUERY PLAN UPDATE experiments SET status = 'stopped'"
        " WHERE run_id = ? AND status IN ('building', 'pending')",
        (run.id,),
    ).fetchall()
    assert "experiments_run_status" in " ".join(str(tuple(r)) for r in plan)
    stopped = store.stop_run_queued(run.id, 5.0)
    assert len(stopped) == 2999 and second.name not in stopped and first.name in stopped
    assert store.get_experiment(second.id).status == Status.RUNNING  # signalled, not here
    assert store.get_experiment(first.id).status == Status.STOPPED
    assert not store.start(
        first.id, "t1", supervisor_pid=1, supervisor_started=1, gpu_ids=[], started_at=1.0
    )  # its supervisor comes too late
    assert not store.claim_many([(third.id, "t4", [])])
    events = store.conn.execute(
        "SELECT count(*) FROM events WHERE kind = 'stop_queued' AND ts = 5.0"
    ).fetchone()[0]
    assert events == 2999
    assert [e.status for e in store.run_experiments(other.id, Status.PENDING)] == [
        Status.PENDING
    ] * 3
    assert store.stop_run_queued(run.id, 6.0) == []
    store.close()


def _state(pid: int) -> str:
    """The process's state letter from /proc (``Z`` for a zombie)."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        data = fh.read()
    return data[data.rfind(b")") + 2 :].split()[0].decode()
