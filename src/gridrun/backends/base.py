"""The backend protocol: one narrow seam between gridrun and whatever runs experiments.

The split follows SkyPilot's public-wrapper/private-hook pattern. The public methods
here (:meth:`Backend.validate`, :meth:`~Backend.build`, :meth:`~Backend.launch`,
:meth:`~Backend.wait`, :meth:`~Backend.poll`, :meth:`~Backend.stop`,
:meth:`~Backend.collect`, :meth:`~Backend.release`) own what every backend must do
the same way: refusing options a backend cannot honour, timing and logging, keeping the
handle on disk, turning an exception during a poll into ``unknown`` (never ``gone``),
stopping a job that was asked to stop before it started. A backend implements the
private hooks (``_launch``, ``_poll``, ``_stop``, ...) and only does mechanics.

The lifecycle of one experiment::

    handle = backend.launch(job, sink)      # start it; the handle is an opaque string
    result = backend.wait(job, handle, sink)  # block until it ends: an AttemptResult
    backend.poll([(job, handle)])           # anyone, any process: an AttemptResult each
    backend.stop(job, handle, grace)        # SIGTERM, SIGKILL after ``grace`` seconds
    backend.collect(job, handle)            # save new files into job.artifacts_dir
    backend.release(job, handle)            # free what launch took (container, copy)

Capabilities and capacity are declared, so that an option a backend cannot honour is
refused at submission (never silently ignored), and so that the agent knows whether it
must place experiments within this machine's CPUs, memory and GPUs (``local``,
``docker``) or hand them to an engine that schedules them itself (Ray, Kubernetes).

Two ways an attempt is supervised, chosen by ``Capabilities.shares_machine``:

* it shares this machine (local, Docker): a forked supervisor per experiment
  (:mod:`gridrun.agent.supervisor`) calls :meth:`~Backend.run` (launch, then a
  blocking :meth:`~Backend.wait`) and owns its output pipes;
* an engine schedules and supervises it (Ray; Slurm and Kubernetes next): no local
  process per experiment. The agent's one watcher per backend
  (:mod:`gridrun.agent.watcher`) uses only this narrow part of the protocol, from
  one thread of the agent that holds the engine's connection:

  - ``launch_many(jobs) -> [handle or exception, ...]`` for a batch of claimed
    experiments (``_launch_many``: one engine request where the engine has one, a
    Slurm job array; by default ``_launch`` each); every handle is persisted before
    it returns. An engine's output reaches ``job.log_path`` when polled;
  - ``poll([(job, handle), ...], fresh=False) -> [AttemptResult, ...]``, once a round
    for every running attempt (backoff 0.1 s to 1 s): ask the engine once
    (``_poll_watched``, by default ``_poll_many``; Slurm reads each task's exit record
    every round and asks ``squeue`` at most once a second, off the round's path),
    append new output to each log, and answer ``running``, ``exited`` (exit code,
    reason), ``gone`` (reason: the engine lost it, its node died) or ``unknown`` (not
    reachable: never taken for gone);
  - ``stop(job, handle, grace)``, for a ``grid stop`` or a rehearsed preemption;
  - ``collect(job, handle, keep_workdir=...)`` then ``release(job, handle)``, once
    the attempt ended, before the watcher settles it in the store.

  It never calls ``wait``; a new agent adopts the attempts of one that died through
  the same ``poll``. Every answer is an :class:`~gridrun.attempts.AttemptResult`,
  whose :class:`~gridrun.attempts.TerminationReason` decides the experiment's next
  status (:mod:`gridrun.store.endings`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from gridrun.attempts import AttemptResult, PollState, TerminationReason
from gridrun.errors import UnsupportedError, UsageError
from gridrun.home import GridHome
from gridrun.logs import LogSink
from gridrun.specs import BuildRequest, Capacity, DatastoreMount, Job, RunSpec

__all__ = [
    "AttemptResult",
    "Backend",
    "BuildLog",
    "BuildRequest",
    "Capabilities",
    "Capacity",
    "DatastoreMount",
    "Job",
    "PollState",
    "TerminationReason",
    "read_handle",
]

log = logging.getLogger("gridrun.backends")

BuildLog = Callable[[str], None]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can honour; anything else is refused at submission.

    ``shares_machine``: its experiments use this machine's CPUs, memory and GPUs, so
    the agent places them (one pool for every such backend) and grants GPU ids.
    Otherwise the backend's engine schedules them itself and the agent hands each
    pending experiment over as soon as it is queued.

    ``survives_supervisor``: an experiment keeps running when its supervisor dies
    (a container, a Ray task) and :meth:`Backend.poll` can still tell how it ended.
    When False (local processes, whose output pipes die with the supervisor) a
    reconciling agent stops what is left and records the experiment as lost.
    """

    gpus: bool = False
    datastores: bool = False
    dockerfile: bool = False  # --dockerfile and --base_image
    shares_machine: bool = True
    survives_supervisor: bool = False
    # --scratch_size: a size-capped writable folder at --scratch_mount_path in each
    # experiment (a tmpfs), gone when it ends.
    scratch: bool = False
    # Chooses the PyTorch build (CPU or the driver's CUDA) by the experiment's GPUs
    # (gridrun.envs.torchbuild); others install PyPI's default build, and say so.
    torch_builds: bool = False


class Backend(ABC):
    """One kind of compute. Subclasses implement the private hooks only."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    poll_interval: ClassVar[float] = 1.0  # seconds between polls in the default ``_wait``

    def __init__(self, home: GridHome | None = None) -> None:
        # GRID_HOME: where config.yaml says what this machine offers, and where a
        # backend may keep its own state (under ``home.backend_dir(name)``).
        self.home = home or GridHome.from_env()
        self._machine: Capacity | None = None
        self._stopping: set[str] = set()  # experiment names asked to stop
        self._stop_lock = threading.Lock()

    # ------------------------------------------------------------- submission
    def check_available(self) -> None:
        """Raise :class:`~gridrun.errors.BackendError` with a next step when unusable."""
        self._check_available()

    def capacity(self) -> Capacity | None:
        """The most one experiment can ever get here; None when the engine cannot say."""
        return self._capacity()

    def validate(self, spec: RunSpec, *, fits: bool = True) -> dict[str, str]:
        """Refuse, with one line, a run this backend cannot honour or could never fit.

        ``fits=False`` checks capabilities only (asks no engine anything). Returns the
        backend options to keep in the run's spec for the agent: ``spec.backend_options``
        holds the user's (``--ray_address``), and the backend resolves them here.
        """
        caps = self.capabilities
        if spec.gpus and not caps.gpus:
            raise UnsupportedError(f"The {self.name} backend does not support --gpus.")
        if spec.datastores and not caps.datastores:
            raise UnsupportedError(f"The {self.name} backend does not support datastores.")
        if spec.scratch_size and not caps.scratch:
            raise UnsupportedError(
                f"The {self.name} backend has no scratch space (--scratch_size) yet.",
                hint="Write to the working folder instead, or run on local, docker or slurm.",
            )
        if (spec.env.dockerfile or spec.env.base_image) and not caps.dockerfile:
            raise UnsupportedError(
                f"--dockerfile and --base_image need a container backend; the {self.name} "
                "backend runs in a virtualenv.",
                hint="Pass --backend docker.",
            )
        if not fits:
            return {}
        options = self._validate(spec)
        capacity = self.capacity()
        if capacity is None:
            return options
        too_big = capacity.refuse(spec.cpus, spec.gpus, spec.memory)
        if too_big:
            where = "this machine" if caps.shares_machine else f"the {self.name} backend"
            raise UsageError(
                f"Each experiment {too_big.replace('this machine', where)}.",
                hint="Ask for less, or change capacity in GRID_HOME/config.yaml."
                if caps.shares_machine
                else f"Ask for less, or add nodes to the {self.name} cluster.",
            )
        return options

    # ------------------------------------------------------------------ build
    @abstractmethod
    def environment_key(self, req: BuildRequest) -> str:
        """The content hash that names this request's environment in the cache."""

    def build(self, req: BuildRequest, log: BuildLog) -> str:
        """Build (or reuse) the environment; return its reference for :class:`Job`."""
        return self._build(req, log)

    # -------------------------------------------------------------------- run
    def launch(self, job: Job, sink: LogSink) -> str:
        """Start the experiment; return its handle, already saved in its folder.

        A stop that arrived before the launch (the supervisor was signalled while
        the job was starting) is honoured as soon as the handle exists.
        """
        started = time.monotonic()
        handle = self._launch(job, sink)
        write_handle(job, handle)
        log.info(
            "%s: launched %s as %s in %.2fs",
            self.name,
            job.experiment_name,
            handle,
            time.monotonic() - started,
        )
        if self._stop_requested(job):
            self._stop(job, handle, job.stop_grace)
        return handle

    def launch_many(self, jobs: Sequence[Job]) -> list[str | Exception]:
        """Start a batch (the engine watcher's); each job's handle, or why it failed.

        One engine request for many where the engine has one (a Slurm job array);
        by default, :meth:`launch` each. Every handle is saved in its job's folder,
        and a stop asked for before the launch is honoured, as :meth:`launch` does.
        """
        started = time.monotonic()
        out = self._launch_many(jobs)
        for job, handle in zip(jobs, out, strict=True):
            if isinstance(handle, str):
                write_handle(job, handle)
                if self._stop_requested(job):
                    self._stop(job, handle, job.stop_grace)
        log.info("%s: launched %d in %.2fs", self.name, len(jobs), time.monotonic() - started)
        return out

    def _launch_many(self, jobs: Sequence[Job]) -> list[str | Exception]:
        """Override to start many with one request; default: ``_launch`` each."""
        out: list[str | Exception] = []
        for job in jobs:
            try:
                with LogSink(job.log_path) as sink:
                    out.append(self._launch(job, sink))
            except Exception as exc:  # that one failed; the others still start
                out.append(exc)
        return out

    def wait(self, job: Job, handle: str, sink: LogSink) -> AttemptResult:
        """Block until the experiment ends: how (exit code, negative for a signal) and why.

        An attempt its engine ended or lost (a Docker engine restart, a dead Ray node)
        comes back with that reason, never as the script's own exit.
        """
        return self._wait(job, handle, sink)

    def run(
        self, job: Job, sink: LogSink, on_handle: Callable[[str], None] | None = None
    ) -> AttemptResult:
        """Launch and wait: what a supervisor does with one experiment."""
        if self._stop_requested(job):
            # Stopped before it started: 128 + SIGTERM, as a shell reports it.
            return AttemptResult.exited(143)
        handle = self.launch(job, sink)
        if on_handle is not None:
            on_handle(handle)
        return self.wait(job, handle, sink)

    def poll(self, items: Sequence[tuple[Job, str]], *, fresh: bool = True) -> list[AttemptResult]:
        """The state of each launched experiment, in order; one batch for engines.

        Any failure to ask becomes ``unknown``: an unreachable engine must never make
        a running experiment look lost. ``fresh=False`` (the agent's engine watcher,
        polling the same jobs round after round) lets an engine answer with what it
        last heard while its next answer is on its way (:meth:`_poll_watched`).
        """
        if not items:
            return []
        try:
            out = self._poll_many(items) if fresh else self._poll_watched(items)
        except Exception as exc:  # the engine, not the experiment, failed
            return [AttemptResult.unknown(f"{type(exc).__name__}: {exc}") for _ in items]
        if len(out) != len(items):
            raise RuntimeError(f"{self.name}: poll answered {len(out)} of {len(items)} jobs")
        return out

    def stop(self, job: Job, handle: str | None, grace: float) -> None:
        """SIGTERM the experiment, SIGKILL after ``grace`` seconds; None: not launched yet."""
        with self._stop_lock:
            self._stopping.add(job.experiment_name)
        if handle is None:
            handle = read_handle(job)
        if handle is not None:
            self._stop(job, handle, grace)

    def collect(self, job: Job, handle: str | None, *, keep_workdir: bool = False) -> list[str]:
        """Save every file the experiment created into ``job.artifacts_dir``.

        ``keep_workdir``: the experiment will run again (preempted, or a failure to
        retry), so copy rather than move, and leave its working directory in place.
        """
        return self._collect(job, handle, keep_workdir)

    def release(self, job: Job, handle: str | None) -> None:
        """Free what :meth:`launch` took; safe to call twice, or for a job never launched."""
        self._release(job, handle)

    # ------------------------------------------------------------ the hooks
    def _check_available(self) -> None:  # noqa: B027 - optional hook
        """Raise BackendError when the engine cannot be used (no socket, no cluster)."""

    def _validate(self, spec: RunSpec) -> dict[str, str]:
        """Backend-specific checks at submission; the backend options to keep.

        Default: a backend with no options of its own refuses none and keeps none.
        """
        return {}

    def _capacity(self) -> Capacity | None:
        """This machine's capacity: right for every backend that shares the machine."""
        if self._machine is None:
            from gridrun.config import load_machine_config
            from gridrun.machine import machine_capacity

            self._machine = machine_capacity(load_machine_config(self.home.config_path))
        return self._machine

    @abstractmethod
    def _build(self, req: BuildRequest, log: BuildLog) -> str: ...

    @abstractmethod
    def _launch(self, job: Job, sink: LogSink) -> str:
        """Start the experiment and return a handle (a pid, a container id, JSON).

        The handle is persisted by the caller and given back to every other hook,
        possibly in another process after a crash: it must be enough to find the
        experiment again. Output goes to ``sink`` as ``stdout``/``stderr`` lines.
        """

    def _wait(self, job: Job, handle: str, sink: LogSink) -> AttemptResult:
        """Block until the experiment ends. Default: poll until it is not running."""
        unknown_since: float | None = None
        while True:
            (state,) = self.poll([(job, handle)])
            if state.state == PollState.EXITED:
                return state
            if state.state == PollState.GONE:
                from gridrun.errors import BackendError

                raise BackendError(f"The {self.name} backend lost the experiment: {state.detail}")
            if state.state == PollState.UNKNOWN and unknown_since is None:
                unknown_since = time.monotonic()
                sink.write(
                    "stderr", f"gridrun: cannot reach the {self.name} engine: {state.detail}"
                )
            elif state.state == PollState.RUNNING:
                unknown_since = None
            time.sleep(self.poll_interval)

    def _poll_many(self, items: Sequence[tuple[Job, str]]) -> list[AttemptResult]:
        """Override to ask an engine once for many jobs; default: one ``_poll`` each."""
        return [self._poll(job, handle) for job, handle in items]

    def _poll_watched(self, items: Sequence[tuple[Job, str]]) -> list[AttemptResult]:
        """``poll(fresh=False)``; default: :meth:`_poll_many`."""
        return self._poll_many(items)

    @abstractmethod
    def _poll(self, job: Job, handle: str) -> AttemptResult: ...

    @abstractmethod
    def _stop(self, job: Job, handle: str, grace: float) -> None: ...

    def _collect(self, job: Job, handle: str | None, keep_workdir: bool) -> list[str]:
        return []

    def _release(self, job: Job, handle: str | None) -> None:  # noqa: B027 - optional hook
        pass

    # ---------------------------------------------------------------- helpers
    def _stop_requested(self, job: Job) -> bool:
        with self._stop_lock:
            return job.experiment_name in self._stopping


def collect_workdir(job: Job) -> list[str]:
    """Save what the experiment created in ``job.workdir`` (a copy on this machine)."""
    from gridrun.project import collect_artifacts

    if not job.workdir.exists():
        return []
    return collect_artifacts(job.snapshot_manifest, job.workdir, job.artifacts_dir)


def write_handle(job: Job, handle: str) -> None:
    """Keep the handle beside the job before anything else: it outlives every process."""
    from gridrun.fsutil import atomic_write_text

    job.exp_dir.mkdir(parents=True, exist_ok=True)
    # Renamed into place, not fsynced (as job.json, see agent/jobs.py): the rename
    # makes it whole for every process that outlives a crash; only a power loss could
    # tear it, and that also ends the job it names.
    atomic_write_text(job.paths.handle, handle, fsync=False)


def read_handle(job: Job | Path) -> str | None:
    from gridrun.home import ExperimentPaths

    paths = job.paths if isinstance(job, Job) else ExperimentPaths(job)
    with contextlib.suppress(OSError):
        text = paths.handle.read_text().strip()
        return text or None
    return None


def handle_json(**fields: object) -> str:
    """A structured handle (for engines that need more than one id), as compact JSON."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))
