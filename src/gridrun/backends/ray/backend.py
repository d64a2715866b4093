"""The Ray backend, agent side: experiments as Ray tasks of one driver job per run.

What happens where:

* at submission, :meth:`RayBackend.validate` resolves the address, connects, and
  refuses what the cluster could never run: a request larger than its largest node,
  a snapshot above Ray's package limit, a datastore the nodes cannot see;
* the agent's build step writes the run's package (snapshot tar and manifest) and its
  environment description; the environment itself is built on each node, on first use;
* :meth:`launch` makes sure the run's driver job and coordinator exist, then submits
  the experiment as a task (its handle, the coordinator's name and the attempt's key,
  is what the agent persists);
* :meth:`poll` asks the coordinator, for every experiment of the run at once, and
  appends their new output lines to each ``output.log`` with the timestamps the node
  read them at; the offset written so far is kept beside the log, so a restarted
  agent continues where the last one stopped and nothing is written twice; a
  supervisor's :meth:`wait` is a long poll, answered by the bridge's watcher
  (:mod:`.watch`) when the experiment ends, so waiting costs this machine nothing;
* :meth:`stop`, :meth:`collect_artifacts`, :meth:`release` go through the coordinator.

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
from gridrun.logs import LogSink
from gridrun.specs import Capacity, RunSpec

ENV_JSON = "environment.json"
OFFSET_FILE = "ray.offset"
NODE_FILE = "node"  # GridHome.experiment_node_file: shown by `grid status RUN`


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


# -------------------------------------------------------------------- backend
class RayCoordinators:
    """The agent's view of the run coordinators it talks to (one per run)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.actors: dict[str, Any] = {}
        self.keys: dict[str, dict[str, int]] = {}  # coordinator -> key -> offset
        self.cache: dict[str, tuple[float, dict[str, dict]]] = {}
        self.lock = threading.RLock()

    def actor(self, name: str) -> Any | None:
        # Known already: no lock, so a launch, stop or release never queues behind a
        # poll whose call to the cluster is out (the lock is held during it).
        known = self.actors.get(name)
        if known is not None:
            return known
        with self.lock:
            actor = self.actors.get(name)
            if actor is None:
                actor = self.cluster.coordinator(name)
                if actor is not None:
                    self.actors[name] = actor
            return actor

    def ensure(self, name: str, package: Path) -> Any:
        with self.lock:
            actor = self.actor(name)
            if actor is None:
                actor = self.cluster.start_driver(name, package)
                self.actors[name] = actor
            return actor

    def forget_actor(self, name: str) -> None:
        with self.lock:
            self.actors.pop(name, None)
            self.cache.pop(name, None)

    def poll(self, name: str, key: str, offset: int, timeout: float = 30.0) -> dict | None:
        """The coordinator's answer for ``key``, polled for all its known keys at once.

        Polls of one run share calls, but an answer is never older than the question:
        one call serves every poll that arrived before it started (they queue on the
        lock while the previous call is out), and a poll that arrives during a call
        makes the next. So many supervisors polling every quarter second cost the
        coordinator a call each time round, not one per experiment, and a cluster that
        stopped answering is seen by the very next poll.
        """

        asked = time.monotonic()
        with self.lock:
            keys = self.keys.setdefault(name, {})
            keys[key] = offset
            cached = self.cache.get(name)
            if cached and cached[0] >= asked and key in cached[1]:
                return cached[1].pop(key)
            called = self._poll_call(name, keys, timeout)
            if called is None:
                return None
            self.cache[name] = called
            return called[1].pop(key, None)

    def poll_many(
        self, name: str, offsets: dict[str, int], timeout: float = 30.0
    ) -> dict[str, dict] | None:
        """The coordinator's answers for ``offsets``' keys, in one call made now.

        For the bridge's watcher (:mod:`.watch`), which asks for every waiting
        experiment of the run at once; None when the run's driver is gone.
        """

        with self.lock:
            keys = self.keys.setdefault(name, {})
            keys.update(offsets)
            called = self._poll_call(name, keys, timeout)
            if called is None:
                return None
            answers = {k: called[1].pop(k) for k in offsets if k in called[1]}
            self.cache[name] = called
            return answers

    def _poll_call(
        self, name: str, keys: dict[str, int], timeout: float
    ) -> tuple[float, dict[str, dict]] | None:
        """One call to the coordinator's poll: (when it started, its answers), or None
        when the run's driver is gone. Called with ``self.lock`` held."""
        import ray

        actor = self.actor(name)
        if actor is None:
            return None
        started = time.monotonic()
        try:
            return started, ray.get(actor.poll.remote(dict(keys)), timeout=timeout)
        except ray.exceptions.RayActorError as exc:
            # Gone only if the name is gone too: a coordinator that is merely slow or
            # briefly unreachable (ActorUnavailableError, a worker restarting, a busy
            # head while a node dies) still holds its experiments: asked again.
            self.forget_actor(name)
            if self.cluster.coordinator(name) is None:
                return None
            raise BackendError(f"The run's coordinator {name} did not answer: {exc}") from exc


class RayBackendCore:
    """The mechanics, independent of how the agent calls them."""

    def __init__(self) -> None:
        self._clusters: dict[str, RayCoordinators] = {}
        self._lock = threading.Lock()
        self._watcher: Any = None

    def wait(self, handle: Handle, exp_dir: Path, timeout: float, wait: float) -> AttemptResult:
        """The experiment's state once it is no longer running, or after ``wait`` s."""
        from gridrun.backends.ray.watch import Watcher

        with self._lock:
            if self._watcher is None:
                self._watcher = Watcher(self)
        observed: AttemptResult = self._watcher.wait(handle, exp_dir, timeout, wait)
        return observed

    def coordinators(self, address: str) -> RayCoordinators:
        with self._lock:
            c = self._clusters.get(address)
            if c is None:
                c = self._clusters[address] = RayCoordinators(Cluster(address))
            return c

    # ---------------------------------------------------------- submission
    def check_request(
        self,
        address: str,
        cpus: float,
        gpus: int,
        memory: int | None,
        settings: RaySettings,
        datastores: list[Any],
    ) -> None:
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

    # -------------------------------------------------------------- running
    def launch(
        self,
        address: str,
        home_root: Path,
        run_name: str,
        package: Path,
        experiment_id: int,
        attempt: str,
        spec: dict[str, Any],
        options: dict[str, Any],
    ) -> Handle:
        import ray

        coords = self.coordinators(address)
        name = coordinator_name(home_root, run_name, package)
        handle = Handle(address, name, f"{experiment_id}:{attempt}")
        deadline = time.monotonic() + 120
        while True:
            actor = coords.ensure(name, package)
            try:
                state = ray.get(actor.submit.remote(handle.key, spec, options), timeout=60)
            except ray.exceptions.RayActorError:
                state = "closed"  # its driver ended meanwhile
            if state != "closed":
                return handle
            coords.forget_actor(name)
            if time.monotonic() > deadline:
                raise BackendError(f"The run's Ray driver {name} would not take experiments.")
            time.sleep(0.2)  # the closing driver is exiting; its name frees in a moment

    def poll(self, handle: Handle, exp_dir: Path, timeout: float = 30.0) -> AttemptResult:
        """The experiment's state on the cluster; appends its new lines to its log."""
        try:
            coords = self.coordinators(handle.address)
            offset = _read_offset(exp_dir / OFFSET_FILE, handle.key)
            answer = coords.poll(handle.coordinator, handle.key, offset, timeout)
        except BackendError:
            return AttemptResult.unknown("the Ray cluster does not answer")
        except Exception as exc:  # the cluster did not answer: never taken for gone
            if _is_connection_error(exc):
                return AttemptResult.unknown("the Ray cluster does not answer")
            raise
        return self._observe(handle, exp_dir, offset, answer)

    def poll_many(
        self, items: list[tuple[Handle, Path]], timeout: float = 30.0
    ) -> list[AttemptResult]:
        """:meth:`poll` for experiments of one run, in one call to its coordinator."""
        ((address, name),) = {(h.address, h.coordinator) for h, _ in items}
        try:
            coords = self.coordinators(address)
            offsets = {h.key: _read_offset(d / OFFSET_FILE, h.key) for h, d in items}
            answers = coords.poll_many(name, offsets, timeout)
        except BackendError:
            return [AttemptResult.unknown("the Ray cluster does not answer") for _ in items]
        except Exception as exc:  # the cluster did not answer: never taken for gone
            if _is_connection_error(exc):
                return [AttemptResult.unknown("the Ray cluster does not answer") for _ in items]
            raise
        return [
            self._observe(h, d, offsets[h.key], None if answers is None else answers.get(h.key))
            for h, d in items
        ]

    def _observe(
        self, handle: Handle, exp_dir: Path, offset: int, answer: dict | None
    ) -> AttemptResult:
        """One coordinator answer: its new lines appended to the log, its node noted."""
        if answer is None or answer.get("state") == "unknown":
            # The cluster's record of the attempt is gone. When the node it ran on is
            # dead, that is the reason (its driver may have gone with it); otherwise
            # the run's driver itself ended or forgot it.
            why = self._node_death(self.coordinators(handle.address), exp_dir)
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
        if node and node != _read_text(exp_dir / NODE_FILE):
            _write_text(exp_dir / NODE_FILE, node)
        if len(lines) > skip:
            with LogSink(exp_dir / "output.log") as sink:
                for stream, ts, text in lines[skip:]:
                    sink.write(stream, text, ts=ts)
            _write_text(exp_dir / OFFSET_FILE, f"{handle.key} {start + len(lines)}")
        state = answer["state"]
        if state in ("queued", "running"):  # placed by Ray: waiting for resources is running
            return AttemptResult.running(node)
        if state == "exited":
            code = answer.get("exit_code")
            return AttemptResult.exited(-1 if code is None else int(code), node=node)
        # "lost": the task failed with its worker or its node.
        why = str(answer.get("error") or "lost: the run's Ray driver no longer knows it")
        return replace(AttemptResult.gone(why, TerminationReason.NODE_DIED), node=node)

    @staticmethod
    def _node_death(coords: RayCoordinators, exp_dir: Path) -> str | None:
        """``lost: Ray node ... died`` when the node the experiment last ran on is dead."""
        node = _read_text(exp_dir / NODE_FILE)  # "ip (id8)", written by earlier polls
        if "(" not in node:
            return None
        short = node.rsplit("(", 1)[1].rstrip(")")
        try:
            same = [n for n in coords.cluster.nodes() if n.node_id.startswith(short)]
        except Exception:
            return None
        if same and not any(n.alive for n in same):
            return f"lost: Ray node {node} died"
        return None

    def stop(self, handle: Handle, grace: float) -> None:
        import ray

        actor = self.coordinators(handle.address).actor(handle.coordinator)
        if actor is not None:
            ray.get(actor.stop.remote(handle.key, grace), timeout=30)

    def collect_artifacts(self, handle: Handle, artifacts_dir: Path) -> list[str]:
        import ray

        actor = self.coordinators(handle.address).actor(handle.coordinator)
        if actor is None:
            return []
        blob = ray.get(actor.artifacts.remote(handle.key), timeout=600)
        if not blob:
            return []
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            names = [m.name for m in tar.getmembers() if not m.isdir()]
            tar.extractall(artifacts_dir, filter="data")
        return names

    def release(self, handle: Handle) -> None:
        """Forget the attempt; the run's driver exits once it has nothing left."""
        import ray

        coords = self.coordinators(handle.address)
        actor = coords.actor(handle.coordinator)
        with coords.lock:
            coords.keys.get(handle.coordinator, {}).pop(handle.key, None)
            left = coords.keys.get(handle.coordinator)
        if actor is None:
            return
        try:
            ray.get(actor.forget.remote(handle.key), timeout=30)
            if not left and ray.get(actor.release_if_idle.remote(), timeout=30):
                coords.forget_actor(handle.coordinator)
                _end_if_orphaned(actor)
        except Exception:
            pass


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
        timer = threading.Timer(DRIVER_GONE_SECONDS + 2.0, check)
        timer.daemon = True
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
#: The longest one long poll of a supervisor waits for its experiment to end.
WAIT_SECONDS = 10.0


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

    # ------------------------------------------------------------ submission
    def _validate(self, spec: RunSpec) -> dict[str, str]:
        """Resolve the address and refuse what the cluster could never run.

        Returns the backend options to keep in the run's spec.
        """
        from gridrun.backends.ray.package import check_package_size
        from gridrun.backends.ray.settings import load_settings, resolve_address

        settings = load_settings(self.home.config_path)
        address = resolve_address(spec.backend_options.get("ray_address"), settings)
        if spec.snapshot_manifest.name:  # a draft spec has no snapshot yet
            check_package_size(spec.snapshot_manifest)
        RayBackendCore().check_request(
            address, spec.cpus, spec.gpus, spec.memory, settings, list(spec.datastores)
        )
        return {"ray_address": address}

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
        from gridrun.backends.ray.package import build_package
        from gridrun.backends.ray.settings import load_settings
        from gridrun.config import load_machine_config

        address = req.backend_options.get("ray_address")
        if not address:
            raise BackendError("The run has no Ray address; submit it again.")
        # One package per snapshot (a run has one; a rebuild after a crash reuses it),
        # with its settings beside it: what each of its tasks runs is its own job's.
        where = self.home.run_dir(req.run_name) / "ray" / (req.snapshot_hash[:16] or "snapshot")
        package = build_package(req.snapshot_manifest, req.objects_dir, where / "package")
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
                    "resources": dict(settings.resources),
                    "torch_build": req.torch_build.to_dict() if req.torch_build else None,
                    # For a node whose nvidia-smi does not answer (node.node_torch_build).
                    "cuda": load_machine_config(self.home.config_path).cuda,
                }
            )
        )
        log(f"Snapshot packaged for Ray: {package}")
        if req.python_env:
            log(f"Environment {key} is built on each Ray node on first use, then cached there")
        else:
            log("A Julia script: no Python environment; it runs with each node's julia on PATH")
        return str(package)

    # -------------------------------------------------------------------- run
    def _run_info(self, job: Job) -> dict[str, Any]:
        info: dict[str, Any] = json.loads((Path(job.env_ref).parent / RAY_JSON).read_text())
        return info

    def _launch(self, job: Job, sink: LogSink) -> str:
        import secrets

        from gridrun.backends.ray.bridge import BridgeError, request

        home = self.home.root
        info = self._run_info(job)
        attempt = secrets.token_hex(4)
        name = coordinator_name(home, job.run_name, Path(job.env_ref))
        handle = Handle(info["address"], name, f"{job.experiment_id}:{attempt}")
        # Persisted before the launch: a supervisor that dies during it leaves a handle
        # that reconciliation can ask the cluster about.
        write_handle(job, handle.dumps())
        # As for Docker: only --env/--env_file values and the short allow-list travel from
        # the submitting shell to a node (gridrun.runenv); gridrun's own variables win.
        # GPU visibility is Ray's business on the node (it sets CUDA_VISIBLE_DEVICES).
        from gridrun.runenv import container_environment

        env = {
            **container_environment(home, job.run_name),
            **{k: v for k, v in job.env.items() if k != "CUDA_VISIBLE_DEVICES"},
        }
        options: dict[str, Any] = {"num_cpus": job.cpus}
        if job.gpus:
            options["num_gpus"] = job.gpus
        if job.memory:
            options["memory"] = job.memory
        if info.get("resources"):
            options["resources"] = info["resources"]
        spec = {
            "env_key": info["env_key"],
            "python": info["python"],
            "requirements": info["requirements"],
            "python_env": info.get("python_env", True),
            "torch_build": info.get("torch_build"),
            "cuda": info.get("cuda"),
            "home_label": handle.coordinator.split("-")[1],
            "experiment": job.experiment_name,
            "attempt": attempt,
            "script": job.script,
            "args": list(job.args),
            "env": env,
            "gpus": job.gpus,
            "datastores": [d.to_dict() for d in job.datastores],
        }
        try:
            request(
                home,
                {
                    "op": "launch",
                    "address": info["address"],
                    "home": str(home),
                    "run": job.run_name,
                    "package": job.env_ref,
                    "experiment_id": job.experiment_id,
                    "attempt": attempt,
                    "spec": spec,
                    "options": options,
                },
                timeout=300,
            )
        except BridgeError as exc:
            raise BackendError(str(exc)) from exc
        return handle.dumps()

    def _wait(self, job: Job, handle: str, sink: LogSink) -> AttemptResult:
        """Follow the task until it ends; an unreachable cluster is waited out, a while.

        Each question is a long poll: the bridge answers when the experiment is no
        longer running, or after :data:`WAIT_SECONDS` (see :mod:`.watch`). A task the
        cluster lost (its node died, the run's driver went away), not the script,
        comes back ``gone`` with that reason: a preemption, which --auto_resume runs
        again.
        """
        address = Handle.loads(handle).address
        unreachable_since: float | None = None
        while True:
            state = self._wait_once(job, handle)
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
                time.sleep(self.poll_interval)  # the bridge answered at once: not too often
            else:
                unreachable_since = None

    def _wait_once(self, job: Job, handle: str) -> AttemptResult:
        """One long poll: the state once it is not running, or after WAIT_SECONDS."""
        return self._ask(
            job,
            {
                "op": "wait",
                "handle": handle,
                "exp_dir": str(job.exp_dir),
                "timeout": self.request_timeout,
                "wait": WAIT_SECONDS,
            },
            WAIT_SECONDS + self.request_timeout,
        )

    def _poll(self, job: Job, handle: str) -> AttemptResult:
        """Ask the run's coordinator; its answer also appends the new output lines."""
        return self._ask(
            job,
            {
                "op": "poll",
                "handle": handle,
                "exp_dir": str(job.exp_dir),
                "timeout": self.request_timeout,
            },
            self.request_timeout,
        )

    def _ask(self, job: Job, req: dict[str, Any], timeout: float) -> AttemptResult:
        from gridrun.backends.ray.bridge import BridgeError, request

        try:
            o = request(self.home.root, req, timeout=timeout)
        except BridgeError as exc:
            if req["op"] == "wait" and "unknown op" in str(exc):
                # A bridge of an older gridrun, still serving this GRID_HOME.
                time.sleep(self.poll_interval)
                return self._poll(job, req["handle"])
            return AttemptResult.unknown(f"the Ray cluster does not answer: {exc}")
        except (OSError, ValueError) as exc:
            return AttemptResult.unknown(
                f"the Ray cluster does not answer: {exc or type(exc).__name__}"
            )
        if "version" not in o:  # a bridge of an older gridrun: it exits once idle
            return AttemptResult.unknown("an older gridrun's Ray bridge answered")
        return AttemptResult.from_dict(o)

    def _stop(self, job: Job, handle: str, grace: float) -> None:
        from gridrun.backends.ray.bridge import request

        request(self.home.root, {"op": "stop", "handle": handle, "grace": grace})

    def _collect(self, job: Job, handle: str | None, keep_workdir: bool) -> list[str]:
        from gridrun.backends.ray.bridge import request

        if not handle:
            return []
        reply = request(
            self.home.root,
            {"op": "artifacts", "handle": handle, "dir": str(job.artifacts_dir)},
            timeout=900,
        )
        return list(reply.get("names") or [])

    def _release(self, job: Job, handle: str | None) -> None:
        from gridrun.backends.ray.bridge import request

        if handle:
            request(self.home.root, {"op": "release", "handle": handle})
