"""The backend protocol: the mechanics of building and running, nothing else.

The split follows SkyPilot's public-wrapper/private-hook pattern: the agent and the
supervisor own validation, scheduling and every state transition in the store; a
backend only builds an environment, runs one experiment to completion, stops it,
and says whether a previously started experiment is still alive. Capabilities are
declared as class attributes so that an option a backend cannot honour is refused at
submission, never silently ignored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from gridrun.logs import LogSink


@dataclass
class DatastoreMount:
    """A datastore version to show read-only inside an experiment."""

    name: str
    version: int
    source: Path  # host folder holding the version's files
    mount_dir: str  # where the experiment sees it


@dataclass
class BuildRequest:
    """Everything needed to build (or find cached) the environment of one run."""

    run_name: str
    project_name: str
    python: str  # "3.11"
    requirements: list[str]  # normalised requirement lines
    snapshot_hash: str
    snapshot_manifest: Path
    objects_dir: Path
    gpu: bool = False
    dockerfile: str | None = None  # path inside the project, used as given
    base_image: str | None = None
    apt_packages: list[str] = field(default_factory=list)
    conda_file: str | None = None  # environment.yml inside the project
    best_effort: bool = False  # inferred requirements: drop what cannot be installed
    checks: list[str] = field(default_factory=list)  # names version repair makes resolve
    # What the backend resolved at submission (validate_run), e.g. the Ray address.
    backend_options: dict[str, str] = field(default_factory=dict)


@dataclass
class Job:
    """One experiment as the supervisor runs it."""

    run_name: str
    experiment_name: str
    experiment_id: int
    env_ref: str  # a virtualenv path (local) or an image tag (docker)
    script: str  # path of the script inside the project
    args: list[str]  # the script's own arguments, passed untouched
    exp_dir: Path  # GRID_HOME/experiments/<name>: logs, exit record, artifacts
    workdir: Path  # the experiment's own copy of the project (local backend)
    snapshot_manifest: Path
    objects_dir: Path
    env: dict[str, str]  # GRID_* variables, thread caps, CUDA_VISIBLE_DEVICES
    cpus: float = 1.0
    memory: int | None = None  # bytes
    gpus: int = 0
    gpu_ids: list[int] = field(default_factory=list)
    datastores: list[DatastoreMount] = field(default_factory=list)
    stop_grace: float = 30.0  # seconds between SIGTERM and SIGKILL

    @property
    def artifacts_dir(self) -> Path:
        return self.exp_dir / "artifacts"

    @property
    def log_path(self) -> Path:
        return self.exp_dir / "output.log"

    @property
    def resume_dir(self) -> Path:
        """Where a preempted attempt's working directory waits for the restart."""
        return self.exp_dir / "resume"

    @property
    def restart_count(self) -> int:
        """How many times this experiment was started before (``GRID_RESTART_COUNT``)."""
        return int(self.env.get("GRID_RESTART_COUNT") or 0)


BuildLog = Callable[[str], None]


class Backend(ABC):
    """One kind of compute. Subclasses implement the mechanics only."""

    name: ClassVar[str]
    supports_gpus: ClassVar[bool] = False
    supports_datastores: ClassVar[bool] = False
    supports_dockerfile: ClassVar[bool] = False
    # An engine (a Ray cluster) places experiments itself: the agent applies no local
    # capacity to them and launches each as soon as it is queued.
    schedules_itself: ClassVar[bool] = False

    #: Set by :meth:`execute` when the attempt ended because its machine or engine
    #: went away (a Docker engine restart), not on the script's own: the reason.
    preempted: str | None = None

    def check_available(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~gridrun.errors.BackendError` with a next step when unusable."""

    def validate_run(self, spec: dict, home_root: Path, options: dict[str, str]) -> dict[str, str]:
        """Refuse at submission what this backend could never run; called before recording.

        ``options`` are the backend's own command-line options (``--ray_address``).
        Returns the backend options to keep in the run's spec for the agent.
        """
        return {}

    @abstractmethod
    def environment_key(self, req: BuildRequest) -> str:
        """The content hash that names this request's environment in the cache."""

    @abstractmethod
    def build(self, req: BuildRequest, log: BuildLog) -> str:
        """Build (or reuse) the environment; return its reference for :class:`Job`."""

    @abstractmethod
    def execute(self, job: Job, sink: LogSink) -> int:
        """Run the experiment to completion, writing its output to ``sink``.

        Called inside the experiment's supervisor process. Returns the exit code
        (negative for a signal, as :mod:`subprocess` does).
        """

    @abstractmethod
    def terminate(self, job: Job, grace: float) -> None:
        """Stop a running experiment: SIGTERM, then SIGKILL after ``grace`` seconds."""

    @abstractmethod
    def collect_artifacts(self, job: Job, keep_workdir: bool = False) -> list[str]:
        """Save every file the experiment created into ``job.artifacts_dir``.

        ``keep_workdir``: the experiment will run again (it was preempted), so copy
        rather than move, and leave its whole working directory in ``job.workdir``.
        """

    def cleanup(self, job: Job) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`execute` left behind (working copies, containers)."""
