"""Scheduling overhead of a 200-experiment sweep on the local backend. Prints figures.

Submits ``grid run trivial.py --i "range(200)"`` with an environment already cached,
waits for every experiment, and prints the submission time, the total wall time and
the overhead per experiment: (wall - 200 x bare run time / usable CPUs) / 200.

    python benchmarks/bench_sweep.py [--n 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridrun-sweep-"))
    project = work / "project"
    project.mkdir()
    (project / "trivial.py").write_text("import sys\nprint(sys.argv[1:])\n")
    env = dict(os.environ, GRID_HOME=str(work / "home"))
    grid = [sys.executable, "-m", "gridrun"]
    try:
        subprocess.run(
            [*grid, "run", "--cpus", "1", "--follow", "trivial.py"],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
        )
        bare = statistics.median(
            _timed([sys.executable, "trivial.py", "--i", "1"], project) for _ in range(7)
        )
        cpus = len(os.sched_getaffinity(0))
        start = time.perf_counter()
        out = subprocess.run(
            [*grid, "-o", "json", "run", "--cpus", "1", "trivial.py", "--i", f"range({args.n})"],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        submitted = time.perf_counter() - start
        name = json.loads(out.stdout)["name"]
        while True:
            data = json.loads(
                subprocess.run(
                    [*grid, "-o", "json", "status", name], env=env, check=True, capture_output=True
                ).stdout
            )
            statuses = [e["status"] for e in data["experiments"]]
            if all(s in ("succeeded", "failed", "stopped") for s in statuses):
                break
            time.sleep(0.2)
        wall = time.perf_counter() - start
        exps = data["experiments"]
        last_end = max(e["finished_at"] for e in exps)
        first_queue = min(e["queued_at"] for e in exps)
        inner = last_end - first_queue
        ideal = args.n * bare / cpus
        print(f"experiments                  {args.n} ({statuses.count('succeeded')} succeeded)")
        print(f"usable CPUs                  {cpus}")
        print(f"bare run time (median)       {bare * 1000:8.1f} ms")
        print(f"submission time              {submitted:8.2f} s   (target < 2 s)")
        print(f"total wall time              {wall:8.2f} s   (queued -> last exit {inner:.2f} s)")
        print(f"ideal (n x bare / cpus)      {ideal:8.2f} s")
        print(
            f"overhead per experiment      {(inner - ideal) / args.n * 1000:8.1f} ms"
            "   (target < 50 ms)"
        )
        subprocess.run([*grid, "agent", "stop"], env=env, capture_output=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
