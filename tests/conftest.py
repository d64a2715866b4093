"""Fixtures shared by every test: a private GRID_HOME and a real ``grid`` process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from raycluster import LocalRayCluster
from slurmcluster import LocalSlurmCluster
from unitguard import ProcessStarted, no_processes

PROBE = os.environ.get("GRIDRUN_PROBE_UNIT")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> object:
    with _guard(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> object:
    with _guard(item):
        return (yield)


def _guard(item: pytest.Item) -> object:
    """Unit tests may start no process (tests/unitguard.py); probing records who does."""
    if PROBE:

        def note(what: str) -> None:
            with open(PROBE, "a") as f:
                f.write(f"{item.nodeid}\t{what}\n")
            raise ProcessStarted(what)  # enough is known: end the test here

        return no_processes(on_start=note)
    if item.get_closest_marker("unit") is not None:
        return no_processes()
    return contextlib.nullcontext()


@dataclass
class GridCLI:
    """Runs the real ``grid`` command line in a subprocess against one GRID_HOME."""

    home: Path
    env: dict[str, str]

    def __call__(
        self,
        *args: str,
        cwd: Path | None = None,
        check: bool = True,
        timeout: float = 180,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "gridrun", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"grid {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str, cwd: Path | None = None) -> object:
        return json.loads(self("-o", "json", *args, cwd=cwd).stdout)

    def wait(self, name: str, timeout: float = 120) -> dict:
        """Poll ``grid -o json status NAME`` until nothing in it is active."""
        deadline = time.monotonic() + timeout
        while True:
            data = self.json("status", name)
            assert isinstance(data, dict)
            if all(
                e["status"] not in ("building", "pending", "running") for e in data["experiments"]
            ):
                return data
            if time.monotonic() > deadline:
                log = self.home / "agent.log"
                raise AssertionError(
                    f"{name} still active after {timeout}s: {data}\nagent log:\n"
                    + (log.read_text() if log.exists() else "-")
                )
            time.sleep(0.2)

    def wait_for_line(self, name: str, text: str, timeout: float = 60) -> None:
        """Poll ``grid logs NAME`` until ``text`` appears in it."""
        deadline = time.monotonic() + timeout
        while text not in self("logs", name).stdout:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} never printed {text!r} in {timeout}s")
            time.sleep(0.1)

    def shutdown(self) -> None:
        """Stop the agent and any supervisor or experiment left behind by a test."""
        from gridrun.processes import read_ref

        agent = read_ref(self.home / "agent.pid")
        if agent is not None:
            agent.signal(signal.SIGTERM)  # only if it is still that agent
        import psutil

        for proc in psutil.process_iter(["pid", "environ", "cmdline"]):
            try:
                env = proc.info["environ"] or {}
                cmd = " ".join(proc.info["cmdline"] or [])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            ours = env.get("GRID_HOME") == str(self.home) or str(self.home) in cmd
            if ours and proc.pid != os.getpid():
                try:
                    proc.kill()
                except psutil.NoSuchProcess:
                    pass


@pytest.fixture
def grid_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "grid home"
    home.mkdir()
    (home / "config.yaml").write_text("stop_grace_seconds: 3\nagent_idle_seconds: 5\n")
    monkeypatch.setenv("GRID_HOME", str(home))
    return home


@pytest.fixture
def grid(grid_home: Path) -> Iterator[GridCLI]:
    env = dict(os.environ, GRID_HOME=str(grid_home), PYTHONUNBUFFERED="1")
    env.pop("COLUMNS", None)
    env["COLUMNS"] = "250"  # wide tables, so assertions see whole cells
    cli = GridCLI(grid_home, env)
    yield cli
    cli.shutdown()


@pytest.fixture
def weird_tmp_path(tmp_path: Path) -> Path:
    """A folder whose path has spaces, quotes and unicode: catches quoting bugs."""
    p = tmp_path / "we ird 'quo\"ted' ünï©ode"
    p.mkdir()
    return p


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayCluster]:
    """One real local Ray cluster for the session: a head with 1 CPU and a worker with
    2 CPUs and a custom resource ``special``, on private ports and a private temp dir.

    Started on first use (a minute on a busy machine), by the Ray tests and the Ray case
    of the conformance suite alike, and stopped at the end.
    """
    reuse = os.environ.get("GRIDRUN_TEST_RAY_CLUSTER")
    if reuse:  # by hand: a cluster already started, {"gcs": ..., "dash": ...} in a file
        info = json.loads(Path(reuse).read_text())
        yield LocalRayCluster(gcs_address=info["gcs"], dashboard_url=info["dash"])
        return
    cluster = LocalRayCluster(head_cpus=1, workers=[{"cpus": 2, "resources": {"special": 1}}])
    try:
        cluster.start()
        yield cluster
    finally:
        _disconnect_ray()  # tests that validate in-process connected this process
        cluster.stop()


def _disconnect_ray() -> None:
    """End this process's Ray connection before its cluster goes, or Ray's core worker
    ends the process (exit code and all) once it finds the cluster gone."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[LocalSlurmCluster]:
    """One real Slurm cluster for the session (munged, slurmctld, two slurmd nodes of 4
    CPUs), on private ports and a private temp dir; started on first use (about a
    second; ``tests/slurmcluster.py`` installs Debian's packages as root when missing)
    by the Slurm tests and the Slurm case of the conformance suite, stopped at the end.
    """
    cluster = LocalSlurmCluster(nodes=2, cpus=4)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
