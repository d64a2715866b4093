"""The agent's side of a Ray cluster: one connection, the run drivers, node facts.

The agent (one long-lived process per GRID_HOME) connects once with ``ray.init`` and
keeps the connection; everything per experiment is then one actor call to the run's
coordinator, a few milliseconds, instead of a Ray Job each. Each run's driver is
submitted through Ray's Job API, which uploads the run's package and gridrun itself
to the cluster and shows the run in ``ray job list``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

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
    _gcs: ClassVar[dict[str, str]] = {}  # dashboard address -> the GCS address found through it

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
                    address=self.gcs_address(),
                    namespace=NAMESPACE,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    configure_logging=False,
                )
            except Exception as exc:
                raise unreachable(self.address, exc) from exc
            Cluster._connected = self.address

    def gcs_address(self) -> str:
        """What ``ray.init`` connects to: the address itself, or for the dashboard's
        ``http://host:8265`` the GCS that dashboard serves.

        Ray's dashboard does not say where its GCS listens, but every job it starts is
        told (``RAY_ADDRESS`` in the entrypoint's environment): one ``echo`` job, once
        per address and process, asks. The head's own view of its address is what the
        nodes use too, so a cluster whose GCS this machine cannot reach (only the
        dashboard forwarded) is reported unreachable, naming both.
        """
        if not self.address.startswith(("http://", "https://")):
            return self.address
        found = Cluster._gcs.get(self.address)
        if found is None:
            found = Cluster._gcs[self.address] = _ask_dashboard_for_gcs(self.address)
        return found

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


GCS_PROBE_SECONDS = 120.0


def _ask_dashboard_for_gcs(address: str) -> str:
    """The GCS address of the cluster whose dashboard (Ray Jobs API) is ``address``."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    try:
        jobs = JobSubmissionClient(address)
        job = jobs.submit_job(
            entrypoint='echo "gridrun-gcs $RAY_ADDRESS"',
            entrypoint_num_cpus=0,
            metadata={"gridrun": "1", "gridrun_probe": "gcs address"},
        )
    except Exception as exc:
        raise unreachable(address, exc) from exc
    deadline = time.monotonic() + GCS_PROBE_SECONDS
    while time.monotonic() < deadline:
        status = jobs.get_job_status(job)
        if status.is_terminal():
            for line in jobs.get_job_logs(job).splitlines():
                if line.startswith("gridrun-gcs "):
                    with contextlib.suppress(Exception):
                        jobs.delete_job(job)  # a probe, not the user's history
                    return line.split(None, 1)[1].strip()
            if status != JobStatus.SUCCEEDED:
                break
        time.sleep(0.1)
    raise BackendError(
        f"The Ray dashboard at {address} did not tell its cluster's GCS address.",
        hint="Pass the head's host:port (`ray start --head` prints it) as --ray_address.",
    )


def _jobs_address(address: str) -> str:
    return address


def unreachable(address: str, exc: BaseException | None = None) -> BackendError:
    why = f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})" if exc else ""
    return BackendError(
        f"No Ray cluster answers at {address}{why}.",
        hint="Start one with `ray start --head` or check --ray_address / RAY_ADDRESS.",
    )
