"""Named clusters: Grid's word for where runs go, mapped onto gridrun's backends.

Grid users picked a cluster (``grid run --cluster prod-2``, ``grid user
set-default-cluster``). Here a cluster is a name for a backend and its address:

* ``local`` (this machine) and ``docker`` (the Docker engine at ``DOCKER_HOST``) always
  exist;
* ``grid clusters add NAME --backend ray --address HOST:PORT`` names a Ray cluster;
* ``grid clusters add NAME --backend slurm --address /path/to/slurm.conf`` names a
  Slurm cluster by its config file (what its ``SLURM_CONF`` would be).

They are kept in ``GRID_HOME/clusters.yaml``, with the default, which a plain
``grid run`` uses when neither ``--backend`` nor ``--cluster`` is given (else the
config's ``default_backend``, as before). gridrun never creates or deletes a cluster:
it only remembers where one is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gridrun.errors import ConfigError, NotFoundError, UsageError
from gridrun.fsutil import atomic_write_text
from gridrun.home import GridHome

FILE = "clusters.yaml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
BUILTIN = ("local", "docker")
# Backends a named cluster can point at, and the address option each takes.
ADDRESSED = {"ray": "ray_address", "slurm": "slurm_conf"}
PLANNED = {"kubernetes": "not built yet"}


@dataclass(frozen=True)
class ClusterTarget:
    name: str
    backend: str
    options: dict[str, str] = field(default_factory=dict)  # the backend's run options

    @property
    def address(self) -> str:
        return next(iter(self.options.values()), "")


@dataclass
class Clusters:
    named: dict[str, ClusterTarget]
    default: str | None

    def all(self) -> list[ClusterTarget]:
        builtin = [ClusterTarget(n, n) for n in BUILTIN]
        return [*builtin, *sorted(self.named.values(), key=lambda c: c.name)]

    def get(self, name: str) -> ClusterTarget:
        for c in self.all():
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.all())
        raise NotFoundError(
            f"No cluster named '{name}'.", hint=f"Known: {known} (`grid clusters add` names one)."
        )


def load(home: GridHome) -> Clusters:
    import yaml

    path = home.root / FILE
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return Clusters({}, None)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read {path} ({exc}).") from None
    named = {}
    for name, entry in (doc.get("clusters") or {}).items():
        if not isinstance(entry, dict) or entry.get("backend") not in ADDRESSED:
            raise ConfigError(f"{path}: cluster '{name}' needs a backend of {list(ADDRESSED)}.")
        option = ADDRESSED[entry["backend"]]
        named[str(name)] = ClusterTarget(
            str(name), entry["backend"], {option: str(entry.get("address") or "")}
        )
    default = doc.get("default")
    return Clusters(named, str(default) if default else None)


def _save(home: GridHome, clusters: Clusters) -> None:
    import yaml

    doc: dict[str, Any] = {
        "default": clusters.default,
        "clusters": {
            c.name: {"backend": c.backend, "address": c.address} for c in clusters.named.values()
        },
    }
    home.ensure()
    path = home.root / FILE
    atomic_write_text(path, yaml.safe_dump(doc, sort_keys=True))
    path.chmod(0o600)


def add(home: GridHome, name: str, backend: str, address: str | None) -> ClusterTarget:
    """Name a cluster; the name must be new, the backend one a cluster can be."""
    if not _NAME.match(name):
        raise UsageError(f"Cluster name '{name}': lowercase letters, digits and '-'.")
    if backend in PLANNED:
        raise UsageError(f"--backend {backend}: {PLANNED[backend]}.")
    if backend not in ADDRESSED:
        raise UsageError(
            f"--backend {backend} cannot be a named cluster: choose {', '.join(ADDRESSED)} "
            f"({', '.join(BUILTIN)} always exist)."
        )
    if not address:
        example = "/etc/slurm/slurm.conf" if backend == "slurm" else "10.0.0.5:6379"
        raise UsageError(f"--backend {backend} needs --address (e.g. {example}).")
    if backend == "slurm":
        import os

        address = os.path.abspath(os.path.expanduser(address))
        if not os.path.isfile(address):
            raise UsageError(f"--address {address}: no Slurm config file there.")
    clusters = load(home)
    if name in BUILTIN or name in clusters.named:
        raise UsageError(f"A cluster named '{name}' exists; `grid clusters rm {name}` first.")
    target = ClusterTarget(name, backend, {ADDRESSED[backend]: address})
    clusters.named[name] = target
    _save(home, clusters)
    return target


def remove(home: GridHome, name: str) -> None:
    clusters = load(home)
    if name in BUILTIN:
        raise UsageError(f"'{name}' is built in and cannot be removed.")
    clusters.get(name)  # one line naming the known ones
    del clusters.named[name]
    if clusters.default == name:
        clusters.default = None
    _save(home, clusters)


def set_default(home: GridHome, name: str) -> ClusterTarget:
    clusters = load(home)
    target = clusters.get(name)
    clusters.default = name
    _save(home, clusters)
    return target


def default_target(home: GridHome) -> ClusterTarget | None:
    """The cluster ``grid user set-default-cluster`` chose, if any."""
    clusters = load(home)
    return clusters.get(clusters.default) if clusters.default else None


@dataclass(frozen=True)
class ClusterState:
    """What ``grid clusters`` shows: whether it answers, and what it offers."""

    state: str  # "up", or "down: <why>"
    nodes: int = 0
    cpus: float = 0.0
    memory: int = 0  # bytes
    gpus: int = 0
    largest: str = ""  # the node one experiment can get the most of
    node_cpus: float = 0.0  # ...and what that node has
    node_memory: int = 0
    node_gpus: int = 0


def probe(home: GridHome, target: ClusterTarget) -> ClusterState:
    """Ask the cluster what it has; a cluster that does not answer is ``down``."""
    import socket

    from gridrun.errors import GridError

    try:
        if target.backend == "ray":
            return _probe_ray(target.address)
        if target.backend == "slurm":
            return _probe_slurm(target.address)
        from gridrun.backends import get_backend

        backend = get_backend(target.backend, home)
        if target.backend == "docker":
            from gridrun.backends.docker.backend import connect, engine_url

            try:
                connect(timeout=5).ping()
            except Exception:
                return ClusterState(f"down: no Docker engine answers at {engine_url()}")
        cap = backend.capacity()
    except GridError as exc:
        return ClusterState(f"down: {exc.message}")
    except Exception as exc:  # an engine's own error: still one line, never a traceback
        return ClusterState(f"down: {type(exc).__name__}: {exc}".splitlines()[0][:200])
    if cap is None:
        return ClusterState("up")
    gpus = len(cap.gpus)
    # One machine (this one, or the Docker engine's): it is its own largest node.
    where = socket.gethostname() if target.backend == "local" else f"{target.name} engine"
    label = f"{where} ({cap.cpus:g} CPUs" + (f", {gpus} GPUs)" if gpus else ")")
    return ClusterState("up", 1, cap.cpus, cap.memory, gpus, label, cap.cpus, cap.memory, gpus)


def _listening(address: str, timeout: float = 3.0) -> bool:
    """Whether anything accepts a connection at ``host:port`` (or ``http://host:port``):
    asked first, because Ray's own client retries a dead address for minutes."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"ray://{address}")
    if not parts.hostname:
        return False
    try:
        port = parts.port or (8265 if parts.scheme.startswith("http") else 6379)
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _probe_ray(address: str) -> ClusterState:
    from gridrun.backends.ray.backend import largest_node
    from gridrun.backends.ray.cluster import Cluster

    if not _listening(address):
        return ClusterState(f"down: nothing answers at {address}")
    alive = [n for n in Cluster(address).nodes() if n.alive]
    if not alive:
        return ClusterState("down: no live node")
    big = largest_node(alive)

    def total(key: str) -> float:
        return sum(n.resources.get(key, 0.0) for n in alive)

    label = f"{big.label} ({big.resources.get('CPU', 0):g} CPUs"
    label += f", {big.resources.get('GPU', 0):g} GPUs)" if big.resources.get("GPU") else ")"
    res = big.resources
    return ClusterState(
        "up",
        len(alive),
        total("CPU"),
        int(total("memory")),
        int(total("GPU")),
        label,
        res.get("CPU", 0.0),
        int(res.get("memory", 0.0)),
        int(res.get("GPU", 0.0)),
    )


def _probe_slurm(conf: str) -> ClusterState:
    """``sinfo --json`` with the cluster's SLURM_CONF: its nodes and the largest one."""
    import json
    import os
    import shutil
    import subprocess

    if shutil.which("sinfo") is None:
        return ClusterState("down: Slurm's client commands are not installed here")
    try:
        proc = subprocess.run(
            ["sinfo", "--json"],
            env={**os.environ, "SLURM_CONF": conf},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ClusterState("down: sinfo did not answer in 30 s")
    data = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else {}
    nodes = [n for n in data.get("nodes") or [] if "down" not in str(n.get("state", "")).lower()]
    if not nodes:
        why = (proc.stderr.strip().splitlines() or ["no node is up"])[-1]
        return ClusterState(f"down: {why}")
    from gridrun.backends.slurm.squeue import _gres_gpus

    def size(n: dict) -> tuple[float, int, int]:
        return (float(n.get("cpus") or 0), _gres_gpus(str(n.get("gres") or "")),
                int(n.get("real_memory") or 0))  # fmt: skip

    big = max(nodes, key=size)
    cpus, gpus, mem = size(big)
    return ClusterState(
        "up",
        len(nodes),
        sum(size(n)[0] for n in nodes),
        sum(size(n)[2] for n in nodes) * 2**20,
        sum(size(n)[1] for n in nodes),
        f"{big.get('name')} ({cpus:g} CPUs" + (f", {gpus} GPUs)" if gpus else ")"),
        cpus,
        mem * 2**20,
        gpus,
    )
