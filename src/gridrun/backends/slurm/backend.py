"""The agent-side Slurm backend: sbatch, squeue, scancel behind gridrun's protocol.

One experiment is one Slurm job (its handle is the job id). The environment is the
local backend's uv virtualenv, built once per key in GRID_HOME, which the nodes share
(see the package docstring); each job's task runs the experiment on its node as the
local backend does, writing its log and exit record into the experiment's folder.

Watching is batched: :meth:`SlurmBackend._poll_many` asks ``squeue --json`` once for
every job it is given. The task's exit record says how a job ended; Slurm's own state
says the rest: waiting (with its reason), running, or ended by its node or the
scheduler (``NODE_FAIL``, ``PREEMPTED``, ``BOOT_FAIL``), which is a preemption, resumed
by ``--auto_resume`` with a new job. A ``slurmctld`` that does not answer is
``unknown``, never ``gone``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gridrun.attempts import AttemptResult, PollState, TerminationReason
from gridrun.backends.base import (
    Backend,
    BuildLog,
    BuildRequest,
    Capabilities,
    Job,
    collect_workdir,
)
from gridrun.backends.slurm.script import ORIGIN_FILE
from gridrun.backends.slurm.settings import SlurmSettings, load_settings, resolve
from gridrun.backends.slurm.squeue import SlurmJob, json_errors, parse_capacity, parse_jobs
from gridrun.errors import BackendError, UsageError
from gridrun.fsutil import atomic_write_json, atomic_write_text
from gridrun.logs import LogSink
from gridrun.specs import Capacity, RunSpec

SETTINGS_FILE = "slurm.json"  # in the run's folder: the options resolved at submission
BATCH_FILE = "slurm-batch.sh"
CLIENT_TIMEOUT = 30.0  # seconds one squeue/sbatch/scancel may take before it is "unknown"


class SlurmBackend(Backend):
    name = "slurm"
    # Slurm places experiments itself, and a job outlives whoever submitted it: its
    # task's exit record tells a reconciling agent how it ended.
    capabilities = Capabilities(
        gpus=True,
        datastores=True,
        shares_machine=False,
        survives_supervisor=True,
        torch_builds=True,
        scratch=True,  # the task mounts it on the node, as the local backend does
    )
    poll_interval = 1.0

    def __init__(self, home=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(home)
        from gridrun.backends.local import LocalBackend

        self._local = LocalBackend(self.home)  # environments and working copies
        self._waiting_said: dict[str, str] = {}  # handle -> the last reason logged

    # ------------------------------------------------------------ submission
    def _settings(self, options: dict[str, str] | None = None) -> SlurmSettings:
        return resolve(options or {}, load_settings(self.home.config_path))

    def _check_available(self) -> None:
        """The client commands are here; which cluster answers is the run's business
        (its --slurm_conf or named cluster), asked in :meth:`_validate`."""
        if shutil.which("sbatch") is None:
            self._client(self._settings(), ["sbatch", "--version"])  # its one-line error

    def _validate(self, spec: RunSpec) -> dict[str, str]:
        """Refuse, at submission, what no node of the partition could ever run."""
        settings = self._settings(dict(spec.backend_options))
        self._client(settings, ["scontrol", "ping"])
        out = self._client(settings, ["sinfo", "--json"])
        largest = parse_capacity(out, settings.partition)
        where = f"partition {settings.partition}" if settings.partition else "the cluster"
        if largest is None:
            raise UsageError(
                f"The Slurm cluster has no node in {where}.",
                hint="Name another with --slurm_partition (sinfo lists them).",
            )
        cap, node = largest
        too_big = cap.refuse(spec.cpus, spec.gpus, spec.memory)
        if too_big:
            largest_node = f"the largest node of {where} ({node})"
            raise UsageError(
                f"Each experiment {too_big.replace('this machine', largest_node)}.",
                hint="Ask for less, or name a partition with bigger nodes (--slurm_partition).",
            )
        keep = {}
        if settings.conf:  # the cluster, as the submitting shell named it
            keep["slurm_conf"] = settings.conf
        if settings.partition:
            keep["slurm_partition"] = settings.partition
        if settings.time:
            keep["slurm_time"] = settings.time
        return keep

    def _capacity(self) -> Capacity | None:
        return None  # the partition's largest node is checked in _validate

    # ------------------------------------------------------------------ build
    def environment_key(self, req: BuildRequest) -> str:
        return self._local.environment_key(req)

    def _build(self, req: BuildRequest, log: BuildLog) -> str:
        """The local backend's cached virtualenv in GRID_HOME, which every node sees."""
        settings = self._settings(dict(req.backend_options))
        run_dir = self.home.run_dir(req.run_name)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            run_dir / SETTINGS_FILE,
            {
                "conf": settings.conf,
                "partition": settings.partition,
                "time": settings.time,
                "account": settings.account,
                "extra": list(settings.extra),
            },
        )
        self._write_origin(req, settings, log)
        return self._local._build(req, log)

    def _write_origin(self, req: BuildRequest, settings: SlurmSettings, log: BuildLog) -> None:
        """The run's repository origin, for its tasks: a node that reaches the
        repository fetches the commit itself (task.py); the snapshot stays in the
        shared GRID_HOME for those that cannot."""
        from gridrun.project.refetch import run_origin

        origin = run_origin(self.home, req.run_name, req.repo, req.commit)
        path = self.home.run_dir(req.run_name) / ORIGIN_FILE
        if origin is None:
            path.unlink(missing_ok=True)
            return
        doc = {
            "origin": origin.to_dict(),
            "snapshot_hash": req.snapshot_hash,
            "cache": settings.repo_cache,
        }
        atomic_write_json(path, doc)
        path.chmod(0o600)  # a checkout's uncommitted diff is the user's own
        log(f"Nodes that reach {origin.url} fetch {origin.label} themselves")

    def _run_settings(self, job: Job) -> SlurmSettings:
        try:
            raw = json.loads((self.home.run_dir(job.run_name) / SETTINGS_FILE).read_text())
        except (OSError, ValueError):
            return self._settings()
        return SlurmSettings(
            conf=raw.get("conf"),
            partition=raw.get("partition"),
            time=raw.get("time"),
            account=raw.get("account"),
            extra=tuple(raw.get("extra") or ()),
        )

    # -------------------------------------------------------------------- run
    def _launch(self, job: Job, sink: LogSink) -> str:
        from gridrun.backends.slurm.script import batch_script, sbatch_args

        settings = self._run_settings(job)
        self._write_job(job)
        batch = job.exp_dir / BATCH_FILE
        atomic_write_text(batch, batch_script(job, sys.executable, self.home.root))
        job_id = self._sbatch(settings, [*sbatch_args(job, settings), str(batch)])
        sink.write("stderr", f"gridrun: submitted as Slurm job {job_id}")
        return job_id

    def _launch_many(self, jobs: Sequence[Job]) -> list[str | Exception]:
        """One job array per run and resource request: ``sbatch --array=0-(N-1)``, each
        task taking its experiment from the run's manifest by its index; a single
        experiment is a plain job. Handles are ``ARRAYID_INDEX``, as Slurm names tasks."""
        groups: dict[tuple[str, float, int | None, int], list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault((job.run_name, job.cpus, job.memory, job.gpus), []).append(i)
        out: list[str | Exception] = [RuntimeError("not launched")] * len(jobs)
        for idx in groups.values():
            batch = [jobs[i] for i in idx]
            if len(batch) == 1:
                out[idx[0]] = super()._launch_many(batch)[0]
                continue
            try:
                handles = self._submit_array(batch)
            except Exception as exc:
                handles = [exc] * len(batch)  # type: ignore[list-item]
            for i, h in zip(idx, handles, strict=True):
                out[i] = h
        return out

    def _submit_array(self, jobs: list[Job]) -> list[str]:
        import uuid

        from gridrun.backends.slurm.script import JOB_FILE, array_args, array_script

        settings = self._run_settings(jobs[0])
        run_dir = self.home.run_dir(jobs[0].run_name)
        run_dir.mkdir(parents=True, exist_ok=True)
        for job in jobs:
            self._write_job(job)
        tag = uuid.uuid4().hex[:8]
        manifest = run_dir / f"slurm-array-{tag}.txt"
        atomic_write_text(manifest, "".join(f"{j.exp_dir / JOB_FILE}\n" for j in jobs))
        batch = run_dir / f"slurm-array-{tag}.sh"
        script = array_script(manifest, sys.executable, self.home.root, jobs[0].run_name)
        atomic_write_text(batch, script)
        array_id = self._sbatch(settings, [*array_args(jobs, settings, run_dir), str(batch)])
        handles = [f"{array_id}_{i}" for i in range(len(jobs))]
        for job, handle in zip(jobs, handles, strict=True):
            with contextlib.suppress(OSError), LogSink(job.log_path) as sink:
                sink.write("stderr", f"gridrun: submitted as Slurm job {handle}")
        return handles

    def _write_job(self, job: Job) -> None:
        """The Job its task will run, beside it; an earlier attempt's exit record gone."""
        from gridrun.backends.slurm.script import JOB_FILE
        from gridrun.backends.slurm.task import EXIT_FILE

        job.exp_dir.mkdir(parents=True, exist_ok=True)
        (job.exp_dir / EXIT_FILE).unlink(missing_ok=True)
        atomic_write_json(job.exp_dir / JOB_FILE, {**job.to_dict(), "backend": self.name})

    def _sbatch(self, settings: SlurmSettings, args: list[str]) -> str:
        """Submit; the job id sbatch answers (``--parsable``: ``ID`` or ``ID;CLUSTER``)."""
        out = self._client(settings, ["sbatch", *args])
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise BackendError(f"sbatch answered {out.strip()!r}, not a job id.")
        return job_id

    def _poll_many(self, items: Sequence[tuple[Job, str]]) -> list[AttemptResult]:
        # One squeue per cluster for every job on it, those with an exit record too: a
        # task that a node failure signalled records an exit, and Slurm says why.
        by_cluster: dict[str | None, tuple[SlurmSettings, list[str]]] = {}
        for job, handle in items:
            settings = self._run_settings(job)
            by_cluster.setdefault(settings.conf, (settings, []))[1].append(handle)
        jobs: dict[str, SlurmJob] = {}
        for settings, handles in by_cluster.values():
            jobs.update(self._squeue(settings, handles))
        out = []
        for job, handle in items:
            out.append(self._one(job, handle, jobs.get(handle)))
        return out

    def _one(self, job: Job, handle: str, sj: SlurmJob | None) -> AttemptResult:
        """One job's state from its task's exit record and what squeue said of it."""
        rec = _exit_record(job, handle)
        node = (sj.nodes if sj is not None and not sj.waiting else "") or (
            str(rec.get("node") or "") if rec is not None else ""
        )
        if node:
            _note_node(self.home, job, f"{node} (Slurm job {handle})")
        if rec is not None:
            code = int(rec["exit_code"])
            when = (rec.get("started_at"), rec.get("finished_at"))  # as the task saw them
            if sj is not None and sj.preempted:  # its node failed: the task saw a SIGTERM
                why = _why(handle, sj)
                return AttemptResult.exited(
                    code, reason=TerminationReason.NODE_DIED, detail=why, node=node
                ).at(*when)
            return AttemptResult.exited(code, node=node).at(*when)
        if sj is None:
            return AttemptResult.gone(
                f"Slurm no longer knows job {handle}, and it left no exit record"
            )
        if sj.preempted:
            return AttemptResult.gone(_why(handle, sj), TerminationReason.NODE_DIED)
        if sj.waiting:
            why = f"queued in Slurm ({sj.reason})" if sj.reason else "queued in Slurm"
            # grid status shows it where the node will be, until it has one; the log
            # says each new reason once.
            _note_node(self.home, job, why)
            if self._waiting_said.get(handle) != why:
                self._waiting_said[handle] = why
                with contextlib.suppress(OSError), LogSink(job.log_path) as sink:
                    sink.write("stderr", f"gridrun: {why}")
            return AttemptResult(PollState.RUNNING, detail=why)
        if sj.active:
            return AttemptResult.running(node=node)
        # Ended, and its task wrote no record: killed before it could (a time limit's
        # SIGKILL, scancel), or it never started. Read again: written meanwhile?
        rec = _exit_record(job, handle)
        if rec is not None:
            return AttemptResult.exited(int(rec["exit_code"]), node=node)
        detail = f"Slurm ended job {handle} as {sj.state}" + (
            f" ({sj.reason})" if sj.reason else ""
        )
        return AttemptResult.gone(detail + " before its task recorded an exit")

    def _poll(self, job: Job, handle: str) -> AttemptResult:
        return self._poll_many([(job, handle)])[0]

    def _stop(self, job: Job, handle: str, grace: float) -> None:
        """SIGTERM to the task (it stops the experiment), then cancel after ``grace``."""
        settings = self._run_settings(job)
        with contextlib.suppress(BackendError):
            self._client(settings, ["scancel", "--signal=TERM", "--full", handle])
        deadline = time.monotonic() + grace + 5.0  # the task's own grace, and its record
        while time.monotonic() < deadline:
            if _exit_record(job, handle) is not None:
                break
            try:
                sj = self._squeue(settings, [handle]).get(handle)
            except BackendError:
                sj = None
            if sj is None or not sj.active or sj.waiting:
                break
            time.sleep(0.2)
        with contextlib.suppress(BackendError):
            self._client(settings, ["scancel", handle])

    def _collect(self, job: Job, handle: str | None, keep_workdir: bool) -> list[str]:
        return collect_workdir(job)

    def _release(self, job: Job, handle: str | None) -> None:
        from gridrun.backends.slurm.task import EXIT_FILE

        self._local._release(job, None)
        (job.exp_dir / EXIT_FILE).unlink(missing_ok=True)
        if handle is not None:
            self._waiting_said.pop(handle, None)

    # --------------------------------------------------------------- helpers
    def _squeue(self, settings: SlurmSettings, handles: list[str]) -> dict[str, SlurmJob]:
        """Every job of ``handles`` Slurm still lists, in one call."""
        try:
            out = self._client(settings, ["squeue", "--json", f"--jobs={','.join(handles)}"])
        except BackendError as exc:
            # Every id purged (past MinJobAge): squeue refuses the list as invalid.
            if "Invalid job id" in exc.message:
                return {}
            raise
        errors = json_errors(out)
        if errors:  # squeue --json exits 0 with its errors in the JSON (controller down)
            if all("Invalid job id" in e for e in errors):
                return {}
            raise BackendError(f"squeue failed: {errors[0]}")
        return parse_jobs(out)

    def _client(self, settings: SlurmSettings, argv: list[str]) -> str:
        """Run one Slurm client command; BackendError with its one-line reason."""
        if shutil.which(argv[0]) is None:
            raise BackendError(
                f"Slurm's client commands are not installed here ({argv[0]} is not on PATH).",
                hint="Install them (Debian: apt-get install slurm-client) and point "
                "SLURM_CONF (or slurm.conf in GRID_HOME/config.yaml) at the cluster's config.",
            )
        env = settings.client_env()
        conf = env.get("SLURM_CONF") or "/etc/slurm/slurm.conf"
        if not Path(conf).is_file():
            # Without a config file Slurm's clients look for one in DNS (configless
            # mode), which here means waiting out every resolver's timeout.
            raise BackendError(
                f"No Slurm config file at {conf}.",
                hint="Point SLURM_CONF (or --slurm_conf, slurm.conf in GRID_HOME/config.yaml, "
                "or `grid clusters add NAME --backend slurm --address FILE`) at the "
                "cluster's slurm.conf.",
            )
        try:
            proc = subprocess.run(
                argv,
                env=env,
                capture_output=True,
                text=True,
                timeout=CLIENT_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BackendError(f"{argv[0]} did not answer in {CLIENT_TIMEOUT:.0f} s.") from exc
        if proc.returncode != 0:
            line = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            why = (line[-1] if line else f"exit {proc.returncode}").rstrip(".")
            if "configuration source" in why or "slurm.conf" in why:
                hint = (
                    "Point SLURM_CONF (or --slurm_conf, slurm.conf in GRID_HOME/config.yaml, "
                    "or `grid clusters add NAME --backend slurm --address FILE`) at the "
                    "cluster's slurm.conf."
                )
            else:
                hint = "Is slurmctld up? `scontrol ping` (with the same SLURM_CONF) says."
            raise BackendError(f"{argv[0]} failed: {why}.", hint=hint)
        return proc.stdout


def _why(handle: str, sj: SlurmJob) -> str:
    where = f" on {sj.nodes}" if sj.nodes else ""
    return f"Slurm job {handle} {sj.state}" + (f" ({sj.reason})" if sj.reason else "") + where


def _exit_record(job: Job, handle: str) -> dict | None:
    """The task's record of how this job ended, when it is this job's."""
    from gridrun.backends.slurm.task import EXIT_FILE

    try:
        rec = json.loads((job.exp_dir / EXIT_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or str(rec.get("slurm_job")) != handle:
        return None
    return rec


def _note_node(home, job: Job, text: str) -> None:  # type: ignore[no-untyped-def]
    path: Path = home.experiment_node_file(job.experiment_name)
    with contextlib.suppress(OSError):
        if not path.exists() or path.read_text() != text:
            atomic_write_text(path, text, fsync=False)
