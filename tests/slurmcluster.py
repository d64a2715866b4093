"""A real Slurm cluster on this machine: munged, slurmctld and several slurmd nodes.

Debian's ``slurmctld``, ``slurmd``, ``slurm-client`` and ``munge`` run a whole cluster on
one machine, every daemon in the foreground as root, all state under one temp folder, on
private ports. Clients find it through ``SLURM_CONF`` (:attr:`LocalSlurmCluster.env`);
without it they fall back to DNS and fail. There are no cgroups in this VM, so processes
are tracked by ``proctrack/linuxproc`` and gridrun kills its own process groups.

Stopping the cluster ends exactly the daemons it started (never a machine-wide
``scontrol shutdown`` of somebody else's cluster). Used by the Slurm tests and by
``benchmarks/bench_slurm.py``. :func:`ensure_installed` installs the packages as root.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from raycluster import port_block  # private ports, as the Ray clusters pick theirs

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")


def ensure_installed() -> None:
    """Install Debian's Slurm and munge packages (as root) when a daemon is missing."""
    if all(shutil.which(d) or Path("/usr/sbin", d).exists() for d in DAEMONS):
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"Slurm is not installed; as root: apt-get install {' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", *PACKAGES]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
        subprocess.run(cmd, env=env, capture_output=True, check=True)


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


@dataclass
class LocalSlurmCluster:
    """``nodes`` slurmd nodes of ``cpus`` CPUs each (more than the machine may have)."""

    nodes: int = 2
    cpus: int = 4
    memory_mb: int = 4096
    partition: str = "debug"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gridrun-slurm-")))
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    base_port: int = 0

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def node_names(self) -> list[str]:
        return [f"node{i + 1}" for i in range(self.nodes)]

    @property
    def env(self) -> dict[str, str]:
        """What a client needs to reach this cluster (and nothing else's)."""
        return {"SLURM_CONF": str(self.conf)}

    def client_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    # -- set-up --------------------------------------------------------------------

    def _write_munge_key(self) -> Path:
        keydir = self.root / "munge" / "etc"
        keydir.mkdir(parents=True)
        keydir.chmod(0o700)
        key = keydir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock_dir = self.root / "munge" / "run"
        sock_dir.mkdir(parents=True)
        sock_dir.chmod(0o755)  # clients of every user must reach the socket
        (self.root / "munge" / "lib").mkdir(0o700)
        (self.root / "munge" / "log").mkdir(0o700)
        return key

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "run" / "munge.socket"

    def _write_conf(self) -> None:
        r = self.root
        for sub in ("etc", "state", "spool", "log", "run"):
            (r / sub).mkdir(exist_ok=True)
        for name in self.node_names:
            (r / "spool" / name).mkdir(exist_ok=True)
        ctld_port = self.base_port
        lines = [
            "ClusterName=gridrun-test",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "CredType=cred/munge",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}/%n",
            f"SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'run'}/slurmd-%n.pid",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log'}/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "SlurmdParameters=config_overrides",
            "ReturnToService=2",
            "MinJobAge=600",
            "MaxArraySize=100001",
            "MaxJobCount=200000",
            "KillWait=5",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "MessageTimeout=3",  # a frozen controller is "unreachable" in seconds
            "DefMemPerCPU=64",  # else a job without --mem takes its node's whole memory
            "Waittime=0",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
        ]
        for i, name in enumerate(self.node_names):
            lines.append(
                f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 "
                f"Port={ctld_port + 1 + i} CPUs={self.cpus} RealMemory={self.memory_mb} "
                "State=UNKNOWN"
            )
        lines.append(
            f"PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
        )
        self.conf.write_text("\n".join(lines) + "\n")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")  # noqa: SIM115 - the daemon owns it
        env = {**os.environ, **self.env}
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()

    def start(self, timeout: float = 60.0) -> LocalSlurmCluster:
        ensure_installed()
        self.base_port = port_block(self.nodes + 1)
        key = self._write_munge_key()
        self._write_conf()
        m = self.root / "munge"
        self._spawn(
            "munged",
            [
                _sbin("munged"), "-F", "--force",
                f"--key-file={key}", f"--socket={self.munge_socket}",
                f"--pid-file={m / 'run' / 'munged.pid'}", f"--seed-file={m / 'lib' / 'seed'}",
                f"--log-file={m / 'log' / 'munged.log'}",
            ],
        )  # fmt: skip
        self._wait(lambda: self.munge_socket.exists(), timeout, "munged")
        self._spawn("slurmctld", [_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait(self._ctld_answers, timeout, "slurmctld")
        for name in self.node_names:
            self._spawn(f"slurmd-{name}", [_sbin("slurmd"), "-D", "-N", name, "-f", str(self.conf)])
        self._wait(self._nodes_idle, timeout, "slurmd nodes")
        return self

    def _wait(self, ready: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{name} exited with {p.returncode}: {self.tail(name)}")
            if ready():  # type: ignore[operator]
                return
            time.sleep(0.1)
        tails = " | ".join(f"{n}: {self.tail(n)}" for n in self.procs)
        self.stop()
        raise RuntimeError(f"{what} did not come up within {timeout:.0f} s: {tails}")

    def tail(self, name: str, chars: int = 800) -> str:
        path = self.root / "log" / f"{name}.out"
        text = path.read_text(errors="replace") if path.exists() else ""
        logs = sorted((self.root / "log").glob(f"{name}*.log"))
        for extra in logs:
            text += extra.read_text(errors="replace")
        return text[-chars:]

    def scontrol(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(
            ["scontrol", *args], env=self.client_env(), capture_output=True, text=True
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"scontrol {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def _ctld_answers(self) -> bool:
        out = subprocess.run(["scontrol", "ping"], env=self.client_env(), capture_output=True)
        return out.returncode == 0 and b"UP" in out.stdout

    def _nodes_idle(self) -> bool:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %t"], env=self.client_env(),
            capture_output=True, text=True,
        )  # fmt: skip
        states = dict(line.split() for line in out.stdout.splitlines() if line.strip())
        return all(states.get(n, "").startswith("idle") for n in self.node_names)

    def scancel_all(self) -> None:
        """Cancel every job of this cluster (its own, private slurmctld)."""
        import getpass

        subprocess.run(
            ["scancel", f"--user={getpass.getuser()}"], env=self.client_env(), capture_output=True
        )

    def jobs(self) -> list[str]:
        """Ids of the jobs slurmctld lists now (any state within MinJobAge)."""
        out = subprocess.run(
            ["squeue", "-h", "-t", "all", "-o", "%i"], env=self.client_env(),
            capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout.split()

    # -- node failure (for preemption tests) -----------------------------------------

    def set_node(self, name: str, state: str, reason: str = "gridrun test") -> None:
        args = ["update", f"NodeName={name}", f"State={state}"]
        if state.upper() in ("DOWN", "DRAIN"):
            args.append(f"Reason={reason}")
        self.scontrol(*args)

    # -- tear-down -------------------------------------------------------------------

    def stop(self) -> None:
        """End exactly what this cluster started: its jobs, then its daemons (nodes
        first, munge last), then any job step a node left behind. slurmstepd outlives
        its slurmd, so every process whose environment names this cluster's config
        (the daemons pass it on) is ended too, and nothing of another cluster's."""
        if self.procs.get("slurmctld") is not None and self.procs["slurmctld"].poll() is None:
            self.procs["slurmctld"].send_signal(signal.SIGCONT)  # never stopped frozen
            self.scancel_all()
        order = sorted(self.procs, key=lambda n: (n != "munged", n.startswith("slurmd")))
        for name in reversed(order):
            p = self.procs[name]
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for name in reversed(order):
            p = self.procs[name]
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with _suppress():
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        self.procs.clear()
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        import psutil

        mine = f"SLURM_CONF={self.conf}"
        for proc in psutil.process_iter(["pid"]):
            try:
                with open(f"/proc/{proc.pid}/environ", "rb") as fh:
                    env = fh.read().split(b"\0")
            except OSError:
                continue
            if mine.encode() in env and proc.pid != os.getpid():
                with _suppress():
                    proc.kill()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalSlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, et: object, e: object, tb: object) -> bool:
        import psutil

        return isinstance(e, ProcessLookupError | psutil.Error)
