"""Processes gridrun keeps on this machine while a Ray sweep runs.

Starts a local two-node Ray cluster (1 + 2 CPUs, bound to loopback), submits
``grid run --backend ray`` of N experiments of a script that sleeps a second, and
samples this machine's processes every half second until the sweep ends: the most
gridrun processes seen at once (the agent, its helpers, any per-experiment
supervisor or bridge), and their resident memory then. Ray's own processes (raylets,
workers) are not counted: they are the engine's. Prints figures, asserts nothing.

    python benchmarks/bench_ray_processes.py [--n 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from raycluster import LocalRayCluster


def gridrun_processes(home: Path) -> list[psutil.Process]:
    """This GRID_HOME's gridrun processes (by command line or by working directory)."""
    out = []
    for p in psutil.process_iter(["cmdline", "cwd"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if (
            "gridrun" in cmd
            and "bench_ray_processes" not in cmd
            and str(home) in (cmd + " " + str(p.info["cwd"] or ""))
        ):
            out.append(p)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridrun-bench-rayproc-"))
    project, home = work / "project", work / "home"
    project.mkdir()
    (project / "sleepy.py").write_text("import sys, time\ntime.sleep(1)\nprint(sys.argv[1:])\n")
    cluster = LocalRayCluster(head_cpus=1, workers=[{"cpus": 2}])
    env = dict(os.environ, GRID_HOME=str(home), RAY_ADDRESS="")
    grid = [sys.executable, "-m", "gridrun"]
    try:
        cluster.start()
        env["RAY_ADDRESS"] = cluster.gcs_address
        out = subprocess.run(
            [*grid, "-o", "json", "run", "--backend", "ray", "--cpus", "1", "sleepy.py",
             "--i", f"range({args.n})"],
            cwd=project, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        name = json.loads(out.stdout)["name"]
        most, rss, last_ask = 0, 0, 0.0
        while True:
            procs = gridrun_processes(home)
            if len(procs) > most:
                most = len(procs)
                rss = sum(_rss(p) for p in procs)
            if time.monotonic() - last_ask > 2:
                last_ask = time.monotonic()
                data = json.loads(
                    subprocess.run(
                        [*grid, "-o", "json", "status", name], env=env, check=True,
                        capture_output=True, text=True,
                    ).stdout
                )  # fmt: skip
                states = [e["status"] for e in data["experiments"]]
                if all(s not in ("building", "pending", "running") for s in states):
                    break
            time.sleep(0.5)
        subprocess.run([*grid, "agent", "stop"], env=env, capture_output=True)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    ok = sum(s == "succeeded" for s in states)
    print(f"{args.n} experiments on a local 2-node Ray cluster: {ok} succeeded")
    print(f"  most gridrun processes at once: {most}, resident memory then {rss / 2**20:.0f} MiB")


def _rss(p: psutil.Process) -> int:
    try:
        return int(p.memory_info().rss)
    except psutil.Error:
        return 0


if __name__ == "__main__":
    main()
