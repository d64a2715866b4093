"""The agent's engine watcher, driven directly on the fake engine (in this process).

What the agent does with an engine backend: claim, hand the claims to the watcher,
which launches them in a batch, polls them all at once on a backoff, sends stops,
adopts what a dead agent watched, and settles each attempt with its typed result.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gridrun.agent.watcher import EngineWatcher
from gridrun.attempts import TerminationReason
from gridrun.backends.fake import FakeBackend
from gridrun.home import GridHome
from gridrun.store.db import Store
from gridrun.store.models import Experiment, Status
from spec_helpers import experiments, force_experiment, run_spec

SLEEPS = "# fake: sleep 300\n"


class Counting(FakeBackend):
    """The fake engine, counting how many attempts each batched poll asked about."""

    def __init__(self, home: GridHome) -> None:
        super().__init__(home)
        self.polls: list[int] = []

    def _poll_many(self, items):  # type: ignore[no-untyped-def]
        self.polls.append(len(items))
        return super()._poll_many(items)


@pytest.fixture
def watcher(home: GridHome) -> Iterator[EngineWatcher]:
    w = EngineWatcher(home, "fake", Counting(home))
    yield w
    w.close()


def _queued(
    store: Store, home: GridHome, tmp_path: Path, script: str, n: int = 1, **spec: object
) -> list[Experiment]:
    """A run of ``n`` experiments on the fake engine, each acting out ``script``, pending."""
    from gridrun.project import take_snapshot

    root = tmp_path / f"proj-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    (root / "job.py").write_text(script)
    snap = take_snapshot(root, home)
    spec_ = run_spec(
        "job.py", snapshot_hash=snap.hash, snapshot_manifest=snap.manifest_path, **spec
    )
    run = store.create_run(
        name=f"w-{uuid.uuid4().hex[:6]}", backend="fake", spec=spec_, env_key="k",
        experiments=experiments(*([[]] * n)),
    )  # fmt: skip
    store.mark_built(run.id, "fake-env")
    return store.get_run(run.name).experiments


def _start(store: Store, watcher: EngineWatcher, exps: list[Experiment]) -> None:
    tokens = {e.id: uuid.uuid4().hex for e in exps}
    claimed = store.claim_many([(e.id, tokens[e.id], []) for e in exps])
    watcher.submit([(i, tokens[i]) for i in claimed])


def _until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _statuses(store: Store, exps: list[Experiment]) -> list[Status]:
    return [store.get_experiment(e.id).status for e in exps]


def test_a_sweep_is_launched_in_a_batch_and_polled_together(store, home, tmp_path, watcher):
    ok = _queued(store, home, tmp_path, "# fake: sleep 0.5\n# fake: stdout hi\n", n=8)
    bad = _queued(store, home, tmp_path, "# fake: exit 3\n")
    _start(store, watcher, ok + bad)
    _until(lambda: all(s.finished for s in _statuses(store, ok + bad)))
    assert _statuses(store, ok) == [Status.SUCCEEDED] * 8
    assert _statuses(store, bad) == [Status.FAILED]
    assert store.get_experiment(bad[0].id).exit_code == 3
    # One poll a round for every running attempt, not one per experiment.
    assert max(watcher.backend.polls) == 9, watcher.backend.polls  # type: ignore[attr-defined]
    for exp in ok:
        (attempt,) = store.attempts(exp.id)
        assert attempt.handle and attempt.handle.startswith("fake-")
        assert attempt.result.reason == TerminationReason.SUCCEEDED
        assert attempt.result.finished_at and attempt.result.started_at
        assert "hi" in home.experiment_dir(exp.name).joinpath("output.log").read_text()
    assert store.attempts(bad[0].id)[0].result.reason == TerminationReason.SCRIPT_FAILED
    assert not watcher.watching


def test_a_stop_recorded_in_the_store_is_sent(store, home, tmp_path, watcher):
    (exp,) = _queued(store, home, tmp_path, SLEEPS)
    _start(store, watcher, [exp])
    _until(lambda: exp.id in watcher.watching)
    assert store.request_stop(exp.id)
    watcher.sync(store.experiments(Status.RUNNING))  # what the agent's step does
    _until(lambda: store.get_experiment(exp.id).status.finished)
    assert store.get_experiment(exp.id).status == Status.STOPPED
    assert store.attempts(exp.id)[0].result.reason == TerminationReason.STOPPED


def test_a_job_the_engine_lost_is_requeued_with_its_reason(store, home, tmp_path, watcher):
    (exp,) = _queued(store, home, tmp_path, SLEEPS, auto_resume=True)
    _start(store, watcher, [exp])
    _until(lambda: exp.id in watcher.watching)
    watcher.backend.lose(watcher.watching[exp.id].handle)  # type: ignore[attr-defined]
    _until(lambda: store.get_experiment(exp.id).status == Status.PENDING)
    after = store.get_experiment(exp.id)
    assert after.ending == "preempted" and after.restarts == 1
    (attempt,) = store.attempts(exp.id)
    assert attempt.result.reason == TerminationReason.ENGINE_LOST
    assert "lost: the fake engine does not know it" in after.error


def test_a_dead_agents_attempts_are_adopted_and_unknown_is_never_gone(
    store, home, tmp_path, watcher
):
    (exp,) = _queued(store, home, tmp_path, "# fake: sleep 1\n")
    _start(store, watcher, [exp])
    _until(lambda: exp.id in watcher.watching)
    watcher.close()  # the agent died: its attempt runs on in the engine
    dead = store.get_experiment(exp.id)
    force_experiment(store, exp.id, supervisor_pid=2**22 + 1, supervisor_started=1.0)
    heir = EngineWatcher(home, "fake", FakeBackend(home))
    try:
        heir.backend.engine_down = True  # type: ignore[attr-defined]
        heir.sync(store.experiments(Status.RUNNING))
        _until(lambda: exp.id in heir.watching)
        time.sleep(1.5)  # well past its end: the engine cannot tell, so it stays running
        assert store.get_experiment(exp.id).status == Status.RUNNING
        heir.backend.engine_down = False  # type: ignore[attr-defined]
        _until(lambda: store.get_experiment(exp.id).status.finished)
        assert store.get_experiment(exp.id).status == Status.SUCCEEDED
        assert store.attempts(exp.id)[0].handle == dead.backend_ref
    finally:
        heir.close()
