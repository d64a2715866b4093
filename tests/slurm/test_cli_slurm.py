"""``grid run --backend slurm`` through the real CLI, on a real Slurm cluster.

The session's cluster (``tests/slurmcluster.py``) has two nodes of 4 CPUs, both on this
machine. Scripts wait at barriers (files the test creates) where a test must act at a
given point, so no outcome depends on the machine's speed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

TRAIN = """\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
a = p.parse_args()
for epoch in range(3):
    print(f"epoch={epoch} loss={1 / (epoch + 1) / a.lr:.4f}", flush=True)
open("model.txt", "w").write(f"lr={a.lr}")
print("slurm job", os.environ.get("SLURM_JOB_ID"), "node", os.environ.get("SLURMD_NODENAME"))
"""

# Waits at its barrier (``go <name> <attempt>``), then appends to the ledger and ends.
BARRIER = """\
import os, signal, sys, time
marks = sys.argv[1]
name, attempt = os.environ["GRID_EXPERIMENT_NAME"], os.environ["GRID_RESTART_COUNT"]
def on_term(*_):
    print("saving", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("attempt", attempt, flush=True)
open(os.path.join(marks, f"start {name} {attempt}"), "w").close()
while not os.path.exists(os.path.join(marks, f"go {name} {attempt}")):
    time.sleep(0.05)
with open(os.path.join(marks, "ledger"), "a") as fh:
    fh.write(f"{name} {attempt}\\n")
print("finished", flush=True)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    (p / "train.py").write_text(TRAIN)
    (p / "barrier.py").write_text(BARRIER)
    return p


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    m = tmp_path / "marks"
    m.mkdir()
    return m


def _wait(what: str, check, timeout: float = 120):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout:.0f} s"
        time.sleep(0.1)
    return found


def _ledger(marks: Path) -> list[str]:
    path = marks / "ledger"
    return path.read_text().splitlines() if path.exists() else []


def test_a_sweep_runs_as_on_local(slurm_grid, project: Path) -> None:
    grid = slurm_grid
    grid("run", "--backend", "slurm", "--name", "sl", "train.py", "--lr", "[0.1, 0.01]",
         cwd=project)  # fmt: skip
    data = grid.wait("sl", timeout=180)
    assert [e["status"] for e in data["experiments"]] == ["succeeded", "succeeded"], data
    table = grid("status", "sl").stdout
    assert "Slurm job" in table and "node" in table, table
    log = grid("logs", "sl-exp0").stdout
    assert "[stdout]" in log and "epoch=2 loss=3.3333" in log
    assert "gridrun: submitted as Slurm job" in log
    # The sweep is one job array: its experiments are tasks 0 and 1 of one job.
    refs = [(grid.home / "experiments" / f"sl-exp{i}" / "backend.ref").read_text() for i in (0, 1)]
    assert refs[0].split("_")[0] == refs[1].split("_")[0] and refs[1].endswith("_1"), refs
    job_line = next(x for x in log.splitlines() if "slurm job " in x)
    assert "slurm job None" not in job_line and "node node" in job_line, job_line
    metrics = grid.json("metrics", "sl")
    assert "loss" in json.dumps(metrics)
    out = grid("artifacts", "sl", cwd=project).stdout
    assert "Copied 2 artifact(s)" in out, out
    assert (project / "grid_artifacts" / "sl-exp1" / "model.txt").read_text() == "lr=0.01"


def test_grid_stop_ends_the_slurm_job_gracefully(
    slurm_grid, slurm_cluster, project: Path, marks: Path
) -> None:
    grid = slurm_grid
    grid("run", "--backend", "slurm", "--name", "st", "barrier.py", str(marks), cwd=project)
    _wait("the script started", lambda: (marks / "start st-exp0 0").exists())
    grid("stop", "run", "st")
    data = grid.wait("st", timeout=60)
    assert data["experiments"][0]["status"] == "stopped", data
    assert "saving" in grid("logs", "st-exp0").stdout  # SIGTERM reached the script
    handle = (grid.home / "experiments" / "st-exp0" / "backend.ref").read_text().strip()
    _wait("the job left Slurm's queue", lambda: handle not in _active_jobs(slurm_cluster))
    assert _ledger(marks) == []


def _active_jobs(cluster) -> list[str]:  # type: ignore[no-untyped-def]
    import subprocess

    out = subprocess.run(
        ["squeue", "-h", "-o", "%i"], env=cluster.client_env(), capture_output=True, text=True
    )
    return out.stdout.split()


@pytest.mark.parametrize("auto_resume", [True, False])
def test_a_node_taken_down_mid_run_is_a_preemption(
    slurm_grid, slurm_cluster, project: Path, marks: Path, auto_resume: bool
) -> None:
    grid = slurm_grid
    flags = ["--auto_resume"] if auto_resume else []
    grid("run", "--backend", "slurm", "--name", "nd", *flags, "barrier.py", str(marks),
         cwd=project)  # fmt: skip
    _wait("the script started", lambda: (marks / "start nd-exp0 0").exists())
    node_file = grid.home / "experiments" / "nd-exp0" / "node"
    # "queued in Slurm (...)" until the job has a node, then "nodeN (Slurm job ID)".
    node = _wait(
        "its node known",
        lambda: (
            node_file.exists()
            and node_file.read_text().startswith("node")
            and node_file.read_text()
        ),
    ).split()[0]
    slurm_cluster.set_node(node, "DOWN", "gridrun test: node taken down")
    if auto_resume:
        _wait("the resumed attempt started", lambda: (marks / "start nd-exp0 1").exists())
        (marks / "go nd-exp0 1").touch()
    final = grid.wait("nd", timeout=120)["experiments"][0]
    log = grid("logs", "nd-exp0").stdout
    assert "NODE_FAIL" in log, log
    if auto_resume:
        assert final["status"] == "succeeded" and final["restarts"] == 1, final
        assert final["preemptions"] == 1, final
        assert _ledger(marks) == ["nd-exp0 1"]  # the first attempt never completed
    else:
        assert final["status"] == "failed", final
        assert "preempted" in (final.get("error") or ""), final
        assert _ledger(marks) == []


def _pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def test_a_killed_agent_and_supervisor_lose_nothing_and_run_nothing_twice(
    slurm_grid, project: Path, marks: Path
) -> None:
    """The job outlives whoever submitted it: a new agent finds it by its handle."""
    grid = slurm_grid
    grid("run", "--backend", "slurm", "--name", "ka", "barrier.py", str(marks), cwd=project)
    _wait("the script started", lambda: (marks / "start ka-exp0 0").exists())
    conn = sqlite3.connect(grid.home / "grid.db")
    row = conn.execute("SELECT supervisor_pid FROM experiments WHERE name = 'ka-exp0'").fetchone()
    conn.close()
    agent = _pid_file(grid.home / "agent.pid")
    for pid in (agent, row[0]):
        if pid:
            os.kill(pid, signal.SIGKILL)
    (marks / "go ka-exp0 0").touch()  # it completes with nobody watching
    _wait("the script completed", lambda: _ledger(marks))
    final = grid.wait("ka", timeout=120)["experiments"][0]  # a grid command: a new agent
    assert final["status"] == "succeeded" and final["restarts"] == 0, final
    assert _ledger(marks) == ["ka-exp0 0"]


def test_a_waiting_job_says_why_slurm_holds_it(slurm_grid, project: Path, marks: Path) -> None:
    grid = slurm_grid
    grid("run", "--backend", "slurm", "--name", "wq", "--cpus", "4", "barrier.py", str(marks),
         "--x", "[1, 2, 3]", cwd=project)  # fmt: skip
    names = [f"wq-exp{i}" for i in range(3)]

    def a_queued_one() -> str | None:
        for n in names:
            log = grid("logs", n).stdout
            if "queued in Slurm (Resources)" in log or "queued in Slurm (Priority)" in log:
                return n
        return None

    # Two nodes of 4 CPUs: two run, the third waits for resources (or, first, behind
    # the others in priority), and says so in its log and in grid status.
    waiting = _wait("a job held for resources", a_queued_one)
    exps = {e["name"]: e for e in grid.json("status", "wq")["experiments"]}
    assert (exps[waiting].get("node") or "").startswith("queued in Slurm"), exps[waiting]
    assert exps[waiting]["engine_state"] == "queued", exps[waiting]
    row = next(x for x in grid("status", "wq").stdout.splitlines() if waiting in x)
    assert "queued" in row.split("│")[2], row  # the Status column, not "running"
    seen_queued = time.time()
    running = [n for n in names if n != waiting]
    for n in running:
        _wait(f"{n} started", lambda n=n: (marks / f"start {n} 0").exists())
        (marks / f"go {n} 0").touch()
    _wait(f"{waiting} started", lambda: (marks / f"start {waiting} 0").exists())
    (marks / f"go {waiting} 0").touch()
    data = grid.wait("wq", timeout=120)
    assert {e["status"] for e in data["experiments"]} == {"succeeded"}, data
    # Its run time started when Slurm placed it, not when gridrun handed it over.
    placed = next(e for e in data["experiments"] if e["name"] == waiting)
    assert placed["started_at"] > seen_queued, placed


def test_what_no_node_can_hold_is_refused_at_submission(slurm_grid, project: Path) -> None:
    grid = slurm_grid
    proc = grid("run", "--backend", "slurm", "--cpus", "64", "train.py", "--lr", "0.1",
                cwd=project, check=False)  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "64 CPUs" in proc.stderr and "largest node of the cluster (node" in proc.stderr
    proc = grid("run", "--backend", "slurm", "--slurm_partition", "nope", "train.py",
                "--lr", "0.1", cwd=project, check=False)  # fmt: skip
    assert proc.returncode != 0 and "no node in partition nope" in proc.stderr, proc.stderr
    assert grid.json("status") == [] or "runs" in json.dumps(grid.json("status"))


def test_a_named_slurm_cluster_is_listed_and_runs_a_sweep(
    grid, slurm_cluster, project: Path
) -> None:
    """``grid clusters add NAME --backend slurm --address SLURM_CONF`` and ``--cluster``:
    the shell has no SLURM_CONF; the named cluster is all that says where Slurm is."""
    grid.env.pop("SLURM_CONF", None)
    grid("clusters", "add", "lab", "--backend", "slurm", "--address", str(slurm_cluster.conf))
    rows = {r["name"]: r for r in grid.json("clusters")}
    assert rows["lab"]["state"] == "up" and rows["lab"]["nodes"] == 2, rows["lab"]
    assert rows["lab"]["cpus"] == 8 and "(4 CPUs)" in rows["lab"]["largest_node"]
    grid("run", "--cluster", "lab", "--name", "named", "train.py", "--lr", "[0.1, 0.01]",
         cwd=project)  # fmt: skip
    data = grid.wait("named", timeout=180)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"] * 2, data
    assert "Slurm job" in (data["experiments"][0].get("node") or ""), data
    proc = grid("clusters", "add", "bad", "--backend", "slurm", "--address", "/nope.conf",
                check=False)  # fmt: skip
    assert proc.returncode != 0 and "no Slurm config file there" in proc.stderr
