"""Every branch of reconciliation, driven through the fake backend: no processes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from gridrun.agent.jobs import make_job, save_job
from gridrun.agent.reconcile import reconcile_experiment
from gridrun.agent.supervisor import write_exit_record
from gridrun.attempts import AttemptResult, TerminationReason
from gridrun.backends import get_backend
from gridrun.backends.base import write_handle
from gridrun.backends.fake import FakeBackend
from gridrun.home import GridHome
from gridrun.logs import LogSink
from gridrun.store.db import Store
from gridrun.store.models import Experiment, Status
from spec_helpers import experiments, force_experiment, force_run_experiments, run_spec

pytestmark = pytest.mark.unit

SLEEPS = "# fake: sleep 300\n"
EXITS = "# fake: exit {code}\n"


def _running(
    store: Store, home: GridHome, tmp_path: Path, script: str | None, *, auto_resume=False
) -> tuple[Experiment, FakeBackend, str | None]:
    """A run on the fake backend whose one experiment is running, with a dead supervisor."""
    from gridrun.project import take_snapshot

    root = tmp_path / f"proj-{time.monotonic_ns()}"
    root.mkdir()
    (root / "job.py").write_text(script or "")
    snap = take_snapshot(root, home)
    spec = run_spec(
        "job.py",
        snapshot_hash=snap.hash,
        snapshot_manifest=snap.manifest_path,
        auto_resume=auto_resume,
    )
    name = f"r-{time.monotonic_ns()}"
    run = store.create_run(
        name=name, backend="fake", spec=spec, env_key="k", experiments=experiments([])
    )
    exp = run.experiments[0]
    force_run_experiments(store, run.id, Status.BUILDING, Status.RUNNING)
    # A pid past the kernel's limit: certainly not a live supervisor.
    force_experiment(store, exp.id, supervisor_pid=2**22 + 1, supervisor_started=1.0)
    job = make_job(home, store.get_run(name), exp, [])
    save_job(job, "fake")
    backend = FakeBackend(home)
    handle = None
    if script is not None:
        with LogSink(job.log_path) as sink:
            handle = backend.launch(job, sink)
        store.record_handle(exp.id, handle)
    return store.get_experiment(exp.id), backend, handle


def _status(store: Store, exp: Experiment) -> Experiment:
    return store.get_experiment(exp.id)


def test_a_live_supervisor_is_left_alone(store, home, tmp_path) -> None:
    exp, _, _ = _running(store, home, tmp_path, SLEEPS)
    force_experiment(store, exp.id, supervisor_pid=os.getpid(), supervisor_started=None)
    assert reconcile_experiment(store, home, _status(store, exp)) == "alive"


def test_an_exit_record_is_applied(store, home, tmp_path) -> None:
    exp, _, _ = _running(store, home, tmp_path, SLEEPS)
    record = {"exit_code": 0, "status": "succeeded", "finished_at": time.time(), "error": None}
    (home.experiment_dir(exp.name) / "exit.json").write_text(json.dumps(record))
    assert reconcile_experiment(store, home, exp) == "finished"
    assert _status(store, exp).status == Status.SUCCEEDED


def test_an_attempt_result_record_is_applied(store, home, tmp_path) -> None:
    exp, _, _ = _running(store, home, tmp_path, SLEEPS, auto_resume=True)
    ended = AttemptResult.gone("lost: Ray node n1 died", TerminationReason.NODE_DIED)
    write_exit_record(home.experiment_dir(exp.name), exp.attempt, ended.at(1.0, 2.0))
    assert reconcile_experiment(store, home, exp) == "finished"
    after = _status(store, exp)
    assert after.status == Status.PENDING and after.ending == "preempted"
    (attempt,) = store.attempts(exp.id)
    assert attempt.result.reason == TerminationReason.NODE_DIED
    assert attempt.result.detail == "lost: Ray node n1 died"


def test_still_running_in_the_engine_stays_running(store, home, tmp_path) -> None:
    exp, backend, handle = _running(store, home, tmp_path, SLEEPS)
    assert reconcile_experiment(store, home, exp) == "alive"
    assert _status(store, exp).status == Status.RUNNING
    backend.release(backend_job(home, exp), handle)


def test_an_unreachable_engine_is_never_taken_for_gone(store, home, tmp_path) -> None:
    exp, backend, handle = _running(store, home, tmp_path, SLEEPS)
    backend.engine_down = True
    try:
        assert reconcile_experiment(store, home, exp) == "unknown"
        assert _status(store, exp).status == Status.RUNNING
    finally:
        backend.engine_down = False
    backend.release(backend_job(home, exp), handle)


@pytest.mark.parametrize(("code", "status"), [(0, Status.SUCCEEDED), (3, Status.FAILED)])
def test_an_exit_the_engine_kept_is_recovered(store, home, tmp_path, code, status) -> None:
    exp, backend, handle = _running(store, home, tmp_path, EXITS.format(code=code))
    job = backend_job(home, exp)
    deadline = time.monotonic() + 10
    while backend.poll([(job, handle)])[0].state.value == "running":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert reconcile_experiment(store, home, exp) == "recovered"
    after = _status(store, exp)
    assert (after.status, after.exit_code) == (status, code)
    assert backend.poll([(job, handle)])[0].state.value == "gone"  # released


def test_a_stop_requested_exit_is_stopped(store, home, tmp_path) -> None:
    exp, backend, handle = _running(store, home, tmp_path, EXITS.format(code=0))
    force_experiment(store, exp.id, stop_requested=1)
    job = backend_job(home, exp)
    while backend.poll([(job, handle)])[0].state.value == "running":  # until it exited
        time.sleep(0.01)
    assert reconcile_experiment(store, home, _status(store, exp)) == "recovered"
    assert _status(store, exp).status == Status.STOPPED


def test_a_job_the_engine_lost_is_lost(store, home, tmp_path) -> None:
    exp, backend, handle = _running(store, home, tmp_path, SLEEPS)
    assert handle is not None
    backend.lose(handle)
    assert reconcile_experiment(store, home, exp) == "lost"
    after = _status(store, exp)
    assert after.status == Status.FAILED and "lost" in (after.error or "")
    (attempt,) = store.attempts(exp.id)
    assert attempt.handle == handle and attempt.result.reason == TerminationReason.ENGINE_LOST


def test_a_lost_job_is_requeued_with_auto_resume(store, home, tmp_path) -> None:
    exp, backend, handle = _running(store, home, tmp_path, SLEEPS, auto_resume=True)
    assert handle is not None
    backend.lose(handle)
    assert reconcile_experiment(store, home, exp) == "requeued"
    after = _status(store, exp)
    assert after.status == Status.PENDING and after.backend_ref is None
    assert after.ending == "preempted"
    assert "lost its supervisor" not in (after.error or "")  # the engine's reason is kept


def test_a_lost_job_asked_to_stop_is_stopped(store, home, tmp_path) -> None:
    exp, backend, handle = _running(store, home, tmp_path, SLEEPS)
    assert handle is not None
    backend.lose(handle)
    force_experiment(store, exp.id, stop_requested=1)
    assert reconcile_experiment(store, home, _status(store, exp)) == "lost"
    assert _status(store, exp).status == Status.STOPPED


def test_never_launched_is_lost(store, home, tmp_path) -> None:
    exp, _, _ = _running(store, home, tmp_path, None)
    assert reconcile_experiment(store, home, exp) == "lost"
    assert _status(store, exp).status == Status.FAILED


def test_a_backend_whose_jobs_die_with_the_supervisor_is_stopped_and_lost(
    store, home, tmp_path, monkeypatch
) -> None:
    exp, backend, handle = _running(store, home, tmp_path, SLEEPS)
    job = backend_job(home, exp)
    from gridrun.backends.base import Capabilities

    monkeypatch.setattr(FakeBackend, "capabilities", Capabilities(survives_supervisor=False))
    assert reconcile_experiment(store, home, exp) == "lost"
    # Stopped; its working directory stays for a restart under --auto_resume.
    assert backend.poll([(job, handle)])[0].state.value in ("exited", "gone")


def backend_job(home: GridHome, exp: Experiment):
    from gridrun.agent.jobs import load_job

    return load_job(home.experiment_dir(exp.name) / "job.json")[0]


def test_the_registry_hides_test_backends(monkeypatch) -> None:
    from gridrun.errors import UsageError

    monkeypatch.delenv("GRIDRUN_TEST_BACKENDS", raising=False)
    with pytest.raises(UsageError, match="Valid backends: local, docker"):
        get_backend("fake")
    assert get_backend("fake", testing=True).name == "fake"
    assert write_handle  # the handle helper is public for engine backends
