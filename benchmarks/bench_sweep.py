"""Scheduling overhead of a sweep on the local backend. Prints figures.

Submits ``grid run trivial.py --i "range(200)"`` with an environment already cached,
waits for every experiment, and prints the submission time, the total wall time and
the overhead per experiment: (wall - 200 x bare run time / usable CPUs) / 200.

With ``--queued N`` it measures instead how fast the scheduler starts experiments
while N are queued (issue 12: at least 40/s with 100,000 queued): it submits N
experiments of a trivial shell script, counts starts in the store for ``--window``
seconds, stops the run, and prints the rate beside ``xargs -P`` starting the same
script (what a user would use instead, with no queue, no records and no logs), and
how long ``grid stop run`` then takes with the rest still queued.

    python benchmarks/bench_sweep.py [--n 200]
    python benchmarks/bench_sweep.py --queued 100000 [--window 20]
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
    ap.add_argument("--queued", type=int, help="measure starts/s with this many queued")
    ap.add_argument("--window", type=float, default=20.0, help="seconds to count starts")
    args = ap.parse_args()
    if args.queued:
        queued_rate(args.queued, args.window)
        return
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
        print(f"load average (1, 5, 15 min)  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        subprocess.run([*grid, "agent", "stop"], env=env, capture_output=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def queued_rate(n: int, window: float) -> None:
    import sqlite3

    work = Path(tempfile.mkdtemp(prefix="gridrun-queue-"))
    project = work / "project"
    project.mkdir()
    (project / "trivial.sh").write_text("exit 0\n")
    home = work / "home"
    home.mkdir()
    # Experiments ask for little, so capacity never limits the rate: the scheduler does.
    # max_experiments: the default (10,000) refuses larger sweeps, by design.
    (home / "config.yaml").write_text(
        f"capacity: {{cpus: 64}}\nagent_idle_seconds: 30\nmax_experiments: {max(n, 10_000)}\n"
    )
    env = dict(os.environ, GRID_HOME=str(home))
    grid = [sys.executable, "-m", "gridrun"]
    try:
        start = time.perf_counter()
        submit = ["run", "--ignore_warnings", "--cpus", "0.5", "trivial.sh", "--i", f"range({n})"]
        out = subprocess.run(
            [*grid, "-o", "json", *submit],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        submitted = time.perf_counter() - start
        name = json.loads(out.stdout)["name"]
        conn = sqlite3.connect(home / "grid.db", timeout=30)

        def started() -> int:
            q = "SELECT count(*) FROM experiments WHERE started_at IS NOT NULL"
            return int(conn.execute(q).fetchone()[0])

        deadline = time.monotonic() + 120
        while started() == 0:
            assert time.monotonic() < deadline, "nothing started in 120 s"
            time.sleep(0.05)
        t0, s0 = time.monotonic(), started()
        time.sleep(window)
        t1, s1 = time.monotonic(), started()
        pending = conn.execute(
            "SELECT count(*) FROM experiments WHERE status = 'pending'"
        ).fetchone()[0]
        conn.close()
        rate = (s1 - s0) / (t1 - t0)
        stop_start = time.perf_counter()
        subprocess.run([*grid, "stop", "run", name], env=env, capture_output=True, timeout=600)
        stop_time = time.perf_counter() - stop_start
        subprocess.run([*grid, "agent", "stop"], env=env, capture_output=True)
        baseline = _xargs_rate(project / "trivial.sh", 400)
        print(f"queued experiments           {n}")
        print(f"submission time              {submitted:8.2f} s")
        print(f"still pending after window   {pending}")
        print(f"experiments started / s      {rate:8.1f}      (target >= 40 with 100,000 queued)")
        print(f"xargs -P 8, same script      {baseline:8.1f} /s   (no queue, records or logs)")
        print(f"grid stop run (rest queued)  {stop_time:8.2f} s")
        print(f"load average (1, 5, 15 min)  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _xargs_rate(script: Path, n: int) -> float:
    start = time.perf_counter()
    subprocess.run(
        f"seq {n} | xargs -P 8 -n 1 bash {script}", shell=True, check=True, cwd=script.parent
    )
    return n / (time.perf_counter() - start)


def _timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
