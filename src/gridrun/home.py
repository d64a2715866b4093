"""Where gridrun keeps its state: one folder, ``GRID_HOME`` (default ``~/.grid``).

Layout (every path is derived here so no other module invents one)::

    GRID_HOME/                private to its owner: folders 0700, objects 0400
      grid.db                 SQLite (WAL): runs, experiments, events, the source of truth
      config.yaml             optional machine settings (capacity overrides, defaults)
      agent.lock, agent.pid   the single detached agent of this GRID_HOME
      agent.log               the agent's own log
      objects/ab/cdef...      content-addressed file store (snapshots, datastores)
      snapshots/<hash>.json   snapshot manifests
      envs/<key>/             cached virtualenvs, one per environment key
      runs/<run>/             per-run files (build log, environment, search journal):
                              RunPaths names each
      experiments/<exp>/      per-experiment working dir, logs, exit record, artifacts:
                              ExperimentPaths names each
      sessions/<name>/        a session's working copy, Jupyter folders, env layer
      datastores/             datastore version manifests
      images/                 Docker images' last use (last-used.json) and build locks
      cache/                  caches that only save time (parsed imports, installed dists)
      ui/token                the dashboard's access token (0600); ui/servers/<pid>.json
                              the URL of each running `grid ui`
"""

from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from gridrun.errors import StateError


@dataclass(frozen=True)
class GridHome:
    root: Path

    @classmethod
    def from_env(cls) -> GridHome:
        raw = os.environ.get("GRID_HOME") or str(Path("~/.grid").expanduser())
        return cls(Path(raw).expanduser().absolute())

    def ensure(self) -> GridHome:
        """Create the folder, private to its owner, with a clear error when it cannot be
        written. Only commands that write call this: the probe write below would fail on
        a full or read-only disk, where ``status`` or ``history`` must still work."""
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            _make_private(self.root)
            for sub in ("objects", "snapshots", "envs", "runs", "experiments", "datastores"):
                (self.root / sub).mkdir(mode=0o700, exist_ok=True)
            # Per thread as well as per process: the dashboard's request threads call
            # this at once, and a shared name let one thread unlink another's probe.
            probe = self.root / f".write-probe-{os.getpid()}-{threading.get_ident()}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                hint = (
                    "Free some space (`grid delete run NAME`, `grid datastore delete`, or "
                    "elsewhere on that disk); status, history and logs still work."
                )
            elif exc.errno == errno.EROFS:
                hint = "Remount it read-write; status, history and logs still work."
            else:
                hint = "Set GRID_HOME to a folder you can write to."
            raise StateError(
                f"GRID_HOME {self.root} is not writable ({exc.strerror or exc}).", hint=hint
            ) from exc
        return self

    @property
    def db_path(self) -> Path:
        return self.root / "grid.db"

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def envs(self) -> Path:
        return self.root / "envs"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def datastores(self) -> Path:
        return self.root / "datastores"

    @property
    def ui(self) -> Path:
        return self.root / "ui"

    @property
    def nodes(self) -> Path:
        """What gridrun learnt about each engine node (one file a node), kept across runs."""
        return self.root / "nodes"

    @property
    def agent_lock(self) -> Path:
        return self.root / "agent.lock"

    @property
    def agent_pid(self) -> Path:
        return self.root / "agent.pid"

    @property
    def agent_log(self) -> Path:
        return self.root / "agent.log"

    def run_dir(self, run_name: str) -> Path:
        return self.root / "runs" / run_name

    def run(self, run_name: str) -> RunPaths:
        """Every file gridrun keeps for one run, named in one place."""
        return RunPaths(self.run_dir(run_name))

    def experiment(self, experiment_name: str) -> ExperimentPaths:
        """Every file gridrun keeps for one experiment, named in one place."""
        return ExperimentPaths(self.experiment_dir(experiment_name))

    def session_dir(self, session_name: str) -> Path:
        """A session's working copy, JupyterLab's folders and environment layer."""
        return self.root / "sessions" / session_name

    def experiment_dir(self, experiment_name: str) -> Path:
        return self.root / "experiments" / experiment_name

    def experiment_node_file(self, experiment_name: str) -> Path:
        """Where an engine backend records the node that ran the experiment."""
        return self.experiment(experiment_name).node


@dataclass(frozen=True)
class ExperimentPaths:
    """``GRID_HOME/experiments/<name>/``: the one owner of the names of its files.

    Every module that reads or writes an experiment's log, record or copy asks here
    (through :meth:`GridHome.experiment`, or ``Job.paths``), so the layout is written
    once. A backend's own files (the local witness's record, Slurm's batch script) go
    through :meth:`backend_file`, under names that backend owns.
    """

    dir: Path

    @property
    def output_log(self) -> Path:
        """``[stream] [timestamp] line`` of the experiment's output (gridrun.logs)."""
        return self.dir / "output.log"

    @property
    def artifacts(self) -> Path:
        return self.dir / "artifacts"

    @property
    def workdir(self) -> Path:
        """Its own working copy of the project."""
        return self.dir / "workdir"

    @property
    def resume(self) -> Path:
        """Where a preempted attempt's working copy waits for the restart."""
        return self.dir / "resume"

    @property
    def job(self) -> Path:
        """The resolved Job (agent.jobs), written before it runs."""
        return self.dir / "job.json"

    @property
    def exit_record(self) -> Path:
        """The last attempt's AttemptResult, written before the store is told."""
        return self.dir / "exit.json"

    @property
    def handle(self) -> Path:
        """The backend's handle of the attempt, written before anything else."""
        return self.dir / "backend.ref"

    @property
    def node(self) -> Path:
        """Where an engine ran it (or why it waits), for grid status."""
        return self.dir / "node"

    @property
    def preempt_reason(self) -> Path:
        """Written by ``grid preempt`` before it signals."""
        return self.dir / "preempt.reason"

    @property
    def artifacts_incomplete(self) -> Path:
        """The one-line reason some artifacts could not be saved."""
        return self.dir / "artifacts.incomplete"

    @property
    def supervisor_log(self) -> Path:
        return self.dir / "supervisor.log"

    @property
    def supervisor_error(self) -> Path:
        """The traceback of a backend failure, for whoever debugs it."""
        return self.dir / "supervisor-error.txt"

    def backend_file(self, name: str) -> Path:
        """A file a backend keeps for the experiment, under a name the backend owns."""
        return self.dir / name


@dataclass(frozen=True)
class RunPaths:
    """``GRID_HOME/runs/<name>/``: the one owner of the names of a run's files."""

    dir: Path

    @property
    def build_log(self) -> Path:
        return self.dir / "build.log"

    @property
    def build_warnings(self) -> Path:
        return self.dir / "build-warnings.json"

    @property
    def environment(self) -> Path:
        """The submitting shell's environment for the run's experiments (gridrun.runenv)."""
        return self.dir / "environment.json"

    @property
    def study_journal(self) -> Path:
        """An adaptive search's Optuna journal (gridrun.sweep.search)."""
        return self.dir / "study.journal"

    def backend_file(self, name: str) -> Path:
        """A file or folder a backend keeps for the run, under a name it owns."""
        return self.dir / name


def _make_private(root: Path) -> None:
    """GRID_HOME holds snapshots of projects (and their secrets, if a user ships one),
    datastores and logs: owner-only, like ``~/.ssh``. A folder someone else owns (a
    shared GRID_HOME set up by an admin) is left as it is."""
    st = root.stat()
    if st.st_uid == os.geteuid() and st.st_mode & 0o077:
        os.chmod(root, st.st_mode & 0o700 | 0o700)
