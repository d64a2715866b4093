"""End to end through the real CLI: a sweep prints and writes metrics, `grid metrics` shows them."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import time
from pathlib import Path

import pytest
from tensorboardX import SummaryWriter

TRAIN = """\
import argparse, os, shutil, time
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--epochs", type=int)
a = p.parse_args()
os.makedirs("lightning_logs/version_0", exist_ok=True)
with open("lightning_logs/version_0/metrics.csv", "w") as f:
    f.write("epoch,step,val_acc\\n")
for e in range(a.epochs):
    print(f"epoch: {e} loss: {a.lr / (e + 1):.6f} acc: {0.5 + e / 10}", flush=True)
    with open("lightning_logs/version_0/metrics.csv", "a") as f:
        f.write(f"{e},{e * 10},{0.6 + e / 10}\\n")
    time.sleep(0.1)
print("Validation accuracy 0.75", flush=True)
os.makedirs("runs/exp", exist_ok=True)
shutil.copy("tb.bin", "runs/exp/events.out.tfevents.1.host")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    (p / "train.py").write_text(TRAIN)
    logdir = tmp_path / "tb"
    w = SummaryWriter(str(logdir))
    for s in range(4):
        w.add_scalar("tb/grad_norm", 2.0 * s, s)
    w.close()
    (p / "tb.bin").write_bytes(next(logdir.glob("events.out.tfevents.*")).read_bytes())
    return p


def test_a_sweep_printing_metrics_then_grid_metrics(grid, project: Path) -> None:
    (grid.home / "config.yaml").write_text(
        "agent_idle_seconds: 5\nmetrics:\n  patterns:\n"
        "    - val_acc_printed: 'Validation accuracy (\\value)'\n"
    )
    grid(
        "run", "--name", "msweep", "--follow", "train.py",
        "--lr", "[0.1, 0.01]", "--epochs", "3", cwd=project,
    )  # fmt: skip
    table = grid("metrics", "msweep").stdout
    assert "msweep-exp0" in table and "msweep-exp1" in table
    for col in ("lr", "loss", "acc", "val_acc", "tb/grad_norm", "last [min, max]"):
        assert col in table, table
    assert "0.033333 [0.033333, 0.1]" in table and "0.003333 [0.003333, 0.01]" in table

    data = grid.json("metrics", "msweep")
    assert [e["experiment"] for e in data] == ["msweep-exp0", "msweep-exp1"]
    exp0 = data[0]
    assert exp0["params"]["lr"] == "0.1"
    loss = exp0["metrics"]["loss"]
    assert [p[0] for p in loss["series"]] == [0, 1, 2]
    assert loss["last"] == 0.033333 and loss["max"] == pytest.approx(0.1)
    assert loss["count"] == 3
    assert [p[2] for p in exp0["metrics"]["val_acc"]["series"]] == pytest.approx([0.6, 0.7, 0.8])
    assert [p[0] for p in exp0["metrics"]["val_acc"]["series"]] == [0, 10, 20]
    assert exp0["metrics"]["tb/grad_norm"]["series"][-1][0::2] == [3, 6.0]
    assert exp0["metrics"]["val_acc_printed"]["last"] == 0.75
    assert "epoch" not in exp0["metrics"]["loss"]  # the x value of printed lines
    assert exp0["metrics"]["epoch"]["count"] == 3  # a column of the CSV, whose x is step

    by_loss = grid("metrics", "msweep", "--sort", "loss", "-o", "json").stdout
    assert [e["experiment"] for e in json.loads(by_loss)] == ["msweep-exp1", "msweep-exp0"]
    desc = json.loads(grid("metrics", "msweep", "--sort", "-loss", "-o", "json").stdout)
    assert [e["experiment"] for e in desc] == ["msweep-exp0", "msweep-exp1"]

    rows = list(csv.DictReader(io.StringIO(grid("metrics", "msweep", "-o", "csv").stdout)))
    assert [r["experiment"] for r in rows] == ["msweep-exp0", "msweep-exp1"]
    assert float(rows[1]["loss last"]) == 0.003333 and rows[1]["lr"] == "0.01"

    one = grid.json("metrics", "msweep-exp1")
    assert [e["experiment"] for e in one] == ["msweep-exp1"]

    bad = grid("metrics", "msweep", "--sort", "nope", check=False)
    assert bad.returncode != 0 and "Cannot sort by 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) <= 2
    missing = grid("metrics", "no-such-run", check=False)
    assert missing.returncode != 0 and "No run or experiment named" in missing.stderr

    # The table is followed by a braille chart per metric, a line per experiment.
    charted = grid("metrics", "msweep").stdout
    chart_rows = [ln for ln in charted.splitlines() if "┤" in ln]
    # val_acc_printed, printed once, never changes: a column, not a chart.
    assert len(chart_rows) == 8 * (len(exp0["metrics"]) - 1)
    assert not any(ln.startswith("val_acc_printed") for ln in charted.splitlines())
    assert any(ch in ln for ln in chart_rows for ch in "⠁⠂⠄⡀⠈⠐⠠⢀")
    assert "━━ msweep-exp0 lr=0.1" in charted and "━━ msweep-exp1 lr=0.01" in charted
    assert "┤" not in grid("metrics", "msweep", "--no-chart").stdout

    # Two runs (or a run and an experiment) in one table, one JSON list, one chart each.
    grid(
        "run", "--name", "other", "--follow", "train.py", "--lr", "0.5", "--epochs", "3",
        cwd=project,
    )  # fmt: skip
    both = grid.json("metrics", "msweep", "other")
    assert [(e["run"], e["experiment"]) for e in both] == [
        ("msweep", "msweep-exp0"), ("msweep", "msweep-exp1"), ("other", "other-exp0"),
    ]  # fmt: skip
    text = grid("metrics", "msweep", "other", "msweep-exp0").stdout
    assert "other-exp0" in text and text.count("msweep-exp0") == 2  # the table, the legend


def test_bad_pattern_in_run_config_is_refused_at_submission(grid, project: Path) -> None:
    cfg = project / "grid.yaml"
    cfg.write_text("metrics:\n  patterns:\n    - '(unclosed'\n")
    out = grid("run", "--config", str(cfg), "train.py", "--lr", "1", cwd=project, check=False)
    assert out.returncode != 0 and "Invalid metrics pattern" in out.stderr
    assert "Traceback" not in out.stderr


def test_run_config_patterns_are_used(grid, project: Path) -> None:
    cfg = project / "grid.yaml"
    cfg.write_text(
        "metrics:\n  default_patterns: false\n  patterns:\n    accuracy: 'accuracy (\\value)'\n"
    )
    grid(
        "run", "--name", "cfgrun", "--config", str(cfg), "--follow",
        "train.py", "--lr", "1", "--epochs", "2", cwd=project,
    )  # fmt: skip
    got = grid.json("metrics", "cfgrun")[0]["metrics"]
    assert got["accuracy"]["last"] == 0.75
    assert "loss" not in got  # the built-in pattern is off
    assert "val_acc" in got  # files are read whatever the patterns


SLOW = """\
import time
for i in range(40):
    print(f"step={i} loss={i / 100}", flush=True)
print("ready", flush=True)
time.sleep(600)
"""


def _pid(grid, exp: str, field: str) -> int:  # type: ignore[no-untyped-def]
    import sqlite3

    conn = sqlite3.connect(grid.home / "grid.db")
    try:
        (pid,) = conn.execute(f"SELECT {field} FROM experiments WHERE name = ?", (exp,)).fetchone()
    finally:
        conn.close()
    return int(pid)


def test_metrics_survive_the_agent_and_the_supervisor_dying(grid, project: Path) -> None:
    (project / "slow.py").write_text(SLOW)
    grid("run", "--name", "dies", "slow.py", cwd=project)
    grid.wait_for_line("dies-exp0", "ready", timeout=120)
    agent = int((grid.home / "agent.pid").read_text().split()[0])  # "pid start-ticks"
    os.kill(agent, signal.SIGKILL)  # the agent dies mid-experiment
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = grid.json("metrics", "dies")[0]["metrics"].get("loss", {})
        if got.get("count") == 40:
            break
        time.sleep(0.3)
    assert got.get("count") == 40, got  # the supervisor went on reading without it
    # Now the supervisor dies too: the experiment is lost, but what it printed is in
    # output.log, and the reconciling agent reads whatever the supervisor had not.
    sup = _pid(grid, "dies-exp0", "supervisor_pid")
    os.kill(sup, signal.SIGKILL)
    grid("status")  # starts an agent that reconciles
    data = grid.wait("dies", timeout=120)
    assert data["experiments"][0]["status"] == "failed"
    loss = grid.json("metrics", "dies")[0]["metrics"]["loss"]
    assert loss["count"] == 40 and [p[0] for p in loss["series"]] == list(range(40))
