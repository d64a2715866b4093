"""The Ray backend, agent side: experiments as Ray tasks of one driver job per run.

What happens where:

* at submission, :meth:`RayBackend.validate` resolves the address, connects, and
  refuses what the cluster could never run: a request larger than its largest node,
  a snapshot above Ray's package limit, a datastore the nodes cannot see;
* the agent's build step writes the run's package (snapshot tar and manifest) and its
  environment description; the environment itself is built on each node, on first use;
* :meth:`launch` makes sure the run's driver job and coordinator exist, then submits
  the experiment as a task, its message built from the typed specs (:mod:`.task`);
  its handle (the coordinator's name and the attempt's key) is what the agent keeps;
* :meth:`poll` asks each run's coordinator once for all its experiments asked, and
  appends their new output lines to each ``output.log`` with the timestamps the node
  read them at; the offset written so far is kept beside the log, so a restarted
  agent continues where the last one stopped and nothing is written twice;
* :meth:`stop`, :meth:`collect`, :meth:`release` go through the coordinator.

No local process waits on an experiment: the agent's engine watcher
(:mod:`gridrun.agent.watcher`) holds the Ray connection, launches in batches and polls
every running attempt at once; the coordinator actor and the driver job on the
cluster are Ray's own supervision.

Ray is imported lazily: ``grid`` with another backend never loads it.
"""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gridrun.backends.base import (
    AttemptResult,
    Backend,
    BuildLog,
    BuildRequest,
    Capabilities,
    Job,
    PollState,
    TerminationReason,
    write_handle,
)
from gridrun.backends.ray.cluster import Cluster, NodeInfo, coordinator_name
from gridrun.backends.ray.settings import RaySettings
from gridrun.errors import BackendError, DatastoreError, UsageError
from gridrun.fsutil import atomic_write_text
from gridrun.home import ExperimentPaths, GridHome
from gridrun.logs import LogSink
from gridrun.specs import Capacity, RunSpec

ENV_JSON = "environment.json"
OFFSET_FILE = "ray.offset"


@dataclass(frozen=True)
class Handle:
    """What the agent persists to find an experiment on the cluster again."""

    address: str
    coordinator: str
    key: str  # "<experiment id>:<attempt>"

    def dumps(self) -> str:
        return json.dumps(
            {"address": self.address, "coordinator": self.coordinator, "key": self.key}
        )

    @classmethod
    def loads(cls, raw: str) -> Handle:
        d = json.loads(raw)
        return cls(str(d["address"]), str(d["coordinator"]), str(d["key"]))


# ----------------------------------------------------------------- validation
def largest_node(nodes: list[NodeInfo]) -> NodeInfo:
    return max(
        nodes,
        key=lambda n: (
            n.resources.get("GPU", 0),
            n.resources.get("CPU", 0),
            n.resources.get("memory", 0),
        ),
    )


def request_of(cpus: float, gpus: int, memory: int | None, custom: dict[str, float]) -> dict:
    req: dict[str, float] = {"CPU": float(cpus)}
    if gpus:
        req["GPU"] = float(gpus)
    if memory:
        req["memory"] = float(memory)
    req.update(custom)
    return req


def never_fits(request: dict[str, float], nodes: list[NodeInfo]) -> str | None:
    """Why no live node of the cluster could ever run ``request``, or None."""
    alive = [n for n in nodes if n.alive]
    if not alive:
        return "the Ray cluster has no live node"
    if any(all(n.resources.get(k, 0) + 1e-9 >= v for k, v in request.items()) for n in alive):
        return None
    big = largest_node(alive)
    asks = ", ".join(_amount(k, v) for k, v in request.items())
    has = ", ".join(_amount(k, big.resources.get(k, 0)) for k in request)
    return f"asks for {asks}, but no Ray node has that; the largest, {big.label}, has {has}"


def _amount(name: str, value: float) -> str:
    if name == "memory":
        return f"{value / 2**30:.1f} GiB of memory"
    if name in ("CPU", "GPU"):
        return f"{value:g} {name}{'s' if value != 1 else ''}"
    return f"{value:g} '{name}'"


def local_addresses() -> set[str]:
    out = {"127.0.0.1", "localhost", socket.gethostname()}
    try:
        import psutil

        for addrs in psutil.net_if_addrs().values():
            out.update(a.address for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6))
    except Exception:
        pass
    return out


def datastore_visible(source: Path, nodes: list[NodeInfo], settings: RaySettings) -> bool:
    """A datastore can be mounted on the nodes: they are this machine, or share its path."""
    real = os.path.realpath(source)
    if any(real == p or real.startswith(p.rstrip("/") + "/") for p in settings.shared_paths):
        return True
    mine = local_addresses()
    return all(n.ip in mine for n in nodes if n.alive)


# -------------------------------------------------------------------- checks
def check_request(
    address: str,
    cpus: float,
    gpus: int,
    memory: int | None,
    settings: RaySettings,
    datastores: list[Any],
) -> None:
    """Refuse, at submission, a request no node of the cluster could ever run."""
    cluster = Cluster(address)
    nodes = cluster.nodes()
    why = never_fits(request_of(cpus, gpus, memory, dict(settings.resources)), nodes)
    if why:
        raise UsageError(
            f"Each experiment {why}.",
            hint="Ask for less, or add a node that large to the cluster.",
        )
    for d in datastores:
        if not datastore_visible(Path(d.source), nodes, settings):
            raise DatastoreError(
                f"Datastore {d.name} lives in {d.source}, which the Ray cluster's "
                "nodes cannot see.",
                hint="Run on the cluster's machine, or keep GRID_HOME on a shared "
                "filesystem listed in ray.shared_paths of GRID_HOME/config.yaml.",
            )


def _end_if_orphaned(actor: Any) -> None:
    """End a released coordinator whose driver died (its node, or its raylet, went).

    Its driver normally ends it within a second of the release. A dead driver stops
    checking in, which the coordinator notices after ``DRIVER_GONE_SECONDS``: asked
    now and once more after that, so it never lingers on the cluster.
    """
    import ray
    from gridrun.backends.ray.coordinator import DRIVER_GONE_SECONDS

    def check() -> bool:
        try:
            if ray.get(actor.close_if_orphaned.remote(), timeout=30):
                ray.kill(actor)
                return True
        except Exception:
            return True  # already gone
        return False

    if not check():
        # Not a daemon: an agent that goes idle meanwhile waits for it before exiting,
        # or an orphaned coordinator would stay on the cluster.
        timer = threading.Timer(DRIVER_GONE_SECONDS + 2.0, check)
        timer.daemon = False
        timer.start()


def _is_connection_error(exc: BaseException) -> bool:
    try:
        import ray

        return isinstance(exc, ray.exceptions.GetTimeoutError | ray.exceptions.RaySystemError)
    except ImportError:
        return False


def _read_offset(path: Path, key: str) -> int:
    """Lines of attempt ``key`` already in the log: a restart (a new key) starts at 0."""
    try:
        fields = path.read_text().split()
        if len(fields) == 1:  # written by an older gridrun, for the attempt it ran
            return int(fields[0])
        return int(fields[1]) if fields[0] == key else 0
    except (OSError, ValueError, IndexError):
        return 0


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text, fsync=False)  # a cache: rebuilt if lost


# ------------------------------------------------------------- the backend
RAY_JSON = "ray.json"
UNREACHABLE_SECONDS = 300.0
_RAY_LOCK = threading.RLock()
_CLUSTERS: dict[str, Cluster] = {}
_ACTORS: dict[tuple[str, str], Any] = {}


class RayBackend(Backend):
    """Experiments as tasks on an existing Ray cluster (see the module docstring)."""

    name = "ray"
    # The cluster places experiments itself, and a task outlives its supervisor: the
    # coordinator keeps its exit code for a reconciling agent.
    capabilities = Capabilities(
        gpus=True,
        datastores=True,
        shares_machine=False,
        survives_supervisor=True,
        torch_builds=True,
    )
    poll_interval = 0.25
    #: Seconds to wait for the cluster to answer one poll, stop or release.
    request_timeout = 60.0

    def __init__(self, home: GridHome | None = None) -> None:
        super().__init__(home)
        # The Ray connection lives in this process (the agent's, for its watcher), as
        # ``ray.init`` does: one Cluster per address and the run coordinators found so
        # far, shared by every instance (a lookup asks the head, which may not answer).
        self._ray_lock = _RAY_LOCK
        self._clusters = _CLUSTERS
        self._actors = _ACTORS

    # ------------------------------------------------------------ submission
    def _validate(self, spec: RunSpec) -> dict[str, str]:
        """Resolve the address and refuse what the cluster could never run.

        Returns the backend options to keep in the run's spec.
        """
        from gridrun.backends.ray.package import check_package_size
        from gridrun.backends.ray.settings import (
            load_settings,
            resolve_address,
            resolve_nodes_fetch,
        )

        settings = load_settings(self.home.config_path)
        address = resolve_address(spec.backend_options.get("ray_address"), settings)
        nodes_fetch = resolve_nodes_fetch(spec.backend_options.get("ray_nodes_fetch"), settings)
        # With nodes that fetch, the committed files do not travel: the package's size
        # is checked when it is built (_build), once the untracked files are known.
        fetched = nodes_fetch == "always" and spec.repo is not None
        if spec.snapshot_manifest.name and not fetched:  # a draft spec has no snapshot yet
            check_package_size(spec.snapshot_manifest)
        check_request(address, spec.cpus, spec.gpus, spec.memory, settings, list(spec.datastores))
        return {"ray_address": address, "ray_nodes_fetch": nodes_fetch}

    def _capacity(self) -> Capacity | None:
        return None  # the cluster's largest node is checked in _validate

    # ------------------------------------------------------------------ build
    def environment_key(self, req: BuildRequest) -> str:
        from gridrun.envs.key import environment_key
        from gridrun.envs.pipconf import load_pip_config
        from gridrun.specs import NO_PYTHON_ENV

        if not req.python_env:  # a Julia script: each node's julia, no virtualenv
            return NO_PYTHON_ENV
        extra = load_pip_config().fingerprint()
        if req.torch_build is not None:  # a node may add the CUDA build its driver runs
            extra += f"|torch|{req.torch_build.key()}"
        return environment_key(req.python, list(req.requirements), extra)

    def _build(self, req: BuildRequest, log: BuildLog) -> str:
        """Write the run's package; the environment is built on each node on first use."""
        from gridrun.backends.ray.node import SNAPSHOT_TAR
        from gridrun.backends.ray.package import build_package, check_package_size
        from gridrun.backends.ray.settings import load_settings
        from gridrun.config import load_machine_config
        from gridrun.project.refetch import run_origin

        address = req.backend_options.get("ray_address")
        if not address:
            raise BackendError("The run has no Ray address; submit it again.")
        # A run submitted before ray.nodes_fetch existed has none: auto, as it ran then.
        nodes_fetch = req.backend_options.get("ray_nodes_fetch") or "auto"
        # Nodes that reach the repository fetch the commit themselves (node.py). With
        # auto the whole snapshot still travels: it is the job's working_dir, which Ray
        # hands every node before a task starts, and the tree a node falls back on.
        # With always only what the repository cannot give travels, and a node that
        # cannot fetch fails; with never, no node fetches.
        origin = None
        if nodes_fetch != "never":
            origin = run_origin(self.home, req.run_name, req.repo, req.commit)
        must_fetch = nodes_fetch == "always" and origin is not None
        only = set(origin.untracked) if must_fetch and origin is not None else None
        # One package per snapshot (a run has one; a rebuild after a crash reuses it),
        # with its settings beside it: what each of its tasks runs is its own job's.
        where = self.home.run_dir(req.run_name) / "ray" / (req.snapshot_hash[:16] or "snapshot")
        if only is not None:
            check_package_size(req.snapshot_manifest, only=only)
        package = build_package(
            req.snapshot_manifest,
            req.objects_dir,
            where / ("package-fetch" if must_fetch else "package"),
            only=only,
        )
        settings = load_settings(self.home.config_path)
        key = self.environment_key(req)
        (package.parent / RAY_JSON).write_text(
            json.dumps(
                {
                    "address": address,
                    "env_key": key,
                    "python": req.python,
                    "requirements": list(req.requirements),
                    "python_env": req.python_env,
                    # Inferred requirements: each node builds as leniently as locally.
                    "best_effort": req.best_effort,
                    "checks": list(req.checks),
                    "oldest_python": req.oldest_python,
                    "resources": dict(settings.resources),
                    "torch_build": req.torch_build.to_dict() if req.torch_build else None,
                    # For a node whose nvidia-smi does not answer (node.node_torch_build).
                    "cuda": load_machine_config(self.home.config_path).cuda,
                    "origin": origin.to_dict() if origin else None,
                    "snapshot_hash": req.snapshot_hash,
                    "must_fetch": must_fetch,
                }
            )
        )
        size = (package / SNAPSHOT_TAR).stat().st_size
        if must_fetch and origin is not None:
            log(
                f"Packaged for Ray without the committed files ({_size(size)}): {package}; "
                f"ray.nodes_fetch is always, so every node fetches {origin.label}"
            )
        else:
            log(f"Snapshot packaged for Ray ({_size(size)}): {package}")
        if nodes_fetch == "always" and origin is None:
            log(
                "ray.nodes_fetch is always, but this run cannot be fetched from a repository "
                "(a folder, or a commit on no remote branch): its snapshot travels"
            )
        elif nodes_fetch == "never" and (req.repo or req.commit):
            log("ray.nodes_fetch is never: every node runs the uploaded snapshot")
        elif origin is not None and not must_fetch:
            log(f"Nodes that reach {origin.url} fetch {origin.label} themselves")
        if req.python_env:
            log(f"Environment {key} is built on each Ray node on first use, then cached there")
        else:
            log("A Julia script: no Python environment; it runs with each node's julia on PATH")
        return str(package)

    # -------------------------------------------------------------------- run
    def _run_info(self, job: Job) -> dict[str, Any]:
        info: dict[str, Any] = json.loads((Path(job.env_ref).parent / RAY_JSON).read_text())
        return info

    def _cluster(self, address: str) -> Cluster:
        with self._ray_lock:
            cluster = self._clusters.get(address)
            if cluster is None:
                cluster = self._clusters[address] = Cluster(address)
            return cluster

    def _actor(self, address: str, name: str) -> Any | None:
        """The run's coordinator actor, None when its driver is gone; kept once found."""
        known = self._actors.get((address, name))
        if known is not None:
            return known
        actor = self._cluster(address).coordinator(name)
        if actor is not None:
            self._actors[(address, name)] = actor
        return actor

    def _forget_actor(self, address: str, name: str) -> None:
        self._actors.pop((address, name), None)

    def _launch(self, job: Job, sink: LogSink) -> str:
        import secrets

        import ray
        from gridrun.backends.ray.task import task_request

        info = self._run_info(job)
        attempt = secrets.token_hex(4)
        package = Path(job.env_ref)
        name = coordinator_name(self.home.root, job.run_name, package)
        handle = Handle(info["address"], name, f"{job.experiment_id}:{attempt}")
        # Persisted before the launch: an agent that dies during it leaves a handle
        # that reconciliation can ask the cluster about.
        write_handle(job, handle.dumps())
        spec, options = task_request(self.home.root, job, info, name, attempt)
        deadline = time.monotonic() + 120
        while True:
            actor = self._actor(handle.address, name)
            if actor is None:
                with self._ray_lock:  # one driver per run, however many launch at once
                    actor = self._actor(handle.address, name)
                    if actor is None:
                        actor = self._cluster(handle.address).start_driver(name, package)
                        self._actors[(handle.address, name)] = actor
            try:
                state = ray.get(
                    actor.submit.remote(handle.key, spec.to_dict(), options.to_dict()),
                    timeout=60,
                )
            except ray.exceptions.RayActorError:
                state = "closed"  # its driver ended meanwhile
            if state != "closed":
                return handle.dumps()
            self._forget_actor(handle.address, name)
            if time.monotonic() > deadline:
                raise BackendError(f"The run's Ray driver {name} would not take experiments.")
            time.sleep(0.2)  # the closing driver is exiting; its name frees in a moment

    def _wait(self, job: Job, handle: str, sink: LogSink) -> AttemptResult:
        """Follow the task until it ends; an unreachable cluster is waited out, a while.

        A task the cluster lost (its node died, the run's driver went away), not the
        script, comes back ``gone`` with that reason: a preemption, which
        --auto_resume runs again. The agent's engine watcher does not wait: it polls
        every running attempt at once (:mod:`gridrun.agent.watcher`).
        """
        address = Handle.loads(handle).address
        unreachable_since: float | None = None
        while True:
            (state,) = self.poll([(job, handle)])
            if state.state == PollState.EXITED:
                return state
            if state.state == PollState.GONE:
                sink.write("stderr", f"gridrun: {state.detail}")
                return state
            if state.state == PollState.UNKNOWN:
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > UNREACHABLE_SECONDS:
                    raise BackendError(
                        f"The Ray cluster at {address} did not answer for "
                        f"{UNREACHABLE_SECONDS:.0f}s; the experiment's exit code is unknown."
                    )
            else:
                unreachable_since = None
            time.sleep(self.poll_interval)

    def _poll(self, job: Job, handle: str) -> AttemptResult:
        (result,) = self._poll_many([(job, handle)])
        return result

    def _poll_many(self, items: Sequence[tuple[Job, str]]) -> list[AttemptResult]:
        """One call to each run's coordinator for all its attempts asked; each answer
        also appends the attempt's new output lines to its log."""
        by_run: dict[tuple[str, str], list[int]] = {}
        handles = [Handle.loads(h) for _, h in items]
        for i, h in enumerate(handles):
            by_run.setdefault((h.address, h.coordinator), []).append(i)
        out: list[AttemptResult] = [AttemptResult.unknown()] * len(items)
        for (address, name), idx in by_run.items():
            dirs = {handles[i].key: items[i][0].exp_dir for i in idx}
            offsets = {k: _read_offset(d / OFFSET_FILE, k) for k, d in dirs.items()}
            try:
                answers = self._ask_coordinator(address, name, offsets)
            except Exception as exc:  # the cluster did not answer: never taken for gone
                why = f"the Ray cluster does not answer: {exc or type(exc).__name__}"
                for i in idx:
                    out[i] = AttemptResult.unknown(why)
                continue
            for i in idx:
                h = handles[i]
                answer = None if answers is None else answers.get(h.key)
                out[i] = self._observe(h, dirs[h.key], offsets[h.key], answer)
        return out

    def _ask_coordinator(
        self, address: str, name: str, offsets: dict[str, int]
    ) -> dict[str, dict] | None:
        """The coordinator's answers for ``offsets``' keys; None when the driver is gone."""
        import ray

        actor = self._actor(address, name)
        if actor is None:
            return None
        try:
            answers: dict[str, dict] = ray.get(
                actor.poll.remote(offsets), timeout=self.request_timeout
            )
            return answers
        except ray.exceptions.RayActorError as exc:
            # Gone only if the name is gone too: a coordinator that is merely slow or
            # briefly unreachable (ActorUnavailableError, a worker restarting, a busy
            # head while a node dies) still holds its experiments: asked again.
            self._forget_actor(address, name)
            if self._cluster(address).coordinator(name) is None:
                return None
            raise BackendError(f"The run's coordinator {name} did not answer: {exc}") from exc

    def _observe(
        self, handle: Handle, exp_dir: Path, offset: int, answer: dict | None
    ) -> AttemptResult:
        """One coordinator answer: its new lines appended to the log, its node noted."""
        if answer is None or answer.get("state") == "unknown":
            # The cluster's record of the attempt is gone. When the node it ran on is
            # dead, that is the reason (its driver may have gone with it); otherwise
            # the run's driver itself ended or forgot it.
            why = self._node_death(handle.address, exp_dir)
            if why is not None:
                return AttemptResult.gone(why, TerminationReason.NODE_DIED)
            if answer is None:
                why = f"lost: the run's Ray driver {handle.coordinator} ended"
            return AttemptResult.gone(why or "lost: the run's Ray driver no longer knows it")
        lines = answer.get("lines") or []
        start = int(answer.get("offset", 0))
        skip = max(0, offset - start)
        node = ""
        if answer.get("node_id"):
            # Nodes of one machine share its address: the node id tells them apart.
            node = f"{answer.get('node_ip') or answer.get('hostname')} ({answer['node_id'][:8]})"
        if node and node != _read_text(ExperimentPaths(exp_dir).node):
            _write_text(ExperimentPaths(exp_dir).node, node)
        if len(lines) > skip:
            with LogSink(ExperimentPaths(exp_dir).output_log) as sink:
                for stream, ts, text in lines[skip:]:
                    sink.write(stream, text, ts=ts)
            _write_text(exp_dir / OFFSET_FILE, f"{handle.key} {start + len(lines)}")
        state = answer["state"]
        if state == "queued" and not node:  # Ray holds it until a node has the resources
            why = "queued in Ray: waiting for a node with the resources"
            if _read_text(ExperimentPaths(exp_dir).node) != why:
                _write_text(ExperimentPaths(exp_dir).node, why)
            return AttemptResult(PollState.RUNNING, detail=why)
        if state in ("queued", "running"):
            return AttemptResult.running(node)
        if state == "exited":
            code = answer.get("exit_code")
            return AttemptResult.exited(-1 if code is None else int(code), node=node)
        # "lost": the task failed with its worker or its node.
        why = str(answer.get("error") or "lost: the run's Ray driver no longer knows it")
        return replace(AttemptResult.gone(why, TerminationReason.NODE_DIED), node=node)

    def _node_death(self, address: str, exp_dir: Path) -> str | None:
        """``lost: Ray node ... died`` when the node the experiment last ran on is dead."""
        node = _read_text(ExperimentPaths(exp_dir).node)  # "ip (id8)", written by earlier polls
        if "(" not in node:
            return None
        short = node.rsplit("(", 1)[1].rstrip(")")
        try:
            same = [n for n in self._cluster(address).nodes() if n.node_id.startswith(short)]
        except Exception:
            return None
        if same and not any(n.alive for n in same):
            return f"lost: Ray node {node} died"
        return None

    def _stop(self, job: Job, handle: str, grace: float) -> None:
        import ray

        h = Handle.loads(handle)
        actor = self._actor(h.address, h.coordinator)
        if actor is not None:
            ray.get(actor.stop.remote(h.key, grace), timeout=30)

    def _collect(self, job: Job, handle: str | None, keep_workdir: bool) -> list[str]:
        import ray

        if not handle:
            return []
        h = Handle.loads(handle)
        actor = self._actor(h.address, h.coordinator)
        if actor is None:
            return []
        blob = ray.get(actor.artifacts.remote(h.key), timeout=600)
        if not blob:
            return []
        job.artifacts_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            names = [m.name for m in tar.getmembers() if not m.isdir()]
            tar.extractall(job.artifacts_dir, filter="data")
        return names

    def _release(self, job: Job, handle: str | None) -> None:
        """Forget the attempt; the run's driver exits once it has nothing left."""
        import ray

        if not handle:
            return
        h = Handle.loads(handle)
        actor = self._actor(h.address, h.coordinator)
        if actor is None:
            return
        try:
            ray.get(actor.forget.remote(h.key), timeout=30)
            if ray.get(actor.release_if_idle.remote(), timeout=30):
                self._forget_actor(h.address, h.coordinator)
                _end_if_orphaned(actor)
        except Exception:
            pass
