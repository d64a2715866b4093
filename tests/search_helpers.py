"""Shared by the search tests: a training curve to prune, and waiting for a search."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

# val_loss = x + 1/step. A trial with x > 0.5 is worse at every step than every trial
# with x <= 0.5, and holds after its curve until its search prunes it.
CURVE = """\
import argparse, time
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
a = p.parse_args()
for step in range(1, 4):
    print(f"step={step} val_loss={a.x + 1 / step:.6f}", flush=True)
if a.x > 0.5:
    time.sleep(300)
"""


def wait_search(grid, name: str, timeout: float = 150) -> dict:
    """``grid -o json status NAME`` once its search is closed and nothing is active."""
    deadline = time.monotonic() + timeout
    while True:
        data = grid.json("status", name)
        active = [
            e for e in data["experiments"] if e["status"] in ("building", "pending", "running")
        ]
        if data["search"]["state"] != "open" and not active:
            return data
        if time.monotonic() > deadline:
            log = grid.home / "agent.log"
            raise AssertionError(
                f"search {name} still going after {timeout}s: {data}\n"
                + (log.read_text() if log.exists() else "")
            )
        time.sleep(0.2)


def wait_until(what: str, predicate, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened in {timeout}s: {what}")
        time.sleep(0.1)


def submit_pruned_search(grid: Any, project: Path, name: str) -> str:
    """``curve.py`` searched by 8 trials, 8 at a time, pruned by the median; its stdout.

    Seed 2's first eight draws (all random: TPE starts with ten) are six with x <= 0.5,
    which succeed, and two above, which hold until pruned. GRID_HOME must offer 2 CPUs.
    """
    (project / "curve.py").write_text(CURVE)
    return grid(
        "run", "--name", name, "--strategy", "bayesian", "--num_trials", "8", "--seed", "2",
        "--objective", "val_loss:min", "--prune", "median", "--cpus", "0.25",
        "curve.py", "--x", "uniform(0, 1)", cwd=project,
    ).stdout  # fmt: skip
