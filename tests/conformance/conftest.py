"""The backends the conformance suite runs on, each as a small ``Case``.

To add a backend (Ray next), write a ``Case`` subclass that knows how to build an
environment for a project folder, how to make its engine unreachable and how to lose
a job behind gridrun's back, and add it to ``CASES``. Every test in
``test_conformance.py`` then runs on it. A case whose engine is missing skips on a
developer's machine and fails when ``CI`` is set: CI starts every engine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gridrun.backends import Backend, get_backend
from gridrun.backends.base import BuildRequest, Job
from gridrun.home import GridHome

BASE_IMAGE = "gridrun-test-base:bookworm"  # debootstrapped by .ci/docker-engine.sh


class Case:
    """How the suite drives one backend."""

    name: ClassVar[str]
    has_engine: ClassVar[bool] = True  # an engine that can be unreachable

    def __init__(self, home: GridHome, monkeypatch: pytest.MonkeyPatch) -> None:
        self.home = home
        self.monkeypatch = monkeypatch

    def available(self) -> str | None:
        """Why this backend cannot run here, or None."""
        return None

    def backend(self) -> Backend:
        """A fresh instance, as a new process would have."""
        return get_backend(self.name, self.home, testing=True)

    def build_request(self, req: BuildRequest) -> BuildRequest:
        return req

    def break_engine(self, backend: Backend) -> None:
        raise NotImplementedError

    def mend_engine(self, backend: Backend) -> None:
        raise NotImplementedError

    def lose(self, backend: Backend, job: Job, handle: str) -> None:
        """Make the engine forget the job, as a vanished node would."""
        raise NotImplementedError

    def preempt(self, backend: Backend, job: Job, handle: str) -> None:
        """End the job from outside, as a spot reclaim or a node drain does (SIGTERM)."""
        raise NotImplementedError

    def cleanup(self) -> None:
        pass


class FakeCase(Case):
    name = "fake"

    def break_engine(self, backend: Backend) -> None:
        backend.engine_down = True  # type: ignore[attr-defined]

    def mend_engine(self, backend: Backend) -> None:
        backend.engine_down = False  # type: ignore[attr-defined]

    def lose(self, backend: Backend, job: Job, handle: str) -> None:
        backend.lose(handle)  # type: ignore[attr-defined]

    def preempt(self, backend: Backend, job: Job, handle: str) -> None:
        backend.preempt(handle)  # type: ignore[attr-defined]


class LocalCase(Case):
    name = "local"
    has_engine = False  # processes on this machine: nothing to be unreachable

    def lose(self, backend: Backend, job: Job, handle: str) -> None:
        # Killed from outside, seen by a process that did not start it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(handle.split()[0]), signal.SIGKILL)

    def preempt(self, backend: Backend, job: Job, handle: str) -> None:
        # What a node drain sends: SIGTERM to the experiment's process group.
        os.killpg(int(handle.split()[0]), signal.SIGTERM)


class DockerCase(Case):
    name = "docker"

    def available(self) -> str | None:
        try:
            get_backend("docker", self.home).check_available()
        except Exception as exc:
            return str(exc)
        return None

    def build_request(self, req: BuildRequest) -> BuildRequest:
        import dataclasses

        return dataclasses.replace(
            req, base_image=BASE_IMAGE, project_name=f"gridrun-test-{req.project_name}"
        )

    def break_engine(self, backend: Backend) -> None:
        self.saved = os.environ.get("DOCKER_HOST")
        self.monkeypatch.setenv("DOCKER_HOST", f"unix://{self.home.root}/no-engine.sock")
        backend.close()  # type: ignore[attr-defined]

    def mend_engine(self, backend: Backend) -> None:
        if self.saved is None:
            self.monkeypatch.delenv("DOCKER_HOST")
        else:
            self.monkeypatch.setenv("DOCKER_HOST", self.saved)
        backend.close()  # type: ignore[attr-defined]

    def lose(self, backend: Backend, job: Job, handle: str) -> None:
        from gridrun.backends.docker import connect

        api = connect()
        try:
            api.remove_container(handle, force=True)
        finally:
            api.close()

    def preempt(self, backend: Backend, job: Job, handle: str) -> None:
        # SIGTERM to the container from outside gridrun (a drain on the shared engine).
        # The engine restart itself is a preemption too, acted out on a private engine
        # by tests/docker (test_engine_restarted_mid_experiment): restarting the shared
        # engine here would break every other test using it.
        from gridrun.backends.docker import connect

        api = connect()
        try:
            api.kill(handle, signal="SIGTERM")
        finally:
            api.close()


class RayCase(Case):
    """The session's real local Ray cluster (``ray_cluster``), asked from this process."""

    name = "ray"

    def __init__(self, home: GridHome, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(home, monkeypatch)
        self.cluster: Any = None  # set by the ``case`` fixture

    def attach(self, cluster: Any) -> None:
        self.cluster = cluster
        # What `grid run` would resolve from --ray_address: validate needs a cluster.
        self.monkeypatch.setenv("RAY_ADDRESS", cluster.gcs_address)

    def build_request(self, req: BuildRequest) -> BuildRequest:
        import dataclasses

        return dataclasses.replace(req, backend_options={"ray_address": self.cluster.gcs_address})

    def break_engine(self, backend: Backend) -> None:
        # Every process of the cluster frozen (GCS, raylets, workers, the run's driver and
        # coordinator: all descendants of its `ray start` processes, whatever their
        # session): the cluster is there but does not answer, as a head behind a broken
        # network. Asked with a short timeout so the test is quick.
        backend.request_timeout = 5.0  # type: ignore[attr-defined]
        self.frozen = self._cluster_processes()
        for p in self.frozen:
            with contextlib.suppress(Exception):
                p.suspend()

    def mend_engine(self, backend: Backend) -> None:
        self._thaw()
        backend.request_timeout = 60.0  # type: ignore[attr-defined]

    def _cluster_processes(self) -> list[Any]:
        import psutil

        out = []
        for proc in self.cluster.procs:
            with contextlib.suppress(psutil.Error):
                top = psutil.Process(proc.pid)
                out += [top, *top.children(recursive=True)]
        return out

    def _thaw(self) -> None:
        for p in getattr(self, "frozen", []):
            with contextlib.suppress(Exception):
                p.resume()
        self.frozen = []

    def lose(self, backend: Backend, job: Job, handle: str) -> None:
        # The run's coordinator forgets the task, as when its driver is gone.
        backend.release(job, handle)

    def preempt(self, backend: Backend, job: Job, handle: str) -> None:
        # What a drain of its node sends: SIGTERM to the experiment's process group,
        # found on the node (this machine) by the name the task gave it.
        import psutil

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for p in psutil.process_iter(["environ"]):
                with contextlib.suppress(psutil.Error):
                    env = p.info["environ"] or {}
                    if env.get("GRID_EXPERIMENT_NAME") == job.experiment_name:
                        os.killpg(os.getpgid(p.pid), signal.SIGTERM)
                        return
            time.sleep(0.2)
        raise AssertionError(f"no process of {job.experiment_name} on the cluster's nodes")

    def cleanup(self) -> None:
        self._thaw()  # never leave the shared cluster frozen


class SlurmCase(Case):
    """The session's real local Slurm cluster (``slurm_cluster``): one job per experiment."""

    name = "slurm"

    def __init__(self, home: GridHome, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(home, monkeypatch)
        self.cluster: Any = None  # set by the ``case`` fixture

    def attach(self, cluster: Any) -> None:
        self.cluster = cluster
        for key, value in cluster.env.items():
            self.monkeypatch.setenv(key, value)

    def break_engine(self, backend: Backend) -> None:
        # The controller frozen: there, but it does not answer (a head behind a broken
        # network); the cluster's MessageTimeout is short, so clients give up quickly.
        self.cluster.procs["slurmctld"].send_signal(signal.SIGSTOP)

    def mend_engine(self, backend: Backend) -> None:
        self.cluster.procs["slurmctld"].send_signal(signal.SIGCONT)

    def lose(self, backend: Backend, job: Job, handle: str) -> None:
        # Its runner killed outright, as a node's sudden death would (the experiment dies
        # with it: its witness follows its parent), then the job: no exit record.
        import subprocess

        import psutil

        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "import runner" in cmd and str(job.exp_dir) in cmd:
                with contextlib.suppress(psutil.Error):
                    p.kill()
        subprocess.run(
            ["scancel", "--signal=KILL", "--full", handle],
            env=self.cluster.client_env(), check=False, capture_output=True,
        )  # fmt: skip

    def preempt(self, backend: Backend, job: Job, handle: str) -> None:
        # Its node fails (taken DOWN): Slurm ends the job as NODE_FAIL.
        deadline = time.monotonic() + 60
        node = ""
        while not node:
            assert time.monotonic() < deadline, "the job never got a node"
            node_file = self.home.experiment_node_file(job.experiment_name)
            text = node_file.read_text() if node_file.exists() else ""
            node = text.split()[0] if text.startswith("node") else ""
            time.sleep(0.1)
        self.cluster.set_node(node, "DOWN", "conformance: preempted")

    def cleanup(self) -> None:
        self.cluster.procs["slurmctld"].send_signal(signal.SIGCONT)  # never left frozen
        self.cluster.scancel_all()
        for node in self.cluster.node_names:
            self.cluster.scontrol("update", f"NodeName={node}", "State=RESUME", check=False)


CASES: dict[str, type[Case]] = {
    c.name: c for c in (FakeCase, LocalCase, DockerCase, RayCase, SlurmCase)
}


@pytest.fixture(params=list(CASES))
def case(
    request: pytest.FixtureRequest, grid_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Case]:
    yield from _case(request, grid_home, monkeypatch)


@pytest.fixture(params=[name for name in CASES if name != "fake"])
def real_case(
    request: pytest.FixtureRequest, grid_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Case]:
    """The backends that run scripts for real (the fake one acts out directives)."""
    yield from _case(request, grid_home, monkeypatch)


def _case(
    request: pytest.FixtureRequest, grid_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Case]:
    home = GridHome(grid_home).ensure()
    c = CASES[request.param](home, monkeypatch)
    if isinstance(c, RayCase):
        c.attach(request.getfixturevalue("ray_cluster"))
    if isinstance(c, SlurmCase):
        c.attach(request.getfixturevalue("slurm_cluster"))
    why = c.available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the {c.name} backend cannot run: {why}")
        pytest.skip(f"the {c.name} backend cannot run here: {why}")
    yield c
    c.cleanup()


@pytest.fixture
def make_job(case: Case, tmp_path: Path) -> Iterator[Callable[..., tuple[Backend, Job]]]:
    """Snapshot a one-file project, build its environment, return a backend and a job."""
    yield from _job_maker(case, tmp_path)


@pytest.fixture
def make_real_job(real_case: Case, tmp_path: Path) -> Iterator[Callable[..., tuple[Backend, Job]]]:
    """``make_job`` on the backends that run scripts for real."""
    yield from _job_maker(real_case, tmp_path)


def _job_maker(case: Case, tmp_path: Path) -> Iterator[Callable[..., tuple[Backend, Job]]]:
    from gridrun.project import take_snapshot

    made: list[tuple[Backend, Job]] = []

    def make(
        script: str,
        args: list[str] | None = None,
        name: str = "job.py",
        env: dict[str, str] | None = None,
        datastores: list[Any] | None = None,
    ) -> Any:
        root = tmp_path / f"proj-{uuid.uuid4().hex[:6]}"
        root.mkdir()
        (root / name).write_text(script)
        snap = take_snapshot(root, case.home)
        req = case.build_request(
            BuildRequest(
                run_name="conformance",
                project_name=root.name,
                python="3.11",
                requirements=[],
                snapshot_hash=snap.hash,
                snapshot_manifest=snap.manifest_path,
                objects_dir=case.home.objects,
            )
        )
        backend = case.backend()
        env_ref = backend.build(req, lambda line: None)
        exp = f"conf-{case.name}-{uuid.uuid4().hex[:8]}"
        exp_dir = case.home.experiment_dir(exp)
        job = Job(
            run_name="conformance",
            experiment_name=exp,
            experiment_id=1,
            env_ref=env_ref,
            script=name,
            args=args or [],
            exp_dir=exp_dir,
            workdir=exp_dir / "workdir",
            snapshot_manifest=snap.manifest_path,
            objects_dir=case.home.objects,
            env={"GRID_EXPERIMENT_NAME": exp, **(env or {})},
            stop_grace=2.0,
            datastores=list(datastores or []),
        )
        made.append((backend, job))
        return backend, job

    yield make
    for backend, job in made:
        with contextlib.suppress(Exception):
            backend.stop(job, None, 0)
        with contextlib.suppress(Exception):
            backend.release(job, None)
