"""How long ``grid status RUN`` takes for a big sweep (issue 21: 18-36 s at 20,000).

Submits ``grid run job.sh --i "range(N)"`` (a shell script that fails for every 7th
value), lets the agent start and finish some for ``--window`` seconds, then times, as
real subprocesses: ``grid status RUN`` (the paged table), ``grid status RUN --all``,
``grid -o json status RUN`` and ``grid status`` (all runs); then stops the run. Prints
the median of ``--repeats`` timings of each. Asserts nothing.

    python benchmarks/bench_status.py [--n 20000] [--window 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridrun-bench-status-"))
    home, project = work / "home", work / "proj"
    home.mkdir()
    project.mkdir()
    (home / "config.yaml").write_text("agent_idle_seconds: 60\nmax_experiments: 1000000\n")
    (project / "job.sh").write_text("[ $(( $2 % 7 )) -ne 0 ]\n")
    env = dict(os.environ, GRID_HOME=str(home), COLUMNS="200")

    def grid(*argv: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gridrun", *argv], cwd=project, env=env,
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        return time.perf_counter() - start

    try:
        submit = grid(
            "run", "--ignore_warnings", "--name", "big", "job.sh", "--i", f"range({args.n})"
        )
        time.sleep(args.window)  # the workload: experiments start and end meanwhile
        print(f"{args.n} experiments submitted in {submit:.2f} s; after {args.window:.0f} s:")
        for argv in (["status", "big"], ["status", "big", "--all"],
                     ["-o", "json", "status", "big"], ["status"]):  # fmt: skip
            times = [grid(*argv) for _ in range(args.repeats)]
            print(f"  grid {' '.join(argv):<28} median {statistics.median(times):6.2f} s"
                  f"  (min {min(times):.2f})")  # fmt: skip
        grid("stop", "run", "big")
    finally:
        subprocess.run([sys.executable, "-m", "gridrun", "agent", "stop"], env=env,
                       check=False, capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
