"""The agent-side Slurm backend: sbatch, squeue, scancel behind gridrun's protocol.

One experiment is one Slurm job (its handle is the job id). The environment is the
local backend's uv virtualenv, built once per key in GRID_HOME, which the nodes share
(see the package docstring); each job's task (``runner.py``, following the plan this
backend writes beside the job: ``plan.py``) runs the experiment on its node as the
local backend does, writing its log and exit record into the experiment's folder.

Watching is batched: :meth:`SlurmBackend._poll_many` reads the tasks' exit records
and asks ``squeue --json`` once for every other job it is given (the agent's watcher
asks less often, off its rounds: :meth:`SlurmBackend._poll_watched`). The task's exit
record says how a job ended; Slurm's own state says the rest: waiting (with its
reason), running, or ended by its node or the scheduler (``NODE_FAIL``,
``PREEMPTED``, ``BOOT_FAIL``), which is a preemption, resumed by ``--auto_resume``
with a new job. A ``slurmctld`` that does not answer is ``unknown``, never ``gone``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
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
SQUEUE_EVERY = 1.0  # seconds between two squeue calls of a watcher (exit records: each round)


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
        self._last: dict[str, AttemptResult] = {}  # handle -> what squeue last told
        self._squeue_due = 0.0  # monotonic time of the next squeue call
        self._call: _SqueueCall | None = None  # the watcher's, in flight
        self._watch_lock = threading.Lock()

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

        from gridrun.backends.slurm.script import PLAN_FILE, array_args, array_script

        settings = self._run_settings(jobs[0])
        run_dir = self.home.run_dir(jobs[0].run_name)
        run_dir.mkdir(parents=True, exist_ok=True)
        for job in jobs:
            self._write_job(job)
        tag = uuid.uuid4().hex[:8]
        manifest = run_dir / f"slurm-array-{tag}.txt"
        atomic_write_text(manifest, "".join(f"{j.exp_dir / PLAN_FILE}\n" for j in jobs))
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
        """The Job its task will run and the runner's plan, beside it; an earlier
        attempt's exit record gone."""
        from gridrun.backends.slurm.plan import write_plan
        from gridrun.backends.slurm.runner import EXIT_FILE
        from gridrun.backends.slurm.script import JOB_FILE

        job.exp_dir.mkdir(parents=True, exist_ok=True)
        (job.exp_dir / EXIT_FILE).unlink(missing_ok=True)
        # Renamed into place, not fsynced, as job.json (agent/jobs.py): an fsync each
        # was most of the agent's time between a sweep's submission and its sbatch.
        atomic_write_json(
            job.exp_dir / JOB_FILE, {**job.to_dict(), "backend": self.name}, fsync=False
        )
        write_plan(self.home.root, self.home.nodes, job, self.home.run_dir(job.run_name))

    def _sbatch(self, settings: SlurmSettings, args: list[str]) -> str:
        """Submit; the job id sbatch answers (``--parsable``: ``ID`` or ``ID;CLUSTER``)."""
        out = self._client(settings, ["sbatch", *args])
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise BackendError(f"sbatch answered {out.strip()!r}, not a job id.")
        return job_id

    def _poll_many(self, items: Sequence[tuple[Job, str]]) -> list[AttemptResult]:
        """Each job's state now: its task's exit record first, one ``squeue --json``
        per cluster for the jobs whose end their record does not tell."""
        records = {handle: _exit_record(job, handle) for job, handle in items}
        ask = [(job, h) for job, h in items if _slurm_tells(records[h])]
        answered = _SqueueCall(self._squeue, self._groups(ask), wait=True) if ask else None
        return self._results(items, records, answered)

    def _poll_watched(self, items: Sequence[tuple[Job, str]]) -> list[AttemptResult]:
        """The watcher's rounds: :meth:`_poll_many`, with ``squeue`` off their path.

        Records are read every round (a file read each). ``squeue`` is asked at most
        every :data:`SQUEUE_EVERY` seconds, in a thread of its own
        (:class:`_SqueueCall`): on a busy machine one call can take seconds, which the
        records of the jobs ending meanwhile must not wait for. Until it answers, a
        job is as Slurm last said (queued, running, or unknown when it did not
        answer). A job Slurm was never asked about waits for its answer, and so does a
        task that a signal stopped: a node's failure signals the task too, and only
        Slurm says why.
        """
        with self._watch_lock:
            answered = None
            if self._call is not None and self._call.done():
                answered, self._call = self._call, None
            # Read after the answer: a job that squeue no longer listed had written
            # its record, if it wrote one, before squeue ran.
            records = {handle: _exit_record(job, handle) for job, handle in items}
            ask = [(job, h) for job, h in items if _slurm_tells(records[h])]
            urgent = [
                h
                for _, h in ask
                if h not in self._last
                or (records[h] is not None and not _fits(answered, h, records[h]))
            ]
            now = time.monotonic()
            if ask and (urgent or (self._call is None and now >= self._squeue_due)):
                if self._call is not None:  # in flight, but too old for the urgent ones
                    self._call.wait()
                self._call = _SqueueCall(self._squeue, self._groups(ask), wait=bool(urgent))
                self._squeue_due = now + SQUEUE_EVERY
                if urgent:
                    answered, self._call = self._call, None
            return self._results(items, records, answered)

    def _groups(self, items: list[tuple[Job, str]]) -> list[tuple[SlurmSettings, list[str]]]:
        """The handles of ``items`` by the cluster they run on: one squeue each."""
        groups: dict[str | None, tuple[SlurmSettings, list[str]]] = {}
        for job, handle in items:
            settings = self._run_settings(job)
            groups.setdefault(settings.conf, (settings, []))[1].append(handle)
        return list(groups.values())

    def _results(
        self,
        items: Sequence[tuple[Job, str]],
        records: dict[str, dict | None],
        answered: _SqueueCall | None,
    ) -> list[AttemptResult]:
        out = []
        for job, handle in items:
            rec = records[handle]
            if not _slurm_tells(rec):
                out.append(self._one(job, handle, None, rec))
            elif _fits(answered, handle, rec):
                assert answered is not None
                if answered.error is not None:  # the controller did not answer: unknown
                    error = answered.error
                    result = AttemptResult.unknown(f"{type(error).__name__}: {error}")
                else:
                    result = self._one(job, handle, answered.jobs.get(handle), rec)
                self._last[handle] = result
                out.append(result)
            else:  # as Slurm last said, until its next answer
                out.append(
                    self._last.get(handle) or AttemptResult(PollState.RUNNING, detail="queued")
                )
        return out

    def _one(self, job: Job, handle: str, sj: SlurmJob | None, rec: dict | None) -> AttemptResult:
        """One job's state from its task's exit record and what squeue said of it."""
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
        from gridrun.backends.slurm.runner import EXIT_FILE

        self._local._release(job, None)
        (job.exp_dir / EXIT_FILE).unlink(missing_ok=True)
        if handle is not None:
            self._waiting_said.pop(handle, None)
            self._last.pop(handle, None)

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


class _SqueueCall:
    """``squeue`` for some jobs, one call per cluster, in a thread of its own."""

    def __init__(
        self,
        squeue: Callable[[SlurmSettings, list[str]], dict[str, SlurmJob]],
        groups: list[tuple[SlurmSettings, list[str]]],
        *,
        wait: bool,
    ) -> None:
        """``wait``: in this thread, answered when this returns."""
        self.handles = {h for _, handles in groups for h in handles}
        self.jobs: dict[str, SlurmJob] = {}
        self.error: Exception | None = None
        self.at = time.time()  # Slurm's answer is of this moment, or later
        self._thread: threading.Thread | None = None
        if wait:
            self._run(squeue, groups)
            return
        self._thread = threading.Thread(target=self._run, args=(squeue, groups), daemon=True)
        self._thread.start()

    def _run(
        self,
        squeue: Callable[[SlurmSettings, list[str]], dict[str, SlurmJob]],
        groups: list[tuple[SlurmSettings, list[str]]],
    ) -> None:
        try:
            for settings, handles in groups:
                self.jobs.update(squeue(settings, handles))
        except Exception as exc:  # a BackendError, or anything else: unknown, never gone
            self.error = exc

    def done(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()


def _fits(call: _SqueueCall | None, handle: str, rec: dict | None) -> bool:
    """Whether ``call`` answered about this job, and can tell about it: not when its
    task was signalled after squeue was asked (a node's failure would not show yet)."""
    if call is None or handle not in call.handles:
        return False
    return rec is None or float(rec.get("finished_at") or 0) <= call.at


def _slurm_tells(rec: dict | None) -> bool:
    """Whether only Slurm can say how this job stands: no record of its end yet, or
    its task was signalled (a stop, or its node's failure: Slurm tells which)."""
    return rec is None or bool(rec.get("stopped"))


def _why(handle: str, sj: SlurmJob) -> str:
    where = f" on {sj.nodes}" if sj.nodes else ""
    return f"Slurm job {handle} {sj.state}" + (f" ({sj.reason})" if sj.reason else "") + where


def _exit_record(job: Job, handle: str) -> dict | None:
    """The task's record of how this job ended, when it is this job's."""
    from gridrun.backends.slurm.runner import EXIT_FILE

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
