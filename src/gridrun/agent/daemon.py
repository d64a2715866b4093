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
from gridrun.agent.jobs import make_job, save_job
from gridrun.agent.launcher import Launcher
from gridrun.agent.reconcile import reconcile
from gridrun.agent.scheduler import place
from gridrun.config import load_machine_config
from gridrun.home import GridHome
from gridrun.store.db import Store
from gridrun.store.models import Experiment, Status

log = logging.getLogger("gridrun.agent")
POLL_SECONDS = 1.0


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
        reconcile(self.store, self.home)
        for run in self.store.runs_with_status(Status.BUILDING):
            t = self.builders.get(run.id)
            if t is None or not t.is_alive():
                t = threading.Thread(target=self._build, args=(run.id,), daemon=True)
                self.builders[run.id] = t
                t.start()
        self.schedule()

    def schedule(self) -> None:
        running = self.store.experiments(Status.RUNNING)
        pending = self.store.experiments(Status.PENDING)
        claimed = [e for e in pending if e.claim_token]
        queue = [e for e in pending if not e.claim_token]
        for placement in place(self.capacity, [*running, *claimed], queue):
            self.launch(placement.experiment, placement.gpu_ids)

    def launch(self, exp: Experiment, gpu_ids: list[int]) -> None:
        token = uuid.uuid4().hex
        if not self.store.transition(
            exp.id,
            where=[Status.PENDING],
            extra_where="claim_token IS NULL",
            claim_token=token,
            claimed_at=time.time(),
            gpu_ids=gpu_ids,
        ):
            return
        run = self.store.get_run_by_id(exp.run_id, with_experiments=False)
        job = make_job(self.home, run, exp, gpu_ids, self.config.stop_grace_seconds)
        save_job(job, run.backend)
        self.launcher.launch(exp.id, token, job.exp_dir / "supervisor.log")
        log.info("started %s on GPUs %s", exp.name, gpu_ids or "-")

    def idle(self) -> bool:
        return not self.store.has_active_work() and not any(
            t.is_alive() for t in self.builders.values()
        )


def _take_lock(home: GridHome) -> int | None:
    fd = os.open(home.agent_lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    home.agent_pid.write_text(str(os.getpid()))
    return fd


def run_agent(home: GridHome) -> int:
    settle_daemon(home.root)
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
    while True:
        _serve(agent, rfd)
        # Give the lock up, then look once more: a submission that saw the lock held
        # just before we let go has already committed its run, so we see it here.
        try:
            if home.agent_pid.read_text() == str(os.getpid()):
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
        ready, _, _ = select.select([rfd], [], [], POLL_SECONDS)
        if ready:
            try:
                os.read(rfd, 4096)
            except BlockingIOError:
                pass


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else GridHome.from_env().root
    return run_agent(GridHome(root))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
