"""What runs on a Ray node for one experiment: a Ray task, shipped with gridrun itself.

The task is the Ray backend's equivalent of the local backend's supervisor:

1. builds (or finds) the run's virtualenv in the node's own cache, keyed exactly as
   locally, under a per-key file lock, so a sweep of 100 experiments builds once per
   node and the other 99 reuse it (their ``[build]`` lines say so);
2. makes the experiment's own working copy (modes, symlinks and modification times
   as in the manifest, so artifact detection works as locally): from the run's
   repository, fetched by this node into its own cache, when the run has an origin,
   the node reaches it and the result has the snapshot's digest
   (:mod:`gridrun.project.refetch`); else from the snapshot package, or, when none
   was shipped (``ray.nodes_fetch: always``), the attempt fails. The experiment's
   log says which, in one line;
3. runs ``python SCRIPT ARGS``, ``bash SCRIPT ARGS`` or ``julia SCRIPT ARGS`` in that
   copy, in its own process group, with datastores mounted read-only as the local
   backend mounts them (a Julia script has no virtualenv: the node's julia runs it);
4. streams every output line, timestamped where it is read, to the run's coordinator
   actor every :data:`REPORT_SECONDS`, and learns from the reply whether ``grid stop``
   asked it to stop (SIGTERM, then SIGKILL after the grace period);
5. returns its exit code with the files it created, packed as a tar, so they come
   back to GRID_HOME from whichever node ran it.

Imports only the standard library and gridrun modules that do: nodes need Ray and
Python, nothing else of gridrun's dependencies (``uv`` is found on the node's PATH
when its Python package is not installed there).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from gridrun.backends.ray.task import TaskSpec
from gridrun.envs.torchbuild import EACH_NODE
from gridrun.specs import TorchBuild, script_command

REPORT_SECONDS = 0.25
SNAPSHOT_TAR = "snapshot.tar"
MANIFEST_JSON = "manifest.json"
# Where a node keeps its environments and working copies; an operator can point it
# elsewhere (a bigger disk) with this variable in the environment of `ray start`.
NODE_DIR_ENV = "GRIDRUN_NODE_DIR"
SCRUBBED = ("PYTHONPATH", "PYTHONHOME", "__PYVENV_LAUNCHER__", "VIRTUAL_ENV")


class Report(Protocol):
    """How the task reports to the run's coordinator (``coordinator.Reporter``).

    A call sends lines and an event, and returns the stop request seen so far
    (``{"stop": True, "grace": s}``) or ``{}``, without waiting for this call's reply;
    ``flush`` waits for every report in flight.
    """

    def __call__(
        self, lines: list[tuple[str, float, str]], info: dict[str, Any]
    ) -> dict[str, Any]: ...

    def flush(self) -> dict[str, Any]: ...


def node_dir() -> Path:
    """This node's gridrun folder: environments and experiments' working copies."""
    raw = os.environ.get(NODE_DIR_ENV)
    if raw:
        return Path(raw)
    return Path(tempfile.gettempdir()) / f"gridrun-node-{os.getuid()}"


class Outbox:
    """Output lines waiting to go to the coordinator, filled by the pump threads."""

    def __init__(self) -> None:
        self._lines: list[tuple[str, float, str]] = []
        self._lock = threading.Lock()

    def put(self, stream: str, text: str) -> None:
        with self._lock:
            self._lines.append((stream, time.time(), text))

    def take(self) -> list[tuple[str, float, str]]:
        with self._lock:
            out, self._lines = self._lines, []
        return out


def unpack_snapshot(package: Path, dest: Path) -> dict[str, Any]:
    """The experiment's own copy of the snapshot; returns the manifest's files."""
    from gridrun.project.manifest import load_manifest

    files = load_manifest(package / MANIFEST_JSON)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(package / SNAPSHOT_TAR) as tar:
        tar.extractall(dest, filter="tar")
    for rel, entry in files.items():
        if entry.link is None and entry.mtime_ns:
            try:
                os.utime(dest / rel, ns=(entry.mtime_ns, entry.mtime_ns))
            except OSError:
                pass
    return files


# What a node that must fetch says instead of falling back (refetch.Outcome's line).
NOT_SHIPPED = "ray.nodes_fetch is always and no snapshot was shipped"


class NoWorkingCopy(Exception):
    """The run's tree could not be fetched and its snapshot was not shipped."""


def working_copy(
    spec: TaskSpec, package: Path, workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """The experiment's working copy: fetched from the run's repository where this node
    can, else the snapshot package's; returns the manifest's files.

    Raises :class:`NoWorkingCopy` with the one line that says why when the fetch fails
    and the package holds no committed file (``spec.must_fetch``).
    """
    if spec.origin is not None and spec.snapshot_digest:
        from gridrun.project.manifest import load_manifest
        from gridrun.project.refetch import FALLBACK, fetch_working_copy

        files = load_manifest(package / MANIFEST_JSON)
        outcome = fetch_working_copy(
            spec.origin,
            node_dir() / "repos",
            files,
            spec.snapshot_digest,
            workdir,
            socket.gethostname(),
            lambda rel, target: _extract_one(package, rel, target),
            fallback=NOT_SHIPPED if spec.must_fetch else FALLBACK,
        )
        if outcome.fetched:
            log(f"gridrun: {outcome.line}")
            return files
        if spec.must_fetch:
            raise NoWorkingCopy(outcome.line)
        log(f"gridrun: {outcome.line}")
    return unpack_snapshot(package, workdir)


def _extract_one(package: Path, rel: str, target: Path) -> None:
    """One file of the snapshot package (an untracked file of a checkout) at ``target``."""
    with tarfile.open(package / SNAPSHOT_TAR) as tar:
        member = tar.getmember(rel)
        if member.issym():
            os.symlink(member.linkname, target)
            return
        source = tar.extractfile(member)
        if source is None:
            raise OSError(f"{rel} is not a file in the snapshot package")
        with source, open(target, "wb") as out:
            shutil.copyfileobj(source, out)


def pack_artifacts(files: dict[str, Any], workdir: Path) -> tuple[bytes, list[str]]:
    """The new and changed files of the working copy, as tar bytes."""
    from gridrun.project.artifacts import find_artifacts

    names = find_artifacts(files, workdir)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in names:
            try:
                tar.add(workdir / rel, arcname=rel, recursive=False)
            except OSError:
                continue
    return buf.getvalue(), names


def build_environment(spec: TaskSpec, log: Callable[[str], None]) -> Path | None:
    """The run's virtualenv on this node, built on first use and cached by its key.

    None for a Julia script, which needs no Python environment.
    """
    from gridrun.envs.venv import build_venv

    if not spec.python_env:
        return None
    key, torch_build = node_torch_build(spec)
    return build_venv(
        node_dir() / "envs",
        key,
        spec.python,
        list(spec.requirements),
        log,
        pip=spec.pip,
        best_effort=spec.best_effort,
        checks=list(spec.checks),
        oldest_python=spec.oldest_python,
        torch_build=torch_build,
    )


def node_torch_build(spec: TaskSpec) -> tuple[str, TorchBuild | None]:
    """(the environment's key on this node, the PyTorch build it gets).

    The head chose the CPU build for an experiment with no GPU; one with GPUs gets the
    CUDA build that this node's driver runs (``nvidia-smi`` here, else the
    ``capacity.cuda`` of the head's ``config.yaml``), so two nodes with different
    drivers build two environments, the key naming the variant.
    """
    from gridrun.envs.torchbuild import choose, driver_cuda

    key = spec.env_key
    build = TorchBuild.from_dict(spec.torch_build)
    gpus = spec.gpus
    if build is None or gpus <= 0 or build.variant != EACH_NODE:
        return key, build
    build = choose(gpus, build.index_url, driver_cuda(spec.cuda))
    return f"{key}-{build.variant or 'pypi'}", build


def _pump(stream: IO[bytes], name: str, outbox: Outbox) -> None:
    for raw in iter(stream.readline, b""):
        outbox.put(name, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
    stream.close()


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def run_experiment(request: dict[str, Any], package: Path, report: Report) -> dict[str, Any]:
    """Run one experiment on this node; see the module docstring for the steps."""
    spec = TaskSpec.from_dict(request)
    outbox = Outbox()
    info = {
        "node_ip": _node_ip(),
        "hostname": socket.gethostname(),
        "node_id": _node_id(),
    }
    reply = report([], {"event": "started", **info})
    if reply.get("stop"):
        return _result(143)
    workdir = node_dir() / "work" / spec.home_label / f"{spec.experiment}-{spec.attempt}"
    code: int | None = None
    error: str | None = None
    files: dict[str, Any] = {}
    ran = False
    try:
        building = time.monotonic()
        try:
            env_dir = build_environment(spec, lambda line: outbox.put("build", line))
        except Exception as exc:  # gridrun's BuildError names the failing package
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            outbox.put("build", f"Build failed on {info['hostname']}: {message}")
            return _result(-1, error=message, lines=outbox.take())
        # A real build: its lines now, and a stop asked meanwhile is seen before the
        # script starts. A cached environment's one line goes with the next report.
        built = time.monotonic() - building > REPORT_SECONDS
        if built and report(outbox.take(), {"event": "progress"}).get("stop"):
            return _result(143, lines=outbox.take())
        if workdir.exists():
            shutil.rmtree(workdir)
        try:
            files = working_copy(spec, package, workdir, lambda line: outbox.put("stderr", line))
        except NoWorkingCopy as exc:  # as a failed build: the attempt fails, saying why
            outbox.put("stderr", f"gridrun: {exc}")
            return _result(-1, error=str(exc), lines=outbox.take())
        code = _run(spec, env_dir, workdir, outbox, report)
        ran = True
    finally:
        artifacts, names = b"", list[str]()
        if files:
            try:
                artifacts, names = pack_artifacts(files, workdir)
            except Exception as exc:
                outbox.put("stderr", f"gridrun: could not pack artifacts: {exc}")
        pending = [] if ran else outbox.take()
        if pending:  # an error ends the task: its lines go first
            report(pending, {"event": "progress"})
        report.flush()  # the script has ended: waiting now holds back nobody's CPU
        shutil.rmtree(workdir, ignore_errors=True)
    # The last lines travel with the result, which the coordinator records before it
    # says the attempt exited: one call fewer per experiment, and none lost.
    return _result(code, artifacts, names, error, outbox.take())


def _result(
    code: int | None,
    artifacts: bytes = b"",
    names: list[str] | None = None,
    error: str | None = None,
    lines: list[tuple[str, float, str]] | None = None,
) -> dict[str, Any]:
    """The task's return value, which the coordinator records (lines first)."""
    return {
        "exit_code": code,
        "artifacts": artifacts,
        "names": names or [],
        "error": error,
        "lines": lines or [],
    }


def _run(
    spec: TaskSpec, env_dir: Path | None, workdir: Path, outbox: Outbox, report: Report
) -> int:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(spec.env)
    if spec.gpus == 0:
        env["CUDA_VISIBLE_DEVICES"] = ""  # as locally: no GPU asked, none visible
    python = "python"
    if env_dir is not None:
        env["VIRTUAL_ENV"] = str(env_dir)
        env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        python = str(env_dir / "bin" / "python")
    argv = [*script_command(spec.script, python), *spec.args]
    if argv[0] == "julia" and shutil.which("julia", path=env.get("PATH")) is None:
        # The submitting machine cannot see the nodes' PATH: this is the first place
        # that can tell. 127 is what a shell answers for a command it cannot find.
        outbox.put(
            "stderr",
            f"gridrun: no julia on the PATH of Ray node {socket.gethostname()}; install "
            "Julia on every node (in the environment of `ray start`) to run .jl scripts",
        )
        return 127
    if spec.datastores:
        from gridrun.backends.base import DatastoreMount
        from gridrun.datastores import local_mount_command

        mounts = [
            DatastoreMount(d.name, d.version, Path(d.source), d.mount_dir) for d in spec.datastores
        ]
        argv, extra = local_mount_command(argv, mounts, workdir)
        env.update(extra)
    proc = subprocess.Popen(
        argv,
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: a stop reaches its children
    )
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, "stdout", outbox), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, "stderr", outbox), daemon=True),
    ]
    for t in pumps:
        t.start()
    kill_at: float | None = None
    while True:
        try:
            code = proc.wait(timeout=REPORT_SECONDS)
            break
        except subprocess.TimeoutExpired:
            pass
        reply = report(outbox.take(), {"event": "progress"})
        if reply.get("stop") and kill_at is None:
            _signal_group(proc.pid, signal.SIGTERM)
            kill_at = time.monotonic() + float(reply.get("grace", 10.0))
        if kill_at is not None and time.monotonic() >= kill_at:
            _signal_group(proc.pid, signal.SIGKILL)
            kill_at = float("inf")
    for t in pumps:
        t.join(timeout=2.0)
    if any(t.is_alive() for t in pumps):
        # Background children still hold the pipes: the experiment is over, end them.
        _signal_group(proc.pid, signal.SIGKILL)
        for t in pumps:
            t.join(timeout=2.0)
    return code


def _node_ip() -> str:
    try:
        import ray

        return str(ray.util.get_node_ip_address())
    except Exception:
        return socket.gethostname()


def _node_id() -> str:
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:
        return ""
