"""Sweeps through the real CLI: expansion, parallelism within the CPU budget, stop."""

from __future__ import annotations

import ast
import itertools
import time
from pathlib import Path

import pytest

HELLO = """\
import sys, time
print(repr(sys.argv))
time.sleep(float(__import__("os").environ.get("HOLD", "0")))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    (p / "hello.py").write_text(HELLO)
    (p / "hold.py").write_text(
        "import sys, time\nprint(sys.argv, flush=True)\ntime.sleep(float(sys.argv[-1]))\n"
    )
    return p


def argv_of(grid, exp: str) -> list[str]:
    for line in grid("logs", exp).stdout.splitlines():
        if "[stdout]" in line:
            return ast.literal_eval(line.split("] ", 2)[2])
    raise AssertionError(f"no argv printed by {exp}")


def test_four_experiments_with_exact_argv(grid, project: Path) -> None:
    grid(
        "run",
        "--name",
        "food",
        "--follow",
        "hello.py",
        "--number",
        "[1, 2]",
        "--food_item",
        "['pizza', 'hotdog']",
        cwd=project,
    )
    data = grid.json("status", "food")
    assert [e["name"] for e in data["experiments"]] == [f"food-exp{i}" for i in range(4)]
    expected = [
        ["hello.py", "--number", n, "--food_item", f]
        for n, f in itertools.product(["1", "2"], ["pizza", "hotdog"])
    ]
    assert [argv_of(grid, f"food-exp{i}") for i in range(4)] == expected
    table = grid("status", "food").stdout
    assert "number" in table and "food_item" in table and "hotdog" in table


def test_random_search_with_seed_is_reproducible(grid, project: Path) -> None:
    args = ["hello.py", "--lr", "[0.1, 0.01, 0.001, 0.0001]", "--layers", "[1, 2, 3]"]
    search = ["--strategy", "random_search", "--num_trials", "5", "--seed", "7"]

    def dry() -> str:
        return grid("run", *search, "--dry_run", *args, cwd=project).stdout

    a, b = dry(), dry()
    assert a == b and len(a.strip().splitlines()) == 5
    other = grid("run", *search[:-1], "8", "--dry_run", *args, cwd=project).stdout
    assert other != a
    grid("run", "--name", "rs-run", *search, "--follow", *args, cwd=project)
    recorded = [e["argv"] for e in grid.json("status", "rs-run")["experiments"]]
    printed = [line.split(": python hello.py ")[1].split() for line in a.strip().splitlines()]
    assert recorded == printed
    assert len({tuple(r) for r in recorded}) == 5


def test_parallel_experiments_never_exceed_the_cpu_budget(grid, project: Path) -> None:
    (grid.home / "config.yaml").write_text(
        "capacity: {cpus: 2}\nstop_grace_seconds: 2\nagent_idle_seconds: 5\n"
    )
    grid(
        "run",
        "--name",
        "para",
        "--cpus",
        "1",
        "hold.py",
        "--t",
        "[1, 1, 1, 1, 1]",
        cwd=project,
        check=True,
    )
    data = grid.wait("para")
    spans = [(e["started_at"], e["finished_at"]) for e in data["experiments"]]
    assert all(e["status"] == "succeeded" for e in data["experiments"])
    points = sorted(
        [(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans], key=lambda p: (p[0], p[1])
    )
    running = peak = 0
    for _, d in points:
        running += d
        peak = max(peak, running)
    assert peak == 2, spans  # in parallel, and never more than the 2 CPUs allow


def test_cpu_heavy_experiments_queue_behind_each_other(grid, project: Path) -> None:
    (grid.home / "config.yaml").write_text("capacity: {cpus: 2}\nagent_idle_seconds: 5\n")
    grid("run", "--name", "wide", "--cpus", "2", "hold.py", "--t", "[0.5, 0.5]", cwd=project)
    data = grid.wait("wide")
    (_s0, f0), (s1, _f1) = [(e["started_at"], e["finished_at"]) for e in data["experiments"]]
    assert s1 >= f0 - 0.05


def test_sweep_stopped_as_a_whole(grid, project: Path) -> None:
    (grid.home / "config.yaml").write_text(
        "capacity: {cpus: 2}\nstop_grace_seconds: 2\nagent_idle_seconds: 5\n"
    )
    grid(
        "run", "--name", "big-sweep", "--cpus", "1", "hold.py", "--t", "range(6)", "60", cwd=project
    )
    deadline = time.monotonic() + 60
    while True:
        statuses = [e["status"] for e in grid.json("status", "big-sweep")["experiments"]]
        if statuses.count("running") == 2:
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.1)
    assert statuses.count("pending") == 4
    grid("stop", "run", "big-sweep")
    statuses = [e["status"] for e in grid.json("status", "big-sweep")["experiments"]]
    assert statuses == ["stopped"] * 6
    time.sleep(1.5)  # nothing starts afterwards
    statuses = [e["status"] for e in grid.json("status", "big-sweep")["experiments"]]
    assert statuses == ["stopped"] * 6


def test_more_gpus_than_the_machine_has_is_refused(grid, project: Path) -> None:
    proc = grid("run", "--gpus", "64", "hello.py", cwd=project, check=False)
    assert proc.returncode != 0 and "GPU" in proc.stderr and "Traceback" not in proc.stderr


def test_gpu_assignment_with_configured_devices(grid, project: Path) -> None:
    """Whole devices, never shared: checked with capacity declared in config.yaml
    (this machine has no GPU; the lent GPU machine runs the same test with NVML)."""
    (grid.home / "config.yaml").write_text(
        "capacity: {cpus: 8, gpus: [0, 1, 2]}\nagent_idle_seconds: 5\n"
    )
    (project / "cuda.py").write_text(
        "import os, sys, time\nprint('CUDA', os.environ['CUDA_VISIBLE_DEVICES'], flush=True)\n"
        "time.sleep(1)\n"
    )
    grid(
        "run",
        "--name",
        "gpus",
        "--gpus",
        "1",
        "--cpus",
        "1",
        "cuda.py",
        "--x",
        "[1, 2, 3, 4]",
        cwd=project,
    )
    data = grid.wait("gpus")
    seen = [
        grid("logs", e["name"]).stdout.split("CUDA ")[1].split()[0] for e in data["experiments"]
    ]
    assert sorted(seen[:3]) == ["0", "1", "2"] and seen[3] in ("0", "1", "2")
    spans = {
        e["name"]: (e["started_at"], e["finished_at"], e["gpu_ids"]) for e in data["experiments"]
    }
    for a, b in itertools.combinations(spans.values(), 2):
        if a[2] == b[2]:
            assert a[1] <= b[0] + 0.05 or b[1] <= a[0] + 0.05  # never at the same time
