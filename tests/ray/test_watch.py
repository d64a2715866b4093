"""The bridge's long polls (``watch.py``) and its socket, without a cluster.

The watcher is driven by a stand-in for :class:`RayBackendCore` (its one method the
watcher calls, ``poll_many``), so the tests control what the cluster answers and when;
the bridge test starts the real bridge process and asks it what needs no cluster.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gridrun.backends.ray.backend import Handle, Observed
from gridrun.backends.ray.bridge import request
from gridrun.backends.ray.watch import Watcher

pytestmark = pytest.mark.ray


class Cluster:
    """Answers ``poll_many`` from a dict of states; counts its calls; can hang."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.calls: list[int] = []  # how many experiments each call asked about
        self.hang = threading.Event()

    def poll_many(self, items: list[tuple[Handle, Path]], timeout: float) -> list[Observed]:
        while self.hang.is_set():
            time.sleep(0.01)
        self.calls.append(len(items))
        out = []
        for h, _ in items:
            state = self.states.get(h.key, "running")
            out.append(Observed(state, 0 if state == "exited" else None))
        return out


def _handle(key: str, run: str = "coord-a") -> Handle:
    return Handle("127.0.0.1:1", run, key)


def test_a_wait_ends_within_a_round_of_the_exit(tmp_path: Path) -> None:
    cluster = Cluster()
    watcher = Watcher(cluster, interval=0.05)
    threading.Timer(0.3, lambda: cluster.states.update({"1:a": "exited"})).start()
    started = time.monotonic()
    o = watcher.wait(_handle("1:a"), tmp_path, timeout=5, wait=10)
    assert (o.state, o.exit_code) == ("exited", 0)
    assert time.monotonic() - started < 2.0


def test_one_call_a_round_serves_every_waiter_of_a_run(tmp_path: Path) -> None:
    cluster = Cluster()
    watcher = Watcher(cluster, interval=0.05)
    keys = [f"{i}:a" for i in range(40)]
    with ThreadPoolExecutor(len(keys)) as pool:
        waits = [pool.submit(watcher.wait, _handle(k), tmp_path, 5, 10) for k in keys]
        time.sleep(0.5)
        cluster.states.update(dict.fromkeys(keys, "exited"))
        assert [w.result().state for w in waits] == ["exited"] * len(keys)
    # 40 experiments polled for ~0.5 s at 20 rounds a second: a call per round, each
    # asking for (nearly) all of them, not one call per experiment per round.
    assert len(cluster.calls) < 40, cluster.calls
    assert max(cluster.calls) == len(keys)


def test_a_running_experiment_is_answered_running_after_the_wait(tmp_path: Path) -> None:
    watcher = Watcher(Cluster(), interval=0.05)
    started = time.monotonic()
    assert watcher.wait(_handle("1:a"), tmp_path, timeout=5, wait=0.5).state == "running"
    assert 0.5 <= time.monotonic() - started < 3.0


def test_a_cluster_that_does_not_answer_is_unreachable_never_gone(tmp_path: Path) -> None:
    cluster = Cluster()
    cluster.hang.set()
    watcher = Watcher(cluster, interval=0.05)
    try:
        o = watcher.wait(_handle("1:a"), tmp_path, timeout=5, wait=0.5)
        assert o.state == "unreachable", o
    finally:
        cluster.hang.clear()


def test_a_failing_round_is_unreachable(tmp_path: Path) -> None:
    class Broken(Cluster):
        def poll_many(self, items: list[tuple[Handle, Path]], timeout: float) -> list[Observed]:
            raise ConnectionError("no route")

    o = Watcher(Broken(), interval=0.05).wait(_handle("1:a"), tmp_path, timeout=5, wait=2)
    assert o.state == "unreachable" and "no route" in (o.error or ""), o


def test_the_bridge_takes_a_whole_sweep_connecting_as_it_starts(tmp_path: Path) -> None:
    # A fresh GRID_HOME: the first requests start the bridge, and every supervisor of
    # a sweep connects the moment it listens (the default backlog of 5 failed most of
    # them with EAGAIN).
    home = tmp_path / "home"
    home.mkdir()
    try:
        with ThreadPoolExecutor(150) as pool:
            replies = list(pool.map(lambda _: request(home, {"op": "ping"}), range(150)))
        assert replies == [{"ok": True}] * 150
    finally:
        import psutil

        for p in psutil.process_iter(["cmdline"]):
            if str(home) in (p.info["cmdline"] or []):
                p.terminate()
