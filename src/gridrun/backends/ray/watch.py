"""Long polls: a supervisor's wait, answered by the bridge when its experiment ends.

Every experiment of a run has a supervisor waiting for its task. Asking the bridge
every quarter second, a sweep of 100 costs this machine 400 requests a second, each a
socket round trip, a thread and, since polls that arrive a little apart cannot share
one, a coordinator call answering for every experiment of the run: most of a core of
a small machine, taken from the nodes that run the experiments. Instead a supervisor
asks once (``wait``), and the bridge keeps one watcher thread per run with waiters: it
polls them all in one coordinator call a round (:meth:`RayBackendCore.poll_many`, which
writes the new lines into each ``output.log`` as a poll always did), and answers each
waiter as soon as its experiment is no longer running.

A wait also ends after ``wait`` seconds with the latest answer, so the supervisor keeps
its own view of a cluster that stopped answering (a round that has not come back within
the wait is ``unreachable``, never ``running`` and never gone) and of a bridge that died
(its connection drops; the next request starts a new bridge).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROUND_SECONDS = 0.2  # between two polls of one run: how soon an end or a line is seen


@dataclass(eq=False)
class Waiter:
    handle: Any  # backend.Handle
    exp_dir: Path
    timeout: float  # for the coordinator's answer to one round
    done: threading.Event = field(default_factory=threading.Event)
    answer: Any = None  # the AttemptResult of the latest round
    answered_at: float = 0.0


class Watcher:
    """The bridge's long polls: one thread per run with waiters, one call per round."""

    def __init__(self, core: Any, interval: float = ROUND_SECONDS) -> None:
        self.core = core  # backend.RayBackendCore
        self.interval = interval
        self._lock = threading.Lock()
        self._runs: dict[tuple[str, str], list[Waiter]] = {}

    def wait(self, handle: Any, exp_dir: Path, timeout: float, wait: float) -> Any:
        """The experiment's state once it is no longer running, or after ``wait`` s."""
        from gridrun.attempts import AttemptResult

        asked = time.monotonic()
        w = Waiter(handle, exp_dir, timeout)
        run = (handle.address, handle.coordinator)
        with self._lock:
            waiters = self._runs.get(run)
            if waiters is None:
                waiters = self._runs[run] = []
                threading.Thread(
                    target=self._watch, args=(run,), name=f"watch {run[1]}", daemon=True
                ).start()
            waiters.append(w)
        try:
            w.done.wait(wait)
        finally:
            with self._lock:
                if w in waiters:
                    waiters.remove(w)
        if w.answer is None or w.answered_at < asked:
            return AttemptResult.unknown(f"the Ray cluster did not answer in {wait:.0f}s")
        return w.answer

    def _watch(self, run: tuple[str, str]) -> None:
        while True:
            with self._lock:
                waiters = list(self._runs[run])
                if not waiters:
                    del self._runs[run]  # a new waiter starts a new thread
                    return
            started = time.monotonic()
            try:
                answers = self.core.poll_many(
                    [(w.handle, w.exp_dir) for w in waiters], max(w.timeout for w in waiters)
                )
            except Exception as exc:  # never gone: the supervisor sees it unreachable
                from gridrun.attempts import AttemptResult

                answers = [AttemptResult.unknown(f"{type(exc).__name__}: {exc}")] * len(waiters)
            now = time.monotonic()
            for w, answer in zip(waiters, answers, strict=True):
                w.answer, w.answered_at = answer, now
                if answer.ended:
                    w.done.set()
            time.sleep(max(0.0, self.interval - (now - started)))
