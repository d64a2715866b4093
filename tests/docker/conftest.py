"""Fixtures for the docker backend's tests: a real engine, the offline base image.

Tests marked ``docker`` are skipped when no engine answers, unless ``CI`` is set: CI
starts one (``.ci/docker-engine.sh``), so there a missing engine fails every docker
test loudly instead of skipping it. They build on ``gridrun-test-base:bookworm``
(debootstrapped by that script) because no registry is reachable.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gridrun.backends.base import BuildRequest, Job
from gridrun.home import GridHome

BASE_IMAGE = "gridrun-test-base:bookworm"
PROJECT_PREFIX = "gridrun-test"
HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
TARBALL = Path(os.environ.get("GRIDRUN_CI_CACHE", "/var/cache/gridrun-ci")) / (
    "gridrun-test-base-bookworm.tar"
)


def _engine_error() -> str | None:
    import docker
    from gridrun.backends.docker.backend import _probe_socket
    from gridrun.errors import BackendError

    try:
        _probe_socket()  # the SDK leaks a socket when the engine is not there
    except BackendError as exc:
        return exc.message

    client = docker.APIClient(**docker.utils.kwargs_from_env(), version="1.41", timeout=5)
    try:
        client.ping()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()


WHERE = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@functools.cache
def engine_error() -> str | None:
    """Asked once, by the first docker test that runs: never at import or collection,
    so that ``-m unit`` and every other selection without docker tests asks nothing."""
    return _engine_error()


@pytest.fixture(autouse=True)
def _require_engine(request: pytest.FixtureRequest) -> None:
    """Docker tests skip when no engine answers, unless ``CI`` is set: CI starts one
    (``.ci/docker-engine.sh``), so there a missing engine fails them loudly."""
    if request.node.get_closest_marker("docker") is None:
        return
    error = engine_error()
    if error is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but no Docker engine answers at {WHERE}: {error}")
    pytest.skip(f"no Docker engine answers at {WHERE}")


@pytest.fixture(scope="session")
def api() -> Iterator[Any]:
    import docker

    client = docker.APIClient(**docker.utils.kwargs_from_env(), version="1.41", timeout=120)
    try:
        client.inspect_image(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{BASE_IMAGE} is not in the engine: run .ci/docker-engine.sh first.")
    yield client
    _remove_test_images(client)
    client.close()


def _remove_test_images(client: Any) -> None:
    """Remove what the tests built: tagged test images, then their dependency stages."""
    import docker

    for img in client.images(filters={"label": "gridrun=1"}):
        if (img.get("Labels") or {}).get("gridrun.project", "").startswith(PROJECT_PREFIX):
            for tag in img.get("RepoTags") or []:
                with contextlib.suppress(docker.errors.APIError):
                    client.remove_image(tag, force=True)
    for img in client.images(filters={"label": ["gridrun=1", "gridrun.stage=deps"]}):
        if not [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]:
            with contextlib.suppress(docker.errors.APIError):
                client.remove_image(img["Id"])


@pytest.fixture
def home(grid_home: Path) -> GridHome:
    return GridHome(grid_home).ensure()


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    def make(files: dict[str, str], name: str = "proj") -> Path:
        root = tmp_path / name
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    return make


@pytest.fixture
def make_request(home: GridHome) -> Callable[..., BuildRequest]:
    """A BuildRequest for a project folder, snapshotted into ``home`` now."""
    from gridrun.project import take_snapshot

    def make(root: Path, requirements: list[str] | None = None, **kw: Any) -> BuildRequest:
        snap = take_snapshot(root, home)
        fields: dict[str, Any] = {
            "run_name": "run-1",
            "project_name": f"{PROJECT_PREFIX}-{root.name}",
            "python": "3.11",
            "requirements": requirements or [],
            "snapshot_hash": snap.hash,
            "snapshot_manifest": snap.manifest_path,
            "objects_dir": home.objects,
            "base_image": BASE_IMAGE,
        }
        fields.update(kw)
        return BuildRequest(**fields)

    return make


@pytest.fixture
def make_job(home: GridHome) -> Callable[..., Job]:
    def make(req: BuildRequest, tag: str, script: str, args: list[str], **kw: Any) -> Job:
        name = kw.pop("name", f"exp-{uuid.uuid4().hex[:8]}")
        exp_dir = home.experiment_dir(name)
        exp_dir.mkdir(parents=True, exist_ok=True)
        fields: dict[str, Any] = {
            "run_name": req.run_name,
            "experiment_name": name,
            "experiment_id": 1,
            "env_ref": tag,
            "script": script,
            "args": args,
            "exp_dir": exp_dir,
            "workdir": exp_dir / "workdir",
            "snapshot_manifest": req.snapshot_manifest,
            "objects_dir": req.objects_dir,
            "env": {"GRID_EXPERIMENT_NAME": name, "CUDA_VISIBLE_DEVICES": ""},
        }
        fields.update(kw)
        return Job(**fields)

    return make


@pytest.fixture
def marker_cert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """The host CA bundle plus a unique comment line, as the pip ``cert`` setting.

    OpenSSL ignores text between certificates, so pip still works; the marker is how
    a test finds copies of the bundle, and it makes the dependency layers new (cold).
    """
    marker = f"gridrun-test-marker-{uuid.uuid4().hex}"
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(HOST_BUNDLE.read_bytes() + f"\n# {marker}\n".encode())
    monkeypatch.setenv("PIP_CERT", str(bundle))
    return bundle, marker


class BuildLog:
    """Collects [build] lines, with the time each arrived."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def build_log() -> Callable[[], BuildLog]:
    return BuildLog


@pytest.fixture
def second_engine(tmp_path: Path):
    """A private dockerd of this test's own, so restarting it disturbs no other test."""
    if not TARBALL.exists() or shutil.which("dockerd") is None:
        pytest.fail(f"{TARBALL} or dockerd missing: run .ci/docker-engine.sh first")
    probe = ["unshare", "--net", "--mount", "true"]
    if subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.fail("unshare --net --mount does not work here; the engine-restart test needs it")
    root = Path("/tmp") / f"grd-{os.getpid()}"
    root.mkdir(exist_ok=True)
    sock = root / "d.sock"
    host = f"unix://{sock}"
    # Its own network and mount namespaces: two engines on one host must not fight over
    # docker0, and every mount it makes vanishes with it.
    pidfile = root / "d.pid"
    args = [
        "unshare",
        "--net",
        "--mount",
        "--propagation",
        "private",
        "--fork",
        "dockerd",
        "--host",
        host,
        "--data-root",
        str(tmp_path / "data"),
        "--exec-root",
        str(root / "exec"),
        "--pidfile",
        str(pidfile),
        "--bridge",
        "none",
        "--iptables=false",
    ]
    env = dict(os.environ, DOCKER_HOST=host)

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        for _ in range(60):
            if subprocess.run(["docker", "version"], env=env, capture_output=True).returncode == 0:
                return proc
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError("second dockerd did not start")

    proc = start()
    subprocess.run(
        f"docker import '{TARBALL}' {BASE_IMAGE}",
        shell=True,
        env=env,
        check=True,
        capture_output=True,
    )
    state = {"proc": proc}

    def stop() -> None:
        # unshare does not forward signals: stop dockerd itself, unshare then exits.
        with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        try:
            state["proc"].wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(state["proc"].pid, signal.SIGKILL)
            state["proc"].wait()

    def restart(kill: bool = False) -> None:
        """Stop the engine (SIGTERM: it stops its containers; SIGKILL: it just dies)."""
        if kill:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
            state["proc"].wait(timeout=60)
        else:
            stop()
        state["proc"] = start()

    yield host, restart
    stop()
    shutil.rmtree(root, ignore_errors=True)
