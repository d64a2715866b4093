"""Experiments as containers, driven through the backend directly with a real engine."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gridrun.backends.base import AttemptResult, DatastoreMount, PollState
from gridrun.backends.docker import DockerBackend
from gridrun.logs import LogSink, parse_line

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SCRIPT = """\
import os, sys
print("out", sys.argv[1:], os.environ["GRID_EXPERIMENT_NAME"], os.getcwd(), flush=True)
print("err line", file=sys.stderr, flush=True)
os.makedirs("out", exist_ok=True)
open("out/metrics.json", "w").write('{"acc": 1}')
open("data.txt", "a").write("changed\\n")
sys.exit(3)
"""


def _image(make_project, make_request, files: dict[str, str]) -> tuple[Any, str]:
    req = make_request(make_project(files))
    return req, DockerBackend().build(req, lambda line: None)


def _run(backend: DockerBackend, job: Any) -> int | None:
    with LogSink(job.log_path) as sink:
        return backend.run(job, sink).exit_code


def _lines(job: Any) -> list[tuple[str, str, str]]:
    return [p for p in map(parse_line, job.log_path.read_text().splitlines()) if p]


def test_streams_exit_code_limits_artifacts_and_removal(
    api, make_project, make_request, make_job
) -> None:
    req, tag = _image(make_project, make_request, {"train.py": SCRIPT, "data.txt": "x\n"})
    job = make_job(req, tag, "train.py", ["--a", "1 2"], cpus=1.5, memory=256 * 2**20)
    backend = DockerBackend()
    before = time.time()
    assert _run(backend, job) == 3
    lines = _lines(job)
    out = [t for s, _, t in lines if s == "stdout"]
    assert out == [f"out ['--a', '1 2'] {job.experiment_name} /gridai/project"]
    assert [t for s, _, t in lines if s == "stderr"] == ["err line"]
    from datetime import datetime

    stamps = [datetime.fromisoformat(ts).timestamp() for _, ts, _ in lines]
    assert all(before - 1 < ts < time.time() + 1 for ts in stamps)

    info = api.inspect_container(DockerBackend().container_name(job))  # still there until cleanup
    assert info["HostConfig"]["NanoCpus"] == 1_500_000_000
    assert info["HostConfig"]["Memory"] == 256 * 2**20
    assert info["HostConfig"]["Init"] is True
    assert info["Config"]["Labels"]["gridrun.experiment"] == job.experiment_name
    assert info["Config"]["Labels"]["gridrun.run"] == job.run_name

    assert backend.collect(job, None) == ["data.txt", "out/metrics.json"]
    assert (job.artifacts_dir / "out/metrics.json").read_text() == '{"acc": 1}'
    assert (job.artifacts_dir / "data.txt").read_text() == "x\nchanged\n"
    backend.release(job, None)
    assert api.containers(all=True, filters={"name": DockerBackend().container_name(job)}) == []
    assert not job.workdir.exists()


def test_bash_script_and_read_only_datastores(
    make_project, make_request, make_job, tmp_path: Path
) -> None:
    script = (
        "cat /datastores/mnist/a.txt\ncat data/inner/b.txt\n"
        "touch /datastores/mnist/new 2>/dev/null || echo read-only\n"
        "mount -o remount,bind,rw /datastores/mnist 2>/dev/null && echo REMOUNTED"
        " || echo no-remount\n"
        'echo "args: $@"\n'
    )
    req, tag = _image(make_project, make_request, {"run.sh": script})
    outer, inner = tmp_path / "ds1", tmp_path / "ds2"
    outer.mkdir()
    inner.mkdir()
    (outer / "a.txt").write_text("from mnist\n")
    (inner / "b.txt").write_text("from inner\n")
    job = make_job(
        req,
        tag,
        "run.sh",
        ["x", "y"],
        datastores=[
            DatastoreMount("mnist", 1, outer, "/datastores/mnist"),
            DatastoreMount("inner", 2, inner, "data/inner"),
        ],
    )
    backend = DockerBackend()
    assert _run(backend, job) == 0
    out = [t for s, _, t in _lines(job) if s == "stdout"]
    assert out == ["from mnist", "from inner", "read-only", "no-remount", "args: x y"]
    host = DockerBackend().api.inspect_container(DockerBackend().container_name(job))["HostConfig"]
    assert "SYS_ADMIN" in host["CapDrop"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert backend.collect(job, None) == []  # a mounted datastore is not an artifact
    backend.release(job, None)


def _wait_for(job: Any, text: str, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not (job.log_path.exists() and text in job.log_path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never appeared"
        time.sleep(0.1)


@pytest.mark.parametrize(("handler", "expected"), [(True, 0), (False, 137)])
def test_terminate(make_project, make_request, make_job, handler: bool, expected: int) -> None:
    script = (
        "import signal, sys, time\n"
        + (
            "signal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM', flush=True),"
            " sys.exit(0)))\n"
            if handler
            else "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        )
        + "print('started', flush=True)\ntime.sleep(300)\n"
    )
    req, tag = _image(make_project, make_request, {"sleepy.py": script})
    job = make_job(req, tag, "sleepy.py", [])
    backend = DockerBackend()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(_run(backend, job)))
    runner.start()
    _wait_for(job, "started")
    started = time.monotonic()
    backend.stop(job, None, 2)
    runner.join(timeout=30)
    assert result == [expected]
    assert time.monotonic() - started < 15
    assert ("got SIGTERM" in job.log_path.read_text()) is handler
    backend.release(job, None)


def test_recover_after_the_supervisor_died(api, make_project, make_request, make_job) -> None:
    script = (
        "import sys, time\nopen('done.txt', 'w').write('yes')\ntime.sleep(float(sys.argv[1]))\n"
    )
    req, tag = _image(make_project, make_request, {"job.py": script})
    quick, slow = make_job(req, tag, "job.py", ["0"]), make_job(req, tag, "job.py", ["300"])
    ids = {}
    for job in (quick, slow):  # what a supervisor does before it dies
        first = DockerBackend()
        ids[job.experiment_name] = first._create(job)
        api.start(ids[job.experiment_name])
        first.close()
    q, s = ids[quick.experiment_name], ids[slow.experiment_name]
    deadline = time.monotonic() + 30
    while api.inspect_container(DockerBackend().container_name(quick))["State"]["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    later = DockerBackend()  # a new process, knowing nothing but the job and its handle
    assert later.poll([(slow, s), (quick, q)]) == [AttemptResult.running(), AttemptResult.exited(0)]
    # What reconciliation does with an exit the engine kept: save, release, record.
    later.collect(quick, q)
    later.release(quick, q)
    assert (quick.artifacts_dir / "done.txt").read_text() == "yes"
    assert api.containers(all=True, filters={"name": DockerBackend().container_name(quick)}) == []
    assert later.poll([(quick, q)])[0].state == PollState.GONE  # gone: nothing to tell
    later.stop(slow, s, grace=0)
    later.release(slow, s)


def test_engine_restarted_mid_experiment(
    make_project, make_request, make_job, second_engine, monkeypatch
) -> None:
    """dockerd restarts under a running experiment: execute returns its final code.

    The script ignores SIGTERM, so the engine's shutdown has to kill it: the experiment
    outlives the API for a while, and execute must come back with a code, not hang.
    """
    host, restart = second_engine
    monkeypatch.setenv("DOCKER_HOST", host)
    script = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "for i in range(600):\n    print('tick', i, flush=True)\n    time.sleep(0.2)\n"
    )
    req, tag = _image(make_project, make_request, {"tick.py": script})
    job = make_job(req, tag, "tick.py", [])
    backend = DockerBackend()
    result: list[object] = []

    def run() -> None:
        try:
            result.append(_run(backend, job))
        except Exception as exc:  # reported by the assertion below
            result.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    _wait_for(job, "tick 3")
    started = time.monotonic()
    restart()
    runner.join(timeout=120)
    assert not runner.is_alive(), "execute hung after the engine restart"
    print(
        f"\n[timing] execute returned {time.monotonic() - started:.1f}s after the restart "
        f"began, with {result}"
    )
    assert len(result) == 1 and isinstance(result[0], int) and result[0] not in (0, 143)
    ticks = [t for s, _, t in _lines(job) if s == "stdout"]
    assert ticks[:4] == ["tick 0", "tick 1", "tick 2", "tick 3"]
    assert len(ticks) == len(set(ticks))  # no line written twice after reconnecting
    backend.collect(job, None)
    backend.release(job, None)
