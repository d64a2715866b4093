"""Unit tests: the ending/decision rule, process identity, the queue's head query."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from gridrun.processes import ProcessRef, read_ref, start_ticks, write_ref
from gridrun.specs import ExperimentSpec, RunSpec
from gridrun.store.db import Store
from gridrun.store.endings import Ending, Policy, classify, decide
from gridrun.store.models import Status


def test_classify_tells_the_three_apart() -> None:
    assert classify(0, stop_requested=False, preempted=None) == (Ending.SUCCEEDED, None)
    assert classify(2, stop_requested=False, preempted=None, error="x") == (Ending.FAILED, "x")
    assert classify(2, stop_requested=False, preempted=None)[0] == Ending.FAILED
    assert classify(-15, stop_requested=False, preempted=None)[0] == Ending.PREEMPTED
    assert classify(143, stop_requested=False, preempted=None)[0] == Ending.PREEMPTED
    # Exit 0 within the grace after a preemption SIGTERM: resumable, not succeeded.
    assert classify(0, stop_requested=False, preempted="node drain") == (
        Ending.PREEMPTED,
        "node drain",
    )
    # A user's stop wins over everything.
    assert classify(-15, stop_requested=True, preempted="x")[0] == Ending.STOPPED


def test_decide_counts_restarts_and_retries_apart() -> None:
    ar = Policy(auto_resume=True, max_restarts=2)
    d = decide(Ending.PREEMPTED, "r", ar, restarts=0, retries=0, preemptions=0)
    assert d.requeue and d.restart and not d.retry
    d = decide(Ending.PREEMPTED, "r", ar, restarts=2, retries=0, preemptions=2)
    assert d.status == Status.FAILED and d.error.startswith("preempted 3 times (--max_restarts 2)")
    d = decide(Ending.PREEMPTED, "spot", Policy(), restarts=0, retries=0, preemptions=0)
    assert d.status == Status.FAILED and d.error == "preempted: spot"
    d = decide(Ending.FAILED, None, ar, restarts=0, retries=0, preemptions=0)
    assert d.status == Status.FAILED  # a code failure is not a preemption
    retry = Policy(retries_on_failure=1)
    d = decide(Ending.FAILED, None, retry, restarts=0, retries=0, preemptions=0)
    assert d.requeue and d.retry and not d.restart
    d = decide(Ending.FAILED, None, retry, restarts=0, retries=1, preemptions=0)
    assert d.status == Status.FAILED and "failed 2 times" in (d.error or "")
    assert decide(Ending.STOPPED, None, ar, restarts=0, retries=0, preemptions=0).status == (
        Status.STOPPED
    )


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
    time.sleep(0.3)  # exited, not reaped: a zombie
    assert start_ticks(proc.pid) is None
    proc.wait()
    assert ProcessRef.current().alive() and ProcessRef.current().pid == os.getpid()


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
