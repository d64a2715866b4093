"""The agent's loop: build, schedule, reconcile; exit when idle.

Started on demand by ``grid run`` (and by any command that finds work without an
agent). Woken immediately by SIGUSR1 (from the CLI after a submission and from
supervisors when an experiment ends) through a self-pipe, otherwise every second.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

from gridrun.agent.builder import build_run
from gridrun.agent.capacity import machine_capacity
from gridrun.agent.detach import settle_daemon
from gridrun.agent.launcher import Launcher
from gridrun.agent.reconcile import reconcile
from gridrun.agent.scheduler import place
from gridrun.agent.watcher import EngineWatcher
from gridrun.backends import Backend, get_backend
from gridrun.config import load_machine_config
from gridrun.home import GridHome
from gridrun.processes import ProcessRef, read_ref, write_ref
from gridrun.store.db import Store
from gridrun.store.models import Experiment, Run, Status
from gridrun.sweep.search import SEARCH_POLL_SECONDS, SearchDriver

log = logging.getLogger("gridrun.agent")
POLL_SECONDS = 1.0
LOCK_TRIES = 25
QUEUE_BATCH = 256  # pending experiments read per query from the head of the queue


class Agent:
    def __init__(self, home: GridHome) -> None:
        self.home = home
        self.store = Store(home.db_path)
        self.config = load_machine_config(home.config_path)
        self.capacity = machine_capacity(self.config)
        self.builders: dict[int, threading.Thread] = {}
        self.exiting = False
        self.wake_fd: int | None = None
        self.launcher = Launcher(home)
        self.backends: dict[str, Backend] = {}
        self.engine_run: dict[int, bool] = {}  # run id -> its engine places it (Ray)
        self.search = SearchDriver(
            self.store, home.run_dir, self._trial_slots, lambda exp: _stop_trial(home, exp)
        )
        # One watcher per engine backend (no forked supervisor per experiment there).
        self.watchers: dict[str, EngineWatcher] = {}

    def wake(self) -> None:
        """Interrupt the loop's wait (a build finished, an experiment can start)."""
        if self.wake_fd is not None:
            try:
                os.write(self.wake_fd, b"w")
            except OSError:
                pass

    def _build(self, run_id: int) -> None:
        try:
            build_run(self.home, run_id)
        finally:
            self.wake()

    # ------------------------------------------------------------ one step
    def step(self) -> None:
        running = self.store.experiments(Status.RUNNING)
        engine = self._engine_runs({e.run_id for e in running})
        by_backend: dict[str, list[Experiment]] = {}
        for e in running:
            if e.run_id in engine:
                by_backend.setdefault(e.backend, []).append(e)
        for name, exps in by_backend.items():
            self.watcher(name).sync(exps)
        reconcile(self.store, self.home, [e for e in running if e.run_id not in engine])
        for run in self.store.runs_with_status(Status.BUILDING):
            t = self.builders.get(run.id)
            if t is None or not t.is_alive():
                t = threading.Thread(target=self._build, args=(run.id,), daemon=True)
                self.builders[run.id] = t
                t.start()
        self.search.step()  # adaptive searches: tell, prune, ask for the next trials
        self.schedule()

    def _trial_slots(self, run: Run) -> int:
        """How many trials of a search may be queued or running at once: as many as
        this machine runs together (an engine's runs are bounded the same way), so
        the sampler learns from each batch before it asks for the next."""
        n = self.capacity.cpus // max(run.spec.cpus, 1e-9)
        if run.spec.gpus:
            n = min(n, len(self.capacity.gpus) // run.spec.gpus)
        return max(1, int(n))

    def backend(self, name: str) -> Backend:
        if name not in self.backends:
            self.backends[name] = get_backend(name, self.home)
        return self.backends[name]

    def watcher(self, backend_name: str) -> EngineWatcher:
        """The engine watcher of ``backend_name``, started on first use."""
        w = self.watchers.get(backend_name)
        if w is None:
            w = self.watchers[backend_name] = EngineWatcher(
                self.home, backend_name, self.backend(backend_name)
            )
        return w

    def close(self) -> None:
        for w in self.watchers.values():
            w.close()

    def schedule(self) -> None:
        """Start what fits, reading only the busy experiments and the queue's head.

        The queue may hold 10^5 experiments or more: it is read through an index, a
        batch at a time from its head, never loaded whole. An engine (Ray) places its
        experiments itself: they are launched at once, outside this machine's capacity.
        """
        busy = [*self.store.experiments(Status.RUNNING), *self.store.claimed_pending()]
        engine = self._engine_runs({e.run_id for e in busy})
        busy = [e for e in busy if e.run_id not in engine]
        while not self.exiting:
            queue = self.store.queue_head(QUEUE_BATCH)
            engine |= self._engine_runs({e.run_id for e in queue})
            wanted: list[tuple[Experiment, list[int]]] = [
                (e, []) for e in queue if e.run_id in engine
            ]
            local = [e for e in queue if e.run_id not in engine]
            placements = place(self.capacity, busy, local)
            wanted += [(p.experiment, p.gpu_ids) for p in placements]
            started = self.launch_many(wanted)
            busy += [p.experiment for p in placements if p.experiment.id in started]
            if len(queue) < QUEUE_BATCH or (local and len(placements) < len(local)):
                return

    def _engine_runs(self, run_ids: set[int]) -> set[int]:
        """Those of ``run_ids`` whose backend's engine schedules them (not this machine)."""
        out = set()
        for run_id in run_ids:
            if run_id not in self.engine_run:  # a run's backend never changes
                run = self.store.get_run_by_id(run_id, with_experiments=False)
                caps = self.backend(run.backend).capabilities
                self.engine_run[run_id] = not caps.shares_machine
            if self.engine_run[run_id]:
                out.add(run_id)
        return out

    def launch_many(self, wanted: list[tuple[Experiment, list[int]]]) -> set[int]:
        """Claim and start what one scheduling pass placed; returns the ids started.

        One transaction claims them all (``Store.claim_many``) and one write hands
        them to the launcher: with 10^5 queued and a hundred supervisors writing, a
        transaction per experiment spent the agent's time waiting for the lock.
        """
        if not wanted:
            return set()
        tokens = {exp.id: uuid.uuid4().hex for exp, _ in wanted}
        claimed = set(self.store.claim_many([(e.id, tokens[e.id], g) for e, g in wanted]))
        requests = []
        engine: dict[str, list[tuple[int, str]]] = {}
        for exp, gpu_ids in wanted:
            if exp.id not in claimed:
                continue
            if self.engine_run.get(exp.run_id):  # launched by its engine watcher
                engine.setdefault(exp.backend, []).append((exp.id, tokens[exp.id]))
                continue
            exp.gpu_ids = gpu_ids
            # The supervisor writes job.json itself (from the store): one file fewer
            # per start on this, the serial path.
            exp_dir = self.home.experiment_dir(exp.name)
            exp_dir.mkdir(parents=True, exist_ok=True)
            requests.append((exp.id, tokens[exp.id], self.home.experiment(exp.name).supervisor_log))
            log.info("started %s on GPUs %s", exp.name, gpu_ids or "-")
        self.launcher.launch_many(requests)
        for name, claims in engine.items():
            self.watcher(name).submit(claims)
        return claimed

    def idle(self) -> bool:
        return not self.store.has_active_work() and not any(
            t.is_alive() for t in self.builders.values()
        )


def _stop_trial(home: GridHome, exp: Experiment) -> None:
    """A trial its search pruned: stopped by its supervisor (or the engine watcher),
    as ``grid stop`` does."""
    from gridrun.agent.stopping import signal_supervisor

    signal_supervisor(home, exp)


def _take_lock(home: GridHome) -> int | None:
    fd = os.open(home.agent_lock, os.O_RDWR | os.O_CREAT, 0o644)
    # A probe (agent_running) holds the lock shared for an instant: try a few times
    # before concluding that another agent holds it.
    for attempt in range(LOCK_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == LOCK_TRIES - 1:
                os.close(fd)
                return None
            time.sleep(0.02)
    # pid *and* start time: whoever signals the agent checks it is still this process.
    write_ref(home.agent_pid, ProcessRef.current())
    return fd


def run_agent(home: GridHome) -> int:
    settle_daemon(home.root)
    # Before agent.pid names us: a wake-up (SIGUSR1) that arrives before the loop
    # runs must not kill us (its default action). And whoever started us (the
    # watchdog ignores SIGCHLD) must not leave us unable to wait for our children.
    signal.signal(signal.SIGUSR1, lambda *_: None)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    lock_fd = _take_lock(home)
    if lock_fd is None:
        return 0  # another agent serves this GRID_HOME
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    agent = Agent(home)
    rfd, wfd = os.pipe()
    os.set_blocking(wfd, False)
    signal.set_wakeup_fd(wfd)
    agent.wake_fd = wfd
    signal.signal(signal.SIGUSR1, lambda *_: None)

    def on_term(*_: object) -> None:
        agent.exiting = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    log.info("agent %d serving %s", os.getpid(), home.root)
    agent.launcher.start()
    while True:
        _serve(agent, rfd)
        # Give the lock up, then look once more: a submission that saw the lock held
        # just before we let go has already committed its run, so we see it here.
        try:
            if read_ref(home.agent_pid) == ProcessRef.current():
                home.agent_pid.unlink()
        except OSError:
            pass
        os.close(lock_fd)
        if agent.exiting or not agent.store.has_active_work():
            break
        lock_fd = _take_lock(home)
        if lock_fd is None:
            break  # a new agent took over
    agent.launcher.close()
    agent.close()
    log.info("agent %d exiting", os.getpid())
    return 0


def _serve(agent: Agent, rfd: int) -> None:
    idle_since: float | None = None
    while not agent.exiting:
        try:
            agent.step()
        except Exception:
            log.exception("agent step failed")
        if agent.idle():
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > agent.config.agent_idle_seconds:
                return
        else:
            idle_since = None
        _wait(agent, rfd)


def _wait(agent: Agent, rfd: int) -> None:
    """Until the next pass: ``POLL_SECONDS``, or less when woken.

    While a search prunes running trials, its quick pass (only their new values and
    whether to prune them) runs every ``SEARCH_POLL_SECONDS`` meanwhile: a trial is
    judged soon after each value, and not after the rest of the agent's work. Other
    runs cost nothing more: without such a search this is one wait.
    """
    deadline = time.monotonic() + POLL_SECONDS
    while not agent.exiting:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        pruning = agent.search.pruning
        ready, _, _ = select.select(
            [rfd], [], [], min(left, SEARCH_POLL_SECONDS) if pruning else left
        )
        if ready:
            try:
                os.read(rfd, 4096)
            except BlockingIOError:
                pass
            return
        if pruning and time.monotonic() < deadline:
            try:
                agent.search.report()
            except Exception:
                log.exception("search report failed")


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else GridHome.from_env().root
    return run_agent(GridHome(root))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
