"""What every backend must do, the same way: one suite, run on each of ``CASES``.

Each script carries ``# fake:`` directives that make the fake backend act out what the
real backends run for real, so one script serves them all.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gridrun.backends.base import AttemptResult, PollState, TerminationReason, read_handle
from gridrun.errors import BackendError, UnsupportedError, UsageError
from gridrun.logs import LogSink
from gridrun.specs import EnvSpec, Resources, RunSpec
from gridrun.store.endings import Ending, Policy, conclude, decide
from gridrun.store.models import Status

FINISHES = """\
# fake: stdout hello out
# fake: stderr hello err
# fake: write made.txt made
# fake: exit 3
import sys
print("hello out", flush=True)
print("hello err", file=sys.stderr, flush=True)
open("made.txt", "w").write("made")
sys.exit(3)
"""

SLEEPS = """\
# fake: stdout started
# fake: sleep 300
import time
print("started", flush=True)
time.sleep(300)
"""

IGNORES_SIGTERM = """\
# fake: ignore-sigterm
# fake: stdout started
# fake: sleep 300
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("started", flush=True)
time.sleep(300)
"""

KILLED = (-9, 137)  # SIGKILL: as a process reports it, as an engine does
STOPPED = (-15, 143, *KILLED)


def _wait_for(path: Path, text: str, limit: float = 180) -> None:
    deadline = time.monotonic() + limit
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.05)


def _plain(results: list[AttemptResult]) -> list[AttemptResult]:
    """Without the node and the times an engine may name (a Ray node, when a Slurm task
    began and ended): the rest is the same everywhere."""
    return [replace(r, node="", started_at=None, finished_at=None) for r in results]


def _in_background(backend, job) -> tuple[threading.Thread, list[AttemptResult], list[str]]:
    """Launch and wait as a supervisor does, in a thread; the handle once known."""
    codes: list[AttemptResult] = []
    handles: list[str] = []

    def supervise() -> None:
        with LogSink(job.log_path) as sink:
            try:
                codes.append(backend.run(job, sink, handles.append))
            except BackendError as exc:  # the engine lost it: the supervisor records a failure
                codes.append(AttemptResult.failed(str(exc)))

    t = threading.Thread(target=supervise, daemon=True)
    t.start()
    _wait_for(job.log_path, "started")
    deadline = time.monotonic() + 30
    while not handles:  # the script may print before launch returns its handle
        assert time.monotonic() < deadline, "launch never returned a handle"
        time.sleep(0.01)
    return t, codes, handles


def test_exit_code_output_artifacts_and_release(make_job) -> None:
    backend, job = make_job(FINISHES)
    with LogSink(job.log_path) as sink:
        handle = backend.launch(job, sink)
        assert read_handle(job) == handle  # persisted before anything else
        ended = backend.wait(job, handle, sink)
        assert _plain([ended]) == [AttemptResult.exited(3)]
        assert ended.reason == TerminationReason.SCRIPT_FAILED
    log = job.log_path.read_text()
    assert "[stdout] " in log and "hello out" in log
    assert "[stderr] " in log and "hello err" in log
    assert _plain(backend.poll([(job, handle)])) == [AttemptResult.exited(3)]
    assert "made.txt" in backend.collect(job, handle)
    assert (job.artifacts_dir / "made.txt").read_text() == "made"
    backend.release(job, handle)
    backend.release(job, handle)  # twice is harmless
    assert backend.poll([(job, handle)])[0].state == PollState.GONE


CONTRACT = """\
import json, os, sys
seen = {k: v for k, v in os.environ.items() if k.startswith("GRID_") and k != "GRID_HOME"}
data = os.environ.get("GRID_DATASTORE_DATA_DIR", "")
try:
    open(os.path.join(data, "new.txt"), "w").write("x")
    writable = True
except OSError:
    writable = False
print("CONTRACT " + json.dumps({
    "env": seen,
    "script_here": os.path.exists("job.py"),
    "data": open(os.path.join(data, "hello.txt")).read() if data else None,
    "data_in_workdir": os.path.realpath(data).startswith(os.path.realpath(os.getcwd())),
    "writable": writable,
}), flush=True)
"""


def test_every_backend_gives_an_experiment_the_same_view(make_real_job, tmp_path) -> None:
    """One contract for what an experiment sees, on every backend that runs scripts:
    gridrun's GRID_* variables as the agent set them (no others), its working copy as
    the working folder, and each datastore at GRID_DATASTORE_<NAME>_DIR, read-only, a
    relative mount folder resolved in the working copy."""
    import json

    from gridrun.specs import DatastoreMount

    source = tmp_path / "data-v1"
    source.mkdir()
    (source / "hello.txt").write_text("hi from the datastore")
    env = {"GRID_RUN_NAME": "conformance", "GRID_EXPERIMENT_ID": "1", "GRID_RESTART_COUNT": "0"}
    mount = DatastoreMount("data", 1, source, "datastores/data")
    backend, job = make_real_job(CONTRACT, env=env, datastores=[mount])
    with LogSink(job.log_path) as sink:
        handle = backend.launch(job, sink)
        assert backend.wait(job, handle, sink).exit_code == 0, job.log_path.read_text()
    backend.release(job, handle)
    line = next(ln for ln in job.log_path.read_text().splitlines() if "CONTRACT " in ln)
    seen = json.loads(line.split("CONTRACT ", 1)[1])
    assert seen["env"] == {
        **env,
        "GRID_EXPERIMENT_NAME": job.experiment_name,
        "GRID_DATASTORE_DATA_DIR": seen["env"].get("GRID_DATASTORE_DATA_DIR", "missing"),
    }
    assert seen["env"]["GRID_DATASTORE_DATA_DIR"].endswith("/datastores/data")
    assert seen["script_here"] and seen["data_in_workdir"]
    assert seen["data"] == "hi from the datastore"
    assert not seen["writable"]
    assert sorted(p.name for p in source.iterdir()) == ["hello.txt"]


def test_a_new_instance_finds_the_job_by_its_handle(case, make_job) -> None:
    backend, job = make_job(SLEEPS)
    t, codes, handles = _in_background(backend, job)
    later = case.backend()  # another process, knowing only the job and the handle
    assert _plain(later.poll([(job, read_handle(job))])) == [AttemptResult.running()]
    later.stop(job, handles[0], 1.0)
    t.join(timeout=30)
    assert codes and codes[0].exit_code in STOPPED


def test_stop_terminates_within_the_grace_period(make_job) -> None:
    backend, job = make_job(SLEEPS)
    t, codes, handles = _in_background(backend, job)
    started = time.monotonic()
    backend.stop(job, handles[0], job.stop_grace)
    t.join(timeout=30)
    assert codes and codes[0].exit_code in STOPPED
    assert time.monotonic() - started < job.stop_grace + 10
    assert backend.poll([(job, handles[0])])[0].state == PollState.EXITED


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(case, make_job) -> None:
    backend, job = make_job(IGNORES_SIGTERM)
    if case.name == "fake":
        backend.slow_stop = True
    t, codes, handles = _in_background(backend, job)
    started = time.monotonic()
    backend.stop(job, handles[0], 1.0)
    t.join(timeout=30)
    assert codes and codes[0].exit_code in KILLED
    assert time.monotonic() - started >= 0.9


def test_stop_before_launch_never_starts_it(make_job) -> None:
    backend, job = make_job(FINISHES)
    backend.stop(job, None, 1.0)
    with LogSink(job.log_path) as sink:
        assert backend.run(job, sink).exit_code == 143
    assert read_handle(job) is None
    assert not (job.workdir / "made.txt").exists()


def test_poll_is_batched_and_keeps_order(make_job) -> None:
    backend, quick = make_job(FINISHES)
    _, slow = make_job(SLEEPS)
    with LogSink(quick.log_path) as sink:
        q = backend.launch(quick, sink)
        assert backend.wait(quick, q, sink).exit_code == 3
    t, _, handles = _in_background(backend, slow)
    assert _plain(backend.poll([(slow, handles[0]), (quick, q)])) == [
        AttemptResult.running(),
        AttemptResult.exited(3),
    ]
    assert backend.poll([]) == []
    backend.stop(slow, handles[0], 0.5)
    t.join(timeout=30)


def test_a_lost_job_is_gone(case, make_job) -> None:
    backend, job = make_job(SLEEPS)
    t, _, handles = _in_background(backend, job)
    case.lose(backend, job, handles[0])
    t.join(timeout=60)
    later = case.backend()
    assert later.poll([(job, handles[0])])[0].state in (PollState.GONE, PollState.EXITED)
    if case.name != "local":  # a killed local process is only gone to a stranger
        assert later.poll([(job, handles[0])])[0].state == PollState.GONE


def test_an_attempt_ended_from_outside_is_a_preemption(case, make_job) -> None:
    """The machine or engine, not the script, ended it: the supervisor records a preemption.

    What each backend can act out: the fake engine reclaims the job's machine, a local
    experiment's process group gets SIGTERM (a node drain), a container gets SIGTERM
    from the engine's side. The supervisor classifies the attempt exactly as here.
    """
    backend, job = make_job(SLEEPS)
    t, codes, handles = _in_background(backend, job)
    case.preempt(case.backend(), job, handles[0])
    t.join(timeout=60)
    assert not t.is_alive(), "the preempted job never ended"
    assert codes and codes[0].exit_code != -1, "the backend lost the job, not its end"
    ended = conclude(codes[0], stop_requested=False)
    assert ended.ending == Ending.PREEMPTED, ended
    assert ended.reason in (
        TerminationReason.SIGTERM,
        TerminationReason.ENGINE_RESTARTED,
        TerminationReason.NODE_DIED,  # Slurm: its node taken down
    )
    assert ended.detail
    # Under --auto_resume it runs again, in the same working directory.
    decision = decide(
        ended.reason, ended.detail, Policy(auto_resume=True), restarts=0, retries=0,
        preemptions=0,
    )  # fmt: skip
    assert decision.status == Status.PENDING and decision.restart


def test_a_stop_is_never_a_preemption(make_job) -> None:
    backend, job = make_job(SLEEPS)
    t, codes, handles = _in_background(backend, job)
    backend.stop(job, handles[0], 1.0)
    t.join(timeout=30)
    assert codes and codes[0].exit_code in STOPPED
    assert codes[0].reason != TerminationReason.ENGINE_RESTARTED  # the engine did not end it
    assert conclude(codes[0], stop_requested=True).ending == Ending.STOPPED


def test_an_unreachable_engine_is_unknown_never_gone(case, make_job) -> None:
    if not case.has_engine:
        # Processes on this machine have no engine to lose: the failure cannot exist.
        assert case.name == "local"
        return
    backend, job = make_job(SLEEPS)
    t, _, handles = _in_background(backend, job)
    later = case.backend()
    case.break_engine(later)
    try:
        state = later.poll([(job, handles[0])])[0]
        assert state.state == PollState.UNKNOWN, state
        assert state.detail
    finally:
        case.mend_engine(later)
    assert _plain(later.poll([(job, handles[0])])) == [AttemptResult.running()]
    later.stop(job, handles[0], 0.5)
    t.join(timeout=60)


def _spec(**kw: object) -> RunSpec:
    fields: dict = {
        "script": "job.py",
        "env": EnvSpec(python="3.11"),
        "snapshot_hash": "",
        "snapshot_manifest": Path(),
    }
    fields.update(kw)
    return RunSpec(**fields)


def test_validate_refuses_what_it_cannot_honour(case) -> None:
    backend = case.backend()
    backend.validate(_spec())
    caps = backend.capabilities
    if not caps.dockerfile:
        with pytest.raises(UnsupportedError, match=backend.name):
            backend.validate(_spec(env=EnvSpec(python="3.11", dockerfile="Dockerfile")))
    capacity = backend.capacity()
    if capacity is not None:
        too_many = Resources(cpus=capacity.cpus + 1)
        with pytest.raises(UsageError, match="CPUs"):
            backend.validate(_spec(resources=too_many))
        backend.validate(_spec(resources=too_many), fits=False)
