"""One watcher per engine backend, inside the agent: no local process per experiment.

A backend whose engine schedules and supervises experiments itself (Ray today, Slurm
or Kubernetes next: ``Capabilities.shares_machine`` False) gets no forked supervisor
per experiment. The agent owns one :class:`EngineWatcher` for it, a thread holding the
engine's connection, which

* launches what the agent claimed, in batches (``Backend.launch``), recording the
  agent as the attempt's supervisor, so a ``grid stop`` or a reconciling agent knows
  whom to ask;
* polls every running attempt with one batched ``Backend.poll`` per round, on a
  backoff from :data:`MIN_ROUND` to :data:`MAX_ROUND` seconds while nothing changes,
  as submitit's shared watcher does for ``sacct``;
* sends the stops that ``grid stop`` recorded in the store (and the rehearsed
  preemptions of ``grid preempt``) through ``Backend.stop``;
* ends an attempt with the forked supervisor's own code
  (:func:`~gridrun.agent.supervisor.wrap_up`: collect, last metrics pass, exit record,
  release), then settles it (:func:`~gridrun.agent.supervisor.settle_attempt`);
* adopts, after an agent died, the running attempts its predecessor watched: the
  same answers as :mod:`gridrun.agent.reconcile` (never ``unknown`` taken for gone).

What it asks of a backend is the narrow part of the protocol written in
:mod:`gridrun.backends.base`: launch, a batched poll answering an
:class:`~gridrun.attempts.AttemptResult` each, stop, collect, release.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gridrun.agent.jobs import make_job, read_job, save_job
from gridrun.agent.supervisor import read_exit_record, settle_attempt, wrap_up
from gridrun.attempts import AttemptResult, PollState
from gridrun.backends import Backend, backend_class, get_backend
from gridrun.backends.base import Job, read_handle
from gridrun.home import GridHome
from gridrun.logs import LogSink
from gridrun.processes import ProcessRef
from gridrun.store.db import Store
from gridrun.store.endings import conclude
from gridrun.store.models import Experiment, Run, Status

if TYPE_CHECKING:
    from gridrun.config import MachineConfig
    from gridrun.metrics.ingest import IngestTarget

log = logging.getLogger("gridrun.agent.watcher")

MIN_ROUND = 0.1  # seconds between polls right after a change
MAX_ROUND = 1.0  # ... and at most, while nothing changes
INGEST_SECONDS = 1.0  # live metrics: each running attempt's log, this often
UNREACHABLE_SECONDS = 300.0  # an engine silent this long: the attempt's end is unknown


def engine_watched(exp: Experiment) -> bool:
    """Whether the agent's engine watcher, not a forked supervisor, runs ``exp``."""
    try:
        return not backend_class(exp.backend, testing=True).capabilities.shares_machine
    except Exception:
        return False


@dataclass
class Watched:
    """One running attempt the watcher follows."""

    exp_id: int
    job: Job
    handle: str
    attempt: int
    started_at: float
    target: IngestTarget | None = None
    ingested: int = -1  # the log's size at the last metrics pass
    stop_sent: bool = False
    waited: bool = False  # the engine held it queued (no node yet) at some poll
    placed: bool = False
    preempted: str | None = None  # grid preempt's reason, once seen
    unknown_since: float | None = None


class EngineWatcher:
    """The agent's watcher of one engine backend (see the module docstring)."""

    def __init__(self, home: GridHome, backend_name: str, backend: Backend | None = None) -> None:
        self.home = home
        self.backend_name = backend_name
        self.backend = backend or get_backend(backend_name, home)
        self.me = ProcessRef.current()  # the supervisor of record of every attempt here
        self.watching: dict[int, Watched] = {}
        self._launches: list[tuple[int, str]] = []  # (experiment id, claim token)
        self._adopt: list[Experiment] = []
        self._stops: set[int] = set()
        self._reasons: dict[int, str] = {}  # grid preempt's, by experiment id, until sent
        self._machine_cache: tuple[int | None, MachineConfig] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watch {backend_name}")
        self._thread.daemon = True
        self._thread.start()

    # ------------------------------------------------------ from the agent
    def submit(self, claims: list[tuple[int, str]]) -> None:
        """Launch these claimed experiments (id, claim token) in the next batch."""
        with self._lock:
            self._launches += claims
        self._wake.set()

    def sync(self, running: list[Experiment]) -> None:
        """The store's running experiments of this backend, read by the agent's step.

        Those nobody watches (their agent died) are adopted; a stop recorded by
        ``grid stop``, or a preemption rehearsed by ``grid preempt`` (its reason file,
        read here, at each of the agent's steps, which ``grid preempt`` wakes), is sent.
        """
        reasons = {
            exp.id: reason
            for exp in running
            if (reason := _read_reason(self.home.experiment(exp.name).preempt_reason))
        }
        with self._lock:
            known = set(self.watching) | {e.id for e in self._adopt}
            for exp in running:
                if exp.id not in known and not self._supervised_elsewhere(exp):
                    self._adopt.append(exp)
                if exp.stop_requested:
                    self._stops.add(exp.id)
            self._reasons.update(reasons)
        self._wake.set()

    def close(self, timeout: float = 10.0) -> None:
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout)

    def _machine(self) -> MachineConfig:
        """``GRID_HOME/config.yaml``, read again only when it changed (a hundred
        experiments launched or ended at once need it a hundred times)."""
        from gridrun.config import load_machine_config

        try:
            stamp = self.home.config_path.stat().st_mtime_ns
        except OSError:
            stamp = None
        if self._machine_cache is None or self._machine_cache[0] != stamp:
            self._machine_cache = (stamp, load_machine_config(self.home.config_path))
        return self._machine_cache[1]

    def _supervised_elsewhere(self, exp: Experiment) -> bool:
        """A live process other than this agent supervises it (an older gridrun's)."""
        if not exp.supervisor_pid or exp.supervisor_started is None:
            return False
        ref = ProcessRef(exp.supervisor_pid, int(exp.supervisor_started))
        return ref != self.me and ref.alive()

    # ---------------------------------------------------------- the thread
    def _loop(self) -> None:
        store = Store(self.home.db_path)
        interval = MIN_ROUND
        last_ingest = 0.0
        try:
            while not self._closed.is_set():
                changed = False
                for step in (self._launch_batch, self._adopt_new, self._send_stops, self._poll):
                    try:
                        changed |= step(store)
                    except Exception:
                        log.exception("%s watcher: %s failed", self.backend_name, step.__name__)
                if time.monotonic() - last_ingest > INGEST_SECONDS:
                    last_ingest = time.monotonic()
                    self._ingest(store)
                interval = MIN_ROUND if changed else min(MAX_ROUND, interval * 1.5)
                self._wake.wait(interval)
                self._wake.clear()
        finally:
            store.close()

    def _launch_batch(self, store: Store) -> bool:
        """Start what the agent claimed, with one request to the engine where it can."""
        with self._lock:
            batch, self._launches = self._launches, []
        if not batch:
            return False
        machine = self._machine()
        runs: dict[int, Run] = {}  # read once for all of a run's experiments
        ready = [
            w for exp_id, token in batch if (w := self._start(store, exp_id, token, machine, runs))
        ]
        if ready:
            try:
                handles = self.backend.launch_many([w.job for w in ready])
            except Exception as exc:  # the whole request failed: so did each attempt
                handles = [exc] * len(ready)
            for w, handle in zip(ready, handles, strict=True):
                self._launched(store, w, handle)
        return bool(batch)

    def _start(
        self, store: Store, exp_id: int, token: str, machine: MachineConfig, runs: dict[int, Run]
    ) -> Watched | None:
        """Its job written and its attempt started in the store; None: lost the claim."""
        exp = store.get_experiment(exp_id)
        run = runs.get(exp.run_id) or store.get_run_by_id(exp.run_id, with_experiments=False)
        runs[exp.run_id] = run
        job = make_job(self.home, run, exp, [], machine.stop_grace_seconds)
        save_job(job, run.backend)  # before it is running: stop and reconcile read it
        started = store.start(
            exp_id,
            token,
            supervisor_pid=self.me.pid,
            supervisor_started=self.me.start,
            gpu_ids=[],
            started_at=exp.started_at or time.time(),
        )
        if not started:  # stopped meanwhile, or the claim expired
            return None
        attempt = store.get_experiment(exp_id).attempt
        job.paths.preempt_reason.unlink(missing_ok=True)
        return Watched(exp_id, job, "", attempt, time.time())

    def _launched(self, store: Store, w: Watched, handle: str | Exception) -> None:
        if isinstance(handle, Exception):  # the backend could not start it: it failed
            error = f"{type(handle).__name__}: {handle}"
            with contextlib.suppress(OSError), LogSink(w.job.log_path) as sink:
                sink.write("stderr", f"gridrun: {error}")
            w.handle = read_handle(w.job) or ""
            self._end(store, w, AttemptResult.failed(error))
            return
        w.handle = handle
        store.record_handle(w.exp_id, w.handle)
        self.watching[w.exp_id] = w

    def _adopt_new(self, store: Store) -> bool:
        """Take over running attempts whose watcher (an agent) died."""
        from gridrun.agent.reconcile import reconcile_experiment

        with self._lock:
            batch, self._adopt = self._adopt, []
        for exp in batch:
            exp = store.get_experiment(exp.id)
            if exp.status != Status.RUNNING or exp.id in self.watching:
                continue
            exp_dir = self.home.experiment_dir(exp.name)
            loaded = read_job(self.home.experiment(exp.name).job)
            handle = exp.backend_ref or (read_handle(loaded[0]) if loaded else None)
            record = read_exit_record(exp_dir)
            ended = record is not None and record[0] in (None, exp.attempt)
            if loaded is None or handle is None or ended:
                # Nothing to follow (it died before its launch) or already ended:
                # settled as reconciliation settles any attempt whose supervisor died.
                reconcile_experiment(store, self.home, exp)
                continue
            log.info("%s watcher: adopted %s", self.backend_name, exp.name)
            self.watching[exp.id] = Watched(
                exp.id, loaded[0], handle, exp.attempt, exp.started_at or time.time()
            )
        return bool(batch)

    def _send_stops(self, store: Store) -> bool:
        with self._lock:
            stops, self._stops = self._stops, set()
            reasons = dict(self._reasons)
        sent = False
        for w in self.watching.values():
            if w.stop_sent:
                continue
            reason = None
            if w.exp_id not in stops:
                reason = reasons.get(w.exp_id)
                if reason is None:
                    continue
            w.stop_sent, w.preempted, sent = True, reason, True
            try:
                self.backend.stop(w.job, w.handle, w.job.stop_grace)
            except Exception as exc:
                log.warning("%s watcher: stopping %s: %s", self.backend_name, w.job, exc)
                w.stop_sent = False  # asked again next round
                if w.exp_id in stops:
                    with self._lock:
                        self._stops.add(w.exp_id)
                continue
            with self._lock:
                self._reasons.pop(w.exp_id, None)
        return sent

    def _poll(self, store: Store) -> bool:
        if not self.watching:
            return False
        watched = list(self.watching.values())
        results = self.backend.poll([(w.job, w.handle) for w in watched], fresh=False)
        changed = False
        now = time.monotonic()
        for w, result in zip(watched, results, strict=True):
            if result.state == PollState.UNKNOWN:
                # Never taken for gone; after long enough, its end is unknown.
                w.unknown_since = w.unknown_since or now
                if now - w.unknown_since > UNREACHABLE_SECONDS:
                    why = (
                        f"The {self.backend_name} engine did not answer for "
                        f"{UNREACHABLE_SECONDS:.0f}s; the experiment's exit code is unknown: "
                        f"{result.detail}"
                    )
                    self._end(store, w, AttemptResult.failed(why))
                    changed = True
                continue
            w.unknown_since = None
            if result.state == PollState.RUNNING and not w.placed:
                if result.detail.startswith("queued"):
                    w.waited = True
                elif result.node:
                    w.placed = True
                    if w.waited:  # its run time starts now, not at the handover
                        store.placed(w.exp_id, time.time())
                        changed = True
            if result.ended:
                if w.waited and not w.placed and result.started_at:
                    # Placed and ended between two polls: its engine says when it began.
                    store.placed(w.exp_id, result.started_at)
                self._end(store, w, result)
                changed = True
        return changed

    def _ingest(self, store: Store) -> None:
        """Live metrics from each running attempt's log (what its supervisor would do).

        Only the logs that grew since the last pass are read: a hundred experiments
        that print nothing new cost a hundred ``stat`` calls, not a hundred passes.
        """
        from gridrun.metrics.ingest import ingest_experiment, target_for

        for w in list(self.watching.values()):
            try:
                size = w.job.log_path.stat().st_size
            except OSError:
                continue
            if size == w.ingested or (w.waited and not w.placed):
                continue  # nothing new; or only gridrun's lines, while its engine queues it
            try:
                if w.target is None:
                    run = store.get_run_by_id(store.get_experiment(w.exp_id).run_id, False)
                    w.target = target_for(self.home, w.job, run.spec, self._machine())
                ingest_experiment(store, w.target, files=False)
                w.ingested = size
            except Exception as exc:  # metrics are never worth failing an experiment for
                log.warning("metrics of %s: %s", w.job.experiment_name, exc)

    # ------------------------------------------------------------ the end
    def _end(self, store: Store, w: Watched, result: AttemptResult) -> None:
        """End one attempt as its forked supervisor would, and settle it in the store."""
        from gridrun.metrics.ingest import final_ingest, target_for

        self.watching.pop(w.exp_id, None)
        with self._lock:
            self._reasons.pop(w.exp_id, None)
        job, backend = w.job, self.backend
        exp = store.get_experiment(w.exp_id)
        if exp.status != Status.RUNNING or exp.attempt != w.attempt:
            return  # settled meanwhile (by a grid stop that found us gone)
        if result.exit_code is None:  # lost by its engine: no exit code to tell
            result = replace(result, exit_code=-1)
        run = store.get_run_by_id(exp.run_id, with_experiments=False)
        target = w.target or target_for(self.home, job, run.spec, self._machine())
        with LogSink(job.log_path) as sink:
            if result.state == PollState.GONE:
                sink.write("stderr", f"gridrun: {result.detail}")
            preempted = None if exp.stop_requested else w.preempted
            result = conclude(
                result,
                stop_requested=exp.stop_requested,
                stop_sent=w.stop_sent,
                preempted=preempted,
            )
            result = wrap_up(
                backend,
                job,
                w.handle or None,
                result.at(w.started_at, None),
                w.attempt,
                sink,
                lambda: final_ingest(store, target),
            )
        status = settle_attempt(store, exp, result, w.attempt)
        if status is not None and status.finished:
            shutil.rmtree(job.resume_dir, ignore_errors=True)


def _read_reason(path: Path) -> str | None:
    """``grid preempt``'s reason, written before it asks: a rehearsed preemption."""
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
