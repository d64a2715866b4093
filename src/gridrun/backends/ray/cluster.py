"""The agent's side of a Ray cluster: one connection, the run drivers, node facts.

The agent (one long-lived process per GRID_HOME) connects once with ``ray.init`` and
keeps the connection; everything per experiment is then one actor call to the run's
coordinator, a few milliseconds, instead of a Ray Job each. Each run's driver is
submitted through Ray's Job API, which uploads the run's package and gridrun itself
to the cluster and shows the run in ``ray job list``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridrun.backends.ray.driver import NAMESPACE
from gridrun.errors import BackendError

DRIVER_START_SECONDS = 120.0


def coordinator_name(home_root: Path, run_name: str, package: Path) -> str:
    """The actor name of the run's driver for ``package``: two GRID_HOMEs sharing a
    cluster never meet, and a task always runs the snapshot its job was built with
    (the driver's ``working_dir`` is what its tasks run)."""
    label = hashlib.sha256(str(Path(home_root).absolute()).encode()).hexdigest()[:10]
    pkg = hashlib.sha256(str(Path(package).absolute()).encode()).hexdigest()[:6]
    return f"gridrun-{label}-{run_name}-{pkg}"


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    ip: str
    hostname: str
    alive: bool
    resources: dict[str, float]

    @property
    def label(self) -> str:
        return self.hostname if self.hostname and self.hostname != self.ip else self.ip


class Cluster:
    """A connection to one Ray cluster (Ray allows one per process)."""

    _lock = threading.Lock()
    _connected: str | None = None

    def __init__(self, address: str) -> None:
        self.address = address

    # ------------------------------------------------------------ connection
    def connect(self) -> None:
        import ray

        with Cluster._lock:
            if Cluster._connected == self.address and ray.is_initialized():
                return
            if ray.is_initialized():
                ray.shutdown()
            try:
                ray.init(
                    address=_init_address(self.address),
                    namespace=NAMESPACE,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    configure_logging=False,
                )
            except Exception as exc:
                raise unreachable(self.address, exc) from exc
            Cluster._connected = self.address

    def nodes(self) -> list[NodeInfo]:
        import ray

        self.connect()
        out = []
        for n in ray.nodes():
            out.append(
                NodeInfo(
                    node_id=n["NodeID"],
                    ip=n.get("NodeManagerAddress", ""),
                    hostname=n.get("NodeManagerHostname", ""),
                    alive=bool(n.get("Alive")),
                    resources={k: float(v) for k, v in (n.get("Resources") or {}).items()},
                )
            )
        return out

    # ------------------------------------------------------------- drivers
    def coordinator(self, name: str) -> Any | None:
        import ray

        self.connect()
        try:
            return ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return None

    def start_driver(self, name: str, package: Path) -> Any:
        """Submit the run's driver job and wait for its coordinator to answer."""
        from ray.job_submission import JobStatus, JobSubmissionClient

        import gridrun
        import ray

        self.connect()
        try:
            jobs = JobSubmissionClient(_jobs_address(self.address))
        except Exception as exc:
            raise unreachable(self.address, exc) from exc
        submission_id = f"{name}-{int(time.time() * 1000) % 10**10}"
        try:
            jobs.submit_job(
                entrypoint=f"python -m gridrun.backends.ray.driver {name}",
                submission_id=submission_id,
                runtime_env={
                    "working_dir": str(package),
                    "py_modules": [str(Path(gridrun.__file__).parent)],
                },
                entrypoint_num_cpus=0,
                metadata={"gridrun": "1", "gridrun_coordinator": name},
            )
        except Exception as exc:
            raise BackendError(f"Ray refused the run's driver job: {exc}") from exc
        deadline = time.monotonic() + DRIVER_START_SECONDS
        while time.monotonic() < deadline:
            actor = self.coordinator(name)
            if actor is not None:
                try:
                    ray.get(actor.ping.remote(), timeout=30)
                    return actor
                except Exception:
                    pass
            status = jobs.get_job_status(submission_id)
            if status in (JobStatus.FAILED, JobStatus.STOPPED):
                tail = " ".join(jobs.get_job_logs(submission_id).strip().splitlines()[-3:])
                raise BackendError(f"The run's driver job {submission_id} {status.value}: {tail}")
            time.sleep(0.2)
        raise BackendError(
            f"The run's driver job {submission_id} did not start within "
            f"{DRIVER_START_SECONDS:.0f}s.",
            hint="Check `ray job logs` and that the cluster has a live head node.",
        )


def _init_address(address: str) -> str:
    """What ``ray.init`` takes for an address: the GCS host:port, or a ray:// client."""
    if address.startswith(("http://", "https://")):
        from urllib.parse import urlparse

        host = urlparse(address).hostname or "127.0.0.1"
        return f"ray://{host}:10001"
    return address


def _jobs_address(address: str) -> str:
    return address


def unreachable(address: str, exc: BaseException | None = None) -> BackendError:
    why = f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})" if exc else ""
    return BackendError(
        f"No Ray cluster answers at {address}{why}.",
        hint="Start one with `ray start --head` or check --ray_address / RAY_ADDRESS.",
    )
