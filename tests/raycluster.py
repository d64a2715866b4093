"""A real Ray cluster on this machine: a head and worker nodes, on private ports.

Each node is one ``ray start --block`` process in its own session; stopping the
cluster sends it SIGTERM (``ray start --block`` then ends every process of its node)
and kills what is left of its process group. Never ``ray stop``: that would end every
Ray cluster of the machine, other people's too. Used by the Ray tests and by
``benchmarks/bench_ray.py``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
PORTS_PER_NODE = 80


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _ephemeral_low() -> int:
    """Where the kernel starts picking source ports for outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def port_block(count: int, every: int = 1) -> int:
    """A base port with ``count`` ports after it free (the first two, the last and
    every ``every``-th one checked).

    Below the ephemeral range: a port found free there can be taken a moment later as
    the source port of any outgoing connection on the machine (a slurmd failed to bind
    one that way), while no connection is ever given a port below it.
    """
    high = _ephemeral_low() - count
    for _ in range(200):
        base = random.randrange(20000, high)
        checked = {*range(0, count, every), min(1, count - 1), count - 1}
        if all(_free(base + i) for i in checked):
            return base
    raise RuntimeError("no free block of ports below the ephemeral range")


def _port_block() -> int:
    """A base port with ``PORTS_PER_NODE`` free ports after it."""
    return port_block(PORTS_PER_NODE, every=7)


def _node_ports(base: int) -> list[str]:
    return [
        "--node-manager-port", str(base + 1),
        "--object-manager-port", str(base + 2),
        "--dashboard-agent-listen-port", str(base + 3),
        "--dashboard-agent-grpc-port", str(base + 4),
        "--runtime-env-agent-port", str(base + 5),
        "--metrics-export-port", str(base + 6),
        "--min-worker-port", str(base + 20),
        "--max-worker-port", str(base + PORTS_PER_NODE - 1),
    ]  # fmt: skip


@dataclass
class LocalRayCluster:
    """``head_cpus`` on the head, then one worker node per entry of ``workers``."""

    head_cpus: int = 1
    workers: list[dict] = field(default_factory=list)  # {"cpus": 2, "resources": {...}}
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gridrun-ray-")))
    procs: list[subprocess.Popen] = field(default_factory=list)
    gcs_address: str = ""
    _starts: dict[str, int] = field(default_factory=dict)
    dashboard_url: str = ""

    @property
    def node_dir(self) -> Path:
        """Where the nodes keep gridrun's environments and working copies."""
        return self.root / "node"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ, GRIDRUN_NODE_DIR=str(self.node_dir), RAY_USAGE_STATS_ENABLED="0")
        # A raylet waits 15 s for its node's dashboard agent by default; a busy
        # machine needs longer.
        env.setdefault("RAY_agent_register_timeout_ms", "60000")
        env.setdefault("RAY_raylet_start_wait_time_s", "28")  # `ray start` gives up at 30 s
        # A private cluster without token auth, said outright: Ray 2.60 turns it on for
        # a head when ~/.ray/auth_token exists (any local `ray.init()` writes one), and
        # then refuses its own worker nodes.
        env.setdefault("RAY_AUTH_MODE", "disabled")
        # As when the cluster is started from an activated virtualenv: job entrypoints
        # run `python` from PATH.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        for var in ("RAY_ADDRESS", "GRID_HOME"):
            env.pop(var, None)
        return env

    def _start(self, args: list[str], log: str) -> None:
        with open(self.root / log, "ab") as fh:
            # Ray gives a starting node fixed deadlines (30 s for its raylet, which
            # waits for a Python agent): on a machine busy with other work, root starts
            # the node at a higher priority, and `start` lowers it again once up.
            nice = ["nice", "-n", "-15"] if os.geteuid() == 0 else []
            self.procs.append(
                subprocess.Popen(
                    [*nice, RAY, "start", "--block", "--disable-usage-stats", *args],
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self._env(),
                    start_new_session=True,
                )
            )

    def start(self, timeout: float = 240) -> LocalRayCluster:
        for attempt in range(3):
            try:
                self._start_head(timeout)
                break
            except RuntimeError:
                if attempt == 2 or self.procs[-1].poll() is None:
                    raise
                self._drop_last()
        self._start_workers(timeout)
        self._wait_dashboard(timeout)
        self._normal_priority()
        return self

    def _normal_priority(self) -> None:
        import psutil

        for proc in self.procs:
            try:
                top = psutil.Process(proc.pid)
                for p in [top, *top.children(recursive=True)]:
                    p.nice(0)
            except psutil.Error:
                pass

    def _start_head(self, timeout: float) -> None:
        base = _port_block()
        gcs, dash, client = base + 7, base + 8, base + 9
        self.gcs_address = f"127.0.0.1:{gcs}"
        self.dashboard_url = f"http://127.0.0.1:{dash}"
        self._start(
            [
                "--head",
                "--node-ip-address", "127.0.0.1",
                "--port", str(gcs),
                "--num-cpus", str(self.head_cpus),
                "--num-gpus", "0",
                "--include-dashboard", "true",
                "--dashboard-host", "127.0.0.1",
                "--dashboard-port", str(dash),
                "--ray-client-server-port", str(client),
                "--temp-dir", str(self.root / "ray"),
                *_node_ports(base),
            ],
            "head.log",
        )  # fmt: skip
        self._wait_nodes(1, timeout)

    def _start_workers(self, timeout: float) -> None:
        for i, w in enumerate(self.workers):
            args = ["--address", self.gcs_address, "--node-ip-address", "127.0.0.1"]
            args += ["--num-cpus", str(w.get("cpus", 1))]
            args += ["--num-gpus", "0"]
            if w.get("resources"):
                args += ["--resources", json.dumps(w["resources"])]
            # A loaded machine can miss Ray's fixed 30 s raylet start-up wait: retry.
            for attempt in range(3):
                self._start([*args, *_node_ports(_port_block())], f"worker{i}.log")
                try:
                    self._wait_nodes(2 + i, timeout)
                    break
                except RuntimeError:
                    if attempt == 2 or self.procs[-1].poll() is None:
                        raise
                    self._drop_last()

    def _drop_last(self) -> None:
        proc = self.procs.pop()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=30)

    def actors(self, state: str = "ALIVE") -> list[dict]:
        """The cluster's actors in ``state``, from ``ray list actors``."""
        proc = subprocess.run(
            [RAY, "list", "actors", "--address", self.dashboard_url, "--format", "json",
             "--filter", f"state={state}", "--limit", "10000"],
            capture_output=True, text=True, env=self._env(), timeout=60, check=True,
        )  # fmt: skip
        if not proc.stdout.lstrip().startswith("["):
            return []  # "No resource in the cluster": none in that state
        return list(json.loads(proc.stdout))

    def alive_nodes(self) -> list[dict]:
        """The cluster's live nodes, from ``ray list nodes`` (no driver of ours)."""
        proc = subprocess.run(
            [RAY, "list", "nodes", "--address", self.dashboard_url, "--format", "json",
             "--filter", "state=ALIVE"],
            capture_output=True, text=True, env=self._env(), timeout=60, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            return []
        try:
            return list(json.loads(proc.stdout))
        except ValueError:
            return []

    def _wait_nodes(self, n: int, timeout: float) -> None:
        """Wait until ``ray start`` of the newest node says its runtime started.

        Read from its output rather than asked with ``ray status``: on a loaded machine
        each ``ray status`` costs seconds of CPU that the starting node needs.
        """
        log = self.root / ("head.log" if n == 1 else f"worker{n - 2}.log")
        proc = self.procs[-1]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
                raise RuntimeError(f"ray start exited {proc.returncode}:\n{tail}")
            text = log.read_text(errors="replace") if log.exists() else ""
            if text.count("Ray runtime started.") >= self._starts.get(log.name, 0) + 1:
                self._starts[log.name] = text.count("Ray runtime started.")
                return
            time.sleep(0.5)
        raise RuntimeError(f"the Ray cluster did not reach {n} nodes in {timeout}s: {self.root}")

    def _wait_dashboard(self, timeout: float) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("the Ray dashboard did not answer")

    def add_worker(self, cpus: int = 1, resources: dict | None = None, gpus: int = 0) -> int:
        """Start one more worker node; its index for :meth:`kill_node` / :meth:`remove_node`.

        ``gpus``: GPUs the node declares to Ray (none need exist: Ray only counts them).
        """
        self.workers.append({"cpus": cpus, "resources": resources or {}})
        index = len(self.workers) - 1
        args = ["--address", self.gcs_address, "--node-ip-address", "127.0.0.1"]
        args += ["--num-cpus", str(cpus), "--num-gpus", str(gpus)]
        if resources:
            args += ["--resources", json.dumps(resources)]
        for attempt in range(3):
            self._start([*args, *_node_ports(_port_block())], f"worker{index}.log")
            try:
                self._wait_nodes(2 + index, 240)
                break
            except RuntimeError:
                if attempt == 2 or self.procs[-1].poll() is None:
                    raise
                self._drop_last()
        self._normal_priority()
        return index

    def _tree(self, proc: subprocess.Popen) -> list:
        """The node's processes: ``ray start`` and every descendant, whatever its session
        (a job's driver, an experiment's script)."""
        import psutil

        try:
            top = psutil.Process(proc.pid)
            return [top, *top.children(recursive=True)]
        except psutil.Error:
            return []

    def kill_node(self, index: int) -> None:
        """End worker node ``index`` abruptly, as a machine that dies: its raylet, its
        workers and what they started, all at once with SIGKILL."""
        import psutil

        proc = self.procs[1 + index]
        for p in self._tree(proc):
            try:
                p.kill()
            except psutil.Error:
                pass
        proc.wait(timeout=30)

    def remove_node(self, index: int) -> None:
        """Take worker node ``index`` out of the cluster for good (dead or alive)."""
        proc = self.procs[1 + index]
        self._stop_procs([proc])
        proc.wait(timeout=30)

    def stop(self) -> None:
        self._stop_procs(list(reversed(self.procs)))
        shutil.rmtree(self.root, ignore_errors=True)

    def _stop_procs(self, procs: list[subprocess.Popen]) -> None:
        import psutil

        trees = [self._tree(proc) for proc in procs]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, tree in zip(procs, trees, strict=True):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            for p in tree:  # whatever outlived ``ray start --block``'s own clean-up
                try:
                    p.kill()
                except psutil.Error:
                    pass
            proc.wait(timeout=30)
