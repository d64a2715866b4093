"""Scripts and probes shared by the preemption and resume tests (real processes only)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psutil

# Checkpoints every step; on start, resumes from the checkpoint. Each attempt appends
# "start <GRID_RESTART_COUNT> <step>" to the ledger and "finished" once done; SIGTERM
# saves and exits 0 (the Grid contract). A child in its own session sleeps alongside,
# to prove that no process outlives its experiment.
CHECKPOINTING = """\
import json, os, signal, subprocess, sys, time
ledger, steps = sys.argv[1], int(sys.argv[2])
pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0.2
ignore_term = len(sys.argv) > 4 and sys.argv[4] == "ignore-term"
os.makedirs("ckpt", exist_ok=True)
state = {"step": 0}
if os.path.exists("ckpt/state.json"):
    state = json.load(open("ckpt/state.json"))

def save():
    with open("ckpt/state.json.tmp", "w") as fh:
        json.dump(state, fh)
    os.replace("ckpt/state.json.tmp", "ckpt/state.json")

def on_term(*_):
    save()
    with open(ledger, "a") as fh:
        fh.write(f"sigterm {state['step']}\\n")
    sys.exit(0)

signal.signal(signal.SIGTERM, signal.SIG_IGN if ignore_term else on_term)
daemon = subprocess.Popen(["sleep", "1000"], start_new_session=True)
with open(ledger, "a") as fh:
    fh.write(f"start {os.environ['GRID_RESTART_COUNT']} {state['step']} {daemon.pid}\\n")
print("started", state["step"], flush=True)
while state["step"] < steps:
    time.sleep(pause)
    state["step"] += 1
    save()
    print("step", state["step"], flush=True)
with open(ledger, "a") as fh:
    fh.write("finished\\n")
"""


def leftovers(home: Path) -> list[str]:
    """Live processes that belong to experiments of ``home`` (by their environment)."""
    out = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            env = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if env.get("GRID_HOME") == str(home) and "GRID_EXPERIMENT_ID" in env:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    out.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])}")
            except psutil.NoSuchProcess:
                pass
    return out


def no_leftovers(home: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (left := leftovers(home)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes outlived their experiment: {left}"


def db_row(home: Path, name: str) -> sqlite3.Row:
    """Read the store directly, so that no grid command wakes or heals anything."""
    conn = sqlite3.connect(home / "grid.db", timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM experiments WHERE name = ?", (name,)).fetchone()
    finally:
        conn.close()


def wait_db(home: Path, name: str, pred, timeout: float = 60, what: str = "") -> sqlite3.Row:
    deadline = time.monotonic() + timeout
    while True:
        row = db_row(home, name)
        if row is not None and pred(row):
            return row
        if time.monotonic() > deadline:
            log = home / "agent.log"
            raise AssertionError(
                f"{name}: {what or 'condition'} not met in {timeout}s: "
                f"{dict(row) if row else None}\n"
                + (log.read_text()[-3000:] if log.exists() else "")
            )
        time.sleep(0.05)


def ledger_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def host_pid(experiment: str, needle: str, timeout: float = 30) -> int:
    """The host's pid of an experiment's process whose command line contains ``needle``.

    A local experiment runs in a PID namespace of its own, so the pid a script reports
    (``os.getpid()``, a child's ``.pid``) is its namespace's, not the host's: tests find
    the process from outside, by the experiment's name in its environment.
    """
    deadline = time.monotonic() + timeout
    while True:
        for proc in psutil.process_iter(["pid", "environ", "cmdline"]):
            try:
                env = proc.info["environ"] or {}
                cmd = " ".join(proc.info["cmdline"] or [])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            ours = env.get("GRID_EXPERIMENT_NAME") == experiment and needle in cmd
            if ours and "import witness" not in cmd:  # the init is the witness's fork
                return int(proc.info["pid"])
        if time.monotonic() > deadline:
            raise AssertionError(f"no process of {experiment} runs {needle!r}")
        time.sleep(0.05)
