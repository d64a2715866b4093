"""Per-experiment overhead of the Ray backend against ``ray job submit`` by hand.

Starts a local two-node Ray cluster (a head with 1 CPU and a worker with 2, on private
ports), then runs the same 100 experiments of a trivial script twice:

(a) ``grid run --backend ray trivial.py --i "range(100)"``: one driver job for the
    run, each experiment a Ray task (the environment already cached on the nodes by a
    warm-up run, as it is for every sweep after the first);
(b) by hand: ``ray job submit --no-wait --entrypoint-num-cpus 1 -- python trivial.py
    --i N`` for N = 0..99, one after the other, then waiting for every job.

Each prints the wall time from the first submission to the last experiment's end and
the overhead per experiment: (wall - ideal) / 100, where ideal is the script's own run
time x 100 / the cluster's 3 CPUs. The end is the one each tool records (the last
experiment's ``finished_at`` in ``grid status``, the last job's ``end_time`` in Ray's
job table), so neither side's figure depends on how often it is asked; both are asked
once a second, since a ``grid status`` started every 0.2 s would itself take most of
a core from the cluster it measures. Prints figures, asserts nothing.

    python benchmarks/bench_ray.py [--n 100] [--grid-only]

``GRIDRUN_TEST_RAY_CLUSTER=FILE`` (``{"gcs": ..., "dash": ...}``, as the tests take it)
runs on a cluster of that shape already started, instead of starting one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from raycluster import RAY, LocalRayCluster

SLOTS = 3  # head 1 CPU + worker 2 CPUs
ASK_SECONDS = 1.0  # how often each side is asked whether it is done


def _timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def bench_grid(cluster: LocalRayCluster, project: Path, work: Path, n: int) -> float:
    env = dict(os.environ, GRID_HOME=str(work / "home"), RAY_ADDRESS=cluster.gcs_address)
    grid = [sys.executable, "-m", "gridrun"]
    # Warm-up: the nodes build and cache the environment once.
    subprocess.run(
        [*grid, "run", "--backend", "ray", "--cpus", "1", "--follow", "trivial.py",
         "--i", "[0, 1, 2]"],
        cwd=project, env=env, check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    start = time.time()
    out = subprocess.run(
        [*grid, "-o", "json", "run", "--backend", "ray", "--cpus", "1", "trivial.py",
         "--i", f"range({n})"],
        cwd=project, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    name = json.loads(out.stdout)["name"]
    while True:
        time.sleep(ASK_SECONDS)
        data = json.loads(
            subprocess.run(
                [*grid, "-o", "json", "status", name], env=env, check=True,
                capture_output=True, text=True,
            ).stdout
        )  # fmt: skip
        states = [e["status"] for e in data["experiments"]]
        if all(s not in ("building", "pending", "running") for s in states):
            break
    wall = max(e["finished_at"] for e in data["experiments"]) - start
    bad = [s for s in states if s != "succeeded"]
    if bad:
        print(f"  warning: {len(bad)} experiments did not succeed: {sorted(set(bad))}")
    subprocess.run([*grid, "agent", "stop"], env=env, capture_output=True)
    return wall


def bench_by_hand(cluster: LocalRayCluster, project: Path, n: int) -> float:
    from ray.job_submission import JobStatus, JobSubmissionClient

    env = dict(os.environ, RAY_ADDRESS=cluster.dashboard_url)
    start = time.time()
    ids = []
    for i in range(n):
        out = subprocess.run(
            [RAY, "job", "submit", "--address", cluster.dashboard_url, "--no-wait",
             "--working-dir", str(project), "--entrypoint-num-cpus", "1", "--",
             "python", "trivial.py", "--i", str(i)],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        ids.append(_submission_id(out.stdout + out.stderr))
    client = JobSubmissionClient(cluster.dashboard_url)
    final = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    pending = set(ids)
    while pending:
        time.sleep(ASK_SECONDS)
        pending = {j for j in pending if client.get_job_status(j) not in final}
    wall = max(client.get_job_info(j).end_time or 0 for j in ids) / 1000 - start
    failed = [j for j in ids if client.get_job_status(j) != JobStatus.SUCCEEDED]
    if failed:
        print(f"  warning: {len(failed)} jobs did not succeed")
    return wall


def _submission_id(text: str) -> str:
    import re

    m = re.search(r"Job '([^']+)' submitted successfully", text)
    if not m:
        raise RuntimeError(f"no job id in: {text[-500:]}")
    return m.group(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument(
        "--grid-only", action="store_true", help="skip `ray job submit` (while iterating)"
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridrun-bench-ray-"))
    project = work / "project"
    project.mkdir()
    (project / "trivial.py").write_text("import sys\nprint(sys.argv[1:])\n")
    reuse = os.environ.get("GRIDRUN_TEST_RAY_CLUSTER")
    if reuse:
        info = json.loads(Path(reuse).read_text())
        cluster = LocalRayCluster(gcs_address=info["gcs"], dashboard_url=info["dash"])
    else:
        cluster = LocalRayCluster(head_cpus=1, workers=[{"cpus": 2}])
    try:
        if not reuse:
            cluster.start()
        bare = statistics.median(
            _timed([sys.executable, "trivial.py", "--i", "1"], project) for _ in range(7)
        )
        ideal = math.ceil(args.n / SLOTS) * bare
        grid_wall = bench_grid(cluster, project, work, args.n)
        hand_wall = None if args.grid_only else bench_by_hand(cluster, project, args.n)
    finally:
        if not reuse:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    grid_over = (grid_wall - ideal) / args.n
    print(f"{args.n} experiments of a trivial script on a local 2-node Ray cluster ({SLOTS} CPUs)")
    print(f"  script alone:            {bare * 1000:8.0f} ms; ideal wall {ideal:.1f} s")
    print(f"  {'':24} {'wall':>8} {'overhead/experiment':>22}")
    print(f"  {'grid run --backend ray':24} {grid_wall:7.1f}s {grid_over * 1000:19.0f} ms")
    if hand_wall is not None:
        hand_over = (hand_wall - ideal) / args.n
        print(f"  {'ray job submit by hand':24} {hand_wall:7.1f}s {hand_over * 1000:19.0f} ms")
        print(f"  ratio (by hand / gridrun): {hand_over / grid_over:.1f}x")
    print(f"  load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
