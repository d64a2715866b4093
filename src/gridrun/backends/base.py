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
from typing import ClassVar

from gridrun.logs import LogSink
from gridrun.specs import BuildRequest, DatastoreMount, Job

__all__ = ["Backend", "BuildLog", "BuildRequest", "DatastoreMount", "Job"]


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
