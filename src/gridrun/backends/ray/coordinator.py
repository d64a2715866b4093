"""The run's coordinator: one Ray actor per run, started by the run's driver job.

It lives on the head node, pinned there (hard node affinity), so that a worker
node that dies takes only its experiments, never the record of them: their loss is
reported naming the node. It is detached from the driver process, so a driver that
dies on its own does not take the run with it. The driver ends it when the run is
released; the agent ends it if the driver died.

SkyPilot's shape: one driver per run on the cluster, fanning the experiments out as
Ray tasks, instead of one Ray Job per experiment (a second or more of start-up each).
The coordinator is the cluster-side record of the run:

* :meth:`Coordinator.submit` starts an experiment's task once per attempt (a
  resubmission of the same attempt is ignored, so nothing runs twice);
* tasks :meth:`~Coordinator.report` their node, output lines and progress, and learn
  from the reply whether to stop;
* the agent :meth:`~Coordinator.poll`\\ s: it gets each experiment's state and the
  output lines after the offset it has already written, and the coordinator forgets
  the lines before that offset. Lines wait here while the agent is down, so a
  restarted agent loses none;
* tasks are plain Ray tasks with ``max_retries=0``: a node that dies takes its
  experiments with it, and the coordinator reports them lost with the node named,
  never re-executed behind the agent's back.

Its methods run one at a time (a plain, synchronous actor), so its state needs no
locks. It only imports Ray when Ray calls it.
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATES = ("queued", "running", "exited", "lost")
DRIVER_GONE_SECONDS = 10.0  # the driver checks in each second; this long silent, it is gone


@dataclass
class Attempt:
    """One attempt of one experiment, as the coordinator tracks it."""

    key: str
    ref: Any = None  # the task's ObjectRef
    state: str = "queued"
    node_ip: str = ""
    node_id: str = ""
    hostname: str = ""
    exit_code: int | None = None
    error: str | None = None
    lines: list[tuple[str, float, str]] = field(default_factory=list)
    offset: int = 0  # lines before ``lines[0]`` already written by the agent
    stop_grace: float | None = None
    artifacts: bytes = b""
    names: list[str] = field(default_factory=list)
    submitted: float = field(default_factory=time.time)


class Coordinator:
    """Decorated with ``ray.remote`` by :func:`actor_class` (so importing needs no Ray)."""

    def __init__(self) -> None:
        self.attempts: dict[str, Attempt] = {}
        self.released = False
        self.closed = False
        self._task: Any = None
        self._driver_seen = time.monotonic()  # the driver asks close_if_released each second

    # ------------------------------------------------------------ from the agent
    def submit(self, key: str, spec: dict[str, Any], options: dict[str, Any]) -> str:
        import ray

        if self.closed:
            return "closed"  # the driver is exiting: the caller starts a new one
        self.released = False
        if key in self.attempts:
            return self.attempts[key].state
        if self._task is None:
            self._task = ray.remote(_experiment_task)
        me = ray.get_runtime_context().current_actor
        ref = self._task.options(
            **options, max_retries=0, retry_exceptions=False, scheduling_strategy="SPREAD"
        ).remote(spec, me, key)
        self.attempts[key] = Attempt(key=key, ref=ref)
        return "queued"

    def poll(self, offsets: dict[str, int]) -> dict[str, dict[str, Any]]:
        """Each asked attempt's state, with its output lines after ``offsets[key]``."""
        self._settle()
        out: dict[str, dict[str, Any]] = {}
        for key, offset in offsets.items():
            a = self.attempts.get(key)
            if a is None:
                out[key] = {"state": "unknown"}
                continue
            drop = max(0, min(offset - a.offset, len(a.lines)))
            if drop:
                del a.lines[:drop]
                a.offset += drop
            out[key] = {
                "state": a.state,
                "node_ip": a.node_ip,
                "node_id": a.node_id,
                "hostname": a.hostname,
                "exit_code": a.exit_code,
                "error": a.error,
                "offset": a.offset,
                "lines": list(a.lines),
                "artifacts": len(a.names),
            }
        return out

    def stop(self, key: str, grace: float) -> str:
        """Ask a running attempt to stop; one that has not started is cancelled."""
        import ray

        a = self.attempts.get(key)
        if a is None:
            return "unknown"
        if a.state == "queued":
            a.stop_grace = grace
            ray.cancel(a.ref, force=False)
            a.state, a.exit_code = "exited", 143
        elif a.state == "running" and a.stop_grace is None:
            a.stop_grace = grace
        return a.state

    def artifacts(self, key: str) -> bytes:
        a = self.attempts.get(key)
        return a.artifacts if a is not None else b""

    def forget(self, key: str) -> None:
        self.attempts.pop(key, None)

    def release(self) -> None:
        """The run is over: the driver exits and takes this actor with it."""
        self.released = True

    def release_if_idle(self) -> bool:
        """Release when no attempt is left (the agent forgot every one it started)."""
        if not self.attempts:
            self.released = True
        return self.released

    def close_if_released(self) -> bool:
        """The driver's exit check: once it says True, no submission is accepted."""
        self._driver_seen = time.monotonic()
        self.closed = self.released
        return self.closed

    def close_if_orphaned(self) -> bool:
        """True (and closed) when the run is released and its driver is gone.

        The coordinator is a detached actor, so it outlives a driver whose node, or
        whose raylet connection, died: then nobody but the agent ends it, and
        this check, answered before the agent kills it, keeps any later submission out.
        """
        if self.released and time.monotonic() - self._driver_seen > DRIVER_GONE_SECONDS:
            self.closed = True
        return self.closed and self.released

    # ------------------------------------------------------------- from tasks
    def report(self, key: str, lines: list[tuple[str, float, str]], info: dict[str, Any]) -> dict:
        a = self.attempts.get(key)
        if a is None:
            return {"stop": True, "grace": 0.0}
        a.lines.extend(lines)
        if info.get("event") == "started":
            a.state = "running" if a.state == "queued" else a.state
            a.node_ip = str(info.get("node_ip") or "")
            a.node_id = str(info.get("node_id") or "")
            a.hostname = str(info.get("hostname") or "")
        if a.stop_grace is not None:
            return {"stop": True, "grace": a.stop_grace}
        return {}

    def ping(self) -> bool:
        return True

    # ------------------------------------------------------------- internals
    def _settle(self) -> None:
        """Record the attempts whose task has returned or died."""
        import ray

        pending = {a.ref: a for a in self.attempts.values() if a.state in ("queued", "running")}
        if not pending:
            return
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
        for ref in ready:
            a = pending[ref]
            try:
                result = ray.get(ref)
            except ray.exceptions.TaskCancelledError:
                a.state, a.exit_code = "exited", 143
                continue
            except Exception as exc:
                a.state = "lost"
                a.error = _lost_message(a, exc)
                continue
            a.lines.extend(result.get("lines") or [])
            a.state = "exited"
            a.exit_code = result["exit_code"]
            a.error = result.get("error")
            a.artifacts = result.get("artifacts") or b""
            a.names = list(result.get("names") or [])


def _lost_message(a: Attempt, exc: BaseException) -> str:
    where = a.hostname or a.node_ip
    node = f"Ray node {where} ({a.node_id[:12]})" if a.node_id else "its Ray node"
    kind = type(exc).__name__
    if "NodeDied" in kind or ("node" in str(exc).lower() and "died" in str(exc).lower()):
        return f"lost: {node} died"
    return f"lost: the Ray worker on {node} died ({kind})"


class Reporter:
    """The task's reports to its coordinator, sent without waiting for the reply.

    A Ray task blocked in ``ray.get`` or ``ray.wait`` on a result not yet there hands
    its CPUs back to Ray, which starts another queued experiment on them (in a new
    worker process): an experiment asking ``--cpus 2`` would share its CPUs with the
    next one each time it reported (four times a second). So a report is sent, and
    its reply is read once it has arrived, through the reference's future, which Ray
    does not count as blocking; a stop asked is seen within a report or two. Calls
    from one caller reach an actor in order, so no line is reordered. :meth:`flush`,
    once the script has ended, waits for what is in flight.
    """

    def __init__(self, coordinator: Any, key: str) -> None:
        self.coordinator = coordinator
        self.key = key
        self.in_flight: list[concurrent.futures.Future[dict[str, Any]]] = []
        self.stop: dict[str, Any] = {}  # the first reply that said stop, kept

    def __call__(self, lines: list[tuple[str, float, str]], info: dict[str, Any]) -> dict[str, Any]:
        self.in_flight.append(self.coordinator.report.remote(self.key, lines, info).future())
        self._read()
        return self.stop

    def flush(self, timeout: float = 60.0) -> dict[str, Any]:
        concurrent.futures.wait(self.in_flight, timeout=timeout)
        self._read()
        return self.stop

    def _read(self) -> None:
        for fut in [f for f in self.in_flight if f.done()]:
            self.in_flight.remove(fut)
            reply = fut.result()
            if reply.get("stop") and not self.stop:
                self.stop = reply


def _experiment_task(spec: dict[str, Any], coordinator: Any, key: str) -> dict[str, Any]:
    """The Ray task body: report through the coordinator, run on this node."""
    import os

    from gridrun.backends.ray.node import run_experiment

    # The task inherits the driver job's runtime_env: its cwd is the run's package.
    return run_experiment(spec, Path(os.getcwd()), Reporter(coordinator, key))


def actor_class() -> Any:
    import ray

    return ray.remote(Coordinator)
