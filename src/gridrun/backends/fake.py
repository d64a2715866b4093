"""An in-process, deterministic backend for tests: the protocol with no engine behind it.

Like httpx's ``MockTransport``, it ships with the library so that the agent's logic and
the conformance suite can be driven without processes or containers, and so that
failures real engines only show on a bad day can be injected on purpose:

* ``engine_down``: every poll answers ``unknown`` (an engine that cannot be reached);
* :meth:`FakeBackend.lose`: the engine forgets a job (``gone``);
* ``slow_stop``: a job ignores SIGTERM and ends only when killed after the grace period;
* :meth:`FakeBackend.preempt`: the machine under a job goes away (a spot reclaim): the
  job gets SIGTERM from the engine, saves its state and exits 0, and the instance
  reports the attempt as ended by its engine (``TerminationReason.ENGINE_RESTARTED``),
  as Docker does after an engine restart: an exit 0 that must not be recorded as a
  success.

A fake job does not run its script: it acts out the directives in the script's
comments, so one script serves the fake and the real backends alike::

    # fake: stdout hello        print a line to stdout
    # fake: stderr oops         print a line to stderr
    # fake: write out.txt yes   create an artifact (under the job's working copy)
    # fake: sleep 0.5           take this long (a stop cuts it short)
    # fake: ignore-sigterm      only a kill ends it
    # fake: exit 3              end with this code (0 by default)

A stopped job exits 143 (SIGTERM, handled by its default action) or 137 when killed.
"""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gridrun.backends.base import (
    AttemptResult,
    Backend,
    BuildLog,
    BuildRequest,
    Capabilities,
    Job,
    TerminationReason,
    collect_workdir,
)
from gridrun.home import GridHome
from gridrun.logs import LogSink

DIRECTIVE = "# fake:"


@dataclass
class _FakeJob:
    job: Job
    sink: LogSink
    thread: threading.Thread | None = None
    code: int | None = None
    term: threading.Event = field(default_factory=threading.Event)
    kill: threading.Event = field(default_factory=threading.Event)
    lost: bool = False
    preempted: str | None = None  # why the engine ended it, when it did
    created: list[str] = field(default_factory=list)


def directives(script: Path) -> list[tuple[str, str]]:
    out = []
    for line in script.read_text().splitlines():
        line = line.strip()
        if line.startswith(DIRECTIVE):
            verb, _, arg = line[len(DIRECTIVE) :].strip().partition(" ")
            out.append((verb, arg.strip()))
    return out


class _Engine:
    """The fake engine: one per process, shared by every instance, like a real one."""

    def __init__(self) -> None:
        self.jobs: dict[str, _FakeJob] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.down = False


ENGINE = _Engine()


class FakeBackend(Backend):
    name = "fake"
    # It schedules itself (no machine pool), like Ray or Kubernetes, and its jobs
    # outlive any supervisor: the shape of an engine backend.
    capabilities = Capabilities(
        gpus=True, datastores=True, shares_machine=False, survives_supervisor=True
    )
    poll_interval = 0.02

    def __init__(self, home: GridHome | None = None) -> None:
        super().__init__(home)
        self.slow_stop = False
        self._jobs = ENGINE.jobs
        self._lock = ENGINE.lock

    @property
    def engine_down(self) -> bool:
        return ENGINE.down

    @engine_down.setter
    def engine_down(self, down: bool) -> None:
        ENGINE.down = down

    # ------------------------------------------------------- injected failures
    def lose(self, handle: str) -> None:
        """The engine forgets the job, as a node that vanished would."""
        with self._lock:
            self._jobs[handle].lost = True
            self._jobs[handle].kill.set()

    def preempt(self, handle: str, why: str = "the fake engine reclaimed its machine") -> None:
        """The engine takes the job's machine back: SIGTERM, then its code as it exits."""
        with self._lock:
            self._jobs[handle].preempted = why
            self._jobs[handle].term.set()

    # ------------------------------------------------------------------ build
    def environment_key(self, req: BuildRequest) -> str:
        return f"fake-{req.python}-{len(req.requirements)}"

    def _build(self, req: BuildRequest, log: BuildLog) -> str:
        log("fake environment: nothing to build")
        return self.environment_key(req)

    # -------------------------------------------------------------------- run
    def _launch(self, job: Job, sink: LogSink) -> str:
        from gridrun.project import materialize

        if job.workdir.exists():
            shutil.rmtree(job.workdir)
        materialize(job.snapshot_manifest, job.objects_dir, job.workdir)
        steps = directives(job.workdir / job.script)
        handle = f"fake-{next(ENGINE.ids)}"
        state = _FakeJob(job, sink)
        state.thread = threading.Thread(target=self._act, args=(state, steps), daemon=True)
        with self._lock:
            self._jobs[handle] = state
        state.thread.start()
        return handle

    def _act(self, state: _FakeJob, steps: list[tuple[str, str]]) -> None:
        ignore_term = self.slow_stop
        code = 0
        for verb, arg in steps:
            if self._ended(state, ignore_term):
                break
            if verb in ("stdout", "stderr"):
                # As an engine's output: appended to the log, not written through
                # the launch's sink, which the agent's watcher closes once launched.
                with LogSink(state.job.log_path) as sink:
                    sink.write(verb, arg)
            elif verb == "write":
                rel, _, text = arg.partition(" ")
                path = state.job.workdir / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            elif verb == "sleep":
                deadline = time.monotonic() + float(arg)
                while time.monotonic() < deadline and not self._ended(state, ignore_term):
                    time.sleep(0.01)
            elif verb == "ignore-sigterm":
                ignore_term = True
            elif verb == "exit":
                code = int(arg)
        if state.preempted and not state.kill.is_set():
            # It saved its checkpoint and left cleanly: only the engine knows why.
            code = 0
        elif state.kill.is_set():
            code = 137
        elif state.term.is_set() and not ignore_term:
            code = 143
        state.code = code

    @staticmethod
    def _ended(state: _FakeJob, ignore_term: bool) -> bool:
        return state.kill.is_set() or (state.term.is_set() and not ignore_term)

    def _find(self, handle: str) -> _FakeJob | None:
        with self._lock:
            return self._jobs.get(handle)

    def _poll(self, job: Job, handle: str) -> AttemptResult:
        if self.engine_down:
            return AttemptResult.unknown("the fake engine is down")
        state = self._find(handle)
        if state is None or state.lost:
            return AttemptResult.gone("lost: the fake engine does not know it")
        if state.code is None:
            return AttemptResult.running()
        if state.preempted:
            return AttemptResult.exited(
                state.code, reason=TerminationReason.ENGINE_RESTARTED, detail=state.preempted
            )
        return AttemptResult.exited(state.code)

    def _stop(self, job: Job, handle: str, grace: float) -> None:
        state = self._find(handle)
        if state is None or state.thread is None:
            return
        state.term.set()
        state.thread.join(timeout=grace)
        if state.thread.is_alive():
            state.kill.set()
            state.thread.join()

    def _collect(self, job: Job, handle: str | None, keep_workdir: bool) -> list[str]:
        return collect_workdir(job)

    def _release(self, job: Job, handle: str | None) -> None:
        if handle is not None:
            state = self._find(handle)
            if state is not None:
                state.kill.set()
                if state.thread is not None:
                    state.thread.join(timeout=5)
            with self._lock:
                self._jobs.pop(handle, None)
        shutil.rmtree(job.workdir, ignore_errors=True)
