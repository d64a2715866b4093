"""gridrun on Slurm against what a Slurm user would type instead, on a real cluster.

Starts its own cluster (``tests/slurmcluster.py``: munged, slurmctld and two slurmd
nodes on this machine, each claiming ``--node-cpus`` CPUs), then runs the same N trivial
experiments three ways and prints the wall time of each, from submission to the last
one ended:

(a) ``grid run --backend slurm trivial.py --i "range(N)"``, watched with
    ``grid -o json status`` every half second;
(b) by hand: one ``sbatch --array=0-(N-1)`` job array, watched with ``squeue`` every
    half second;
(c) submitit's ``map_array`` (installed from PyPI into this environment if missing).

It also counts, during (a), the processes on this machine that belong to gridrun (its
agent, launcher and supervisors; the jobs' own processes run "on the nodes" and are
not counted). Asserts nothing.

    python benchmarks/bench_slurm.py [--n 100] [--node-cpus 50] [--repeat 3]

(a) and (b) are alternated ``--repeat`` times (medians printed, and each round).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from slurmcluster import LocalSlurmCluster

TRIVIAL = "import sys\nprint('task', sys.argv[1:])\n"
POLL = 0.5  # seconds between two looks at the run (grid status) or the array (squeue)


def _every(period: float) -> Iterator[None]:
    """Ticks ``period`` apart from the first, however long each look takes: both ways
    of watching look as often, whatever their command costs."""
    due = time.monotonic()
    while True:
        yield
        due += period
        time.sleep(max(0.0, due - time.monotonic()))


def gridrun_sweep(
    cluster: LocalSlurmCluster, work: Path, n: int, name: str = "bench"
) -> tuple[float, int]:
    project = work / "proj"
    if project.exists():  # a repetition: the same project, environment and agent
        return _grid_run(cluster, work, n, name)
    project.mkdir()
    (project / "trivial.py").write_text(TRIVIAL)
    home = work / "grid-home"
    home.mkdir()
    (home / "config.yaml").write_text("agent_idle_seconds: 30\n")
    env = {**os.environ, **cluster.env, "GRID_HOME": str(home)}
    grid = [sys.executable, "-m", "gridrun"]
    # Every array task starts a Python that imports gridrun's runner: bytecode as an
    # installed package has it (pip compiles on install), even where
    # PYTHONDONTWRITEBYTECODE is set.
    import gridrun

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(gridrun.__file__).parent)],
                   capture_output=True, check=False)  # fmt: skip
    # The environment is built once, before the clock starts, as for the others.
    subprocess.run([*grid, "run", "--backend", "slurm", "--name", "warm", "--follow",
                    "trivial.py", "--i", "0"], cwd=project, env=env, check=True,
                   capture_output=True)  # fmt: skip
    return _grid_run(cluster, work, n, name)


def _grid_run(cluster: LocalSlurmCluster, work: Path, n: int, name: str) -> tuple[float, int]:
    project, home = work / "proj", work / "grid-home"
    env = {**os.environ, **cluster.env, "GRID_HOME": str(home)}
    grid = [sys.executable, "-m", "gridrun"]
    peak = [0]
    done = threading.Event()

    def count() -> None:
        import psutil

        while not done.is_set():
            mine = 0
            for p in psutil.process_iter(["cmdline"]):
                try:
                    cmd = " ".join(p.info["cmdline"] or [])
                    if "gridrun.agent" in cmd and str(home) in cmd:
                        mine += 1
                except psutil.Error:
                    continue
            peak[0] = max(peak[0], mine)
            time.sleep(1.0)  # (the count's own CPU is taken from the run it watches)

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    t0 = time.monotonic()
    subprocess.run([*grid, "run", "--backend", "slurm", "--name", name, "trivial.py",
                    "--i", f"range({n})"], cwd=project, env=env, check=True,
                   capture_output=True)  # fmt: skip
    for _ in _every(POLL):
        out = subprocess.run([*grid, "-o", "json", "status", name], env=env,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        counts = json.loads(out)["counts"]
        if counts["building"] + counts["pending"] + counts["running"] == 0:
            break
    wall = time.monotonic() - t0
    done.set()
    assert counts["succeeded"] == n, counts
    return wall, peak[0]


def by_hand(cluster: LocalSlurmCluster, work: Path, n: int) -> float:
    script = work / "trivial.py"
    script.write_text(TRIVIAL)
    out = work / "array"
    out.mkdir(exist_ok=True)
    env = cluster.client_env()
    t0 = time.monotonic()
    job = subprocess.run(
        ["sbatch", "--parsable", f"--array=0-{n - 1}", f"--output={out}/%A_%a.out",
         "--wrap", f"{sys.executable} {script} $SLURM_ARRAY_TASK_ID"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    for _ in _every(POLL):
        if not subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True,
                              text=True).stdout.strip():  # fmt: skip
            break
    return time.monotonic() - t0


def _task(i: int) -> int:
    return i * i


def with_submitit(cluster: LocalSlurmCluster, work: Path, n: int) -> float | str:
    try:
        import submitit
    except ImportError:
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "submitit"],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            return f"submitit could not be installed: {proc.stderr.strip()[-200:]}"
        import submitit
    os.environ.update(cluster.env)
    executor = submitit.AutoExecutor(folder=str(work / "submitit"), cluster="slurm")
    executor.update_parameters(timeout_min=10, slurm_array_parallelism=n, cpus_per_task=1)
    t0 = time.monotonic()
    jobs = executor.map_array(_task, range(n))
    results = [j.result() for j in jobs]
    wall = time.monotonic() - t0
    assert results == [i * i for i in range(n)]
    return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--node-cpus", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of (a) and (b), alternated")
    ap.add_argument("--no-submitit", action="store_true", help="skip (c)")
    args = ap.parse_args()
    # A SIGTERM (a `timeout`) still stops the cluster and the agent this started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="gridrun-bench-slurm-"))
    cluster = LocalSlurmCluster(nodes=2, cpus=args.node_cpus, memory_mb=64000)
    home = work / "grid-home"
    ours_all: list[float] = []
    hand_all: list[float] = []
    peak = 0
    print(f"{args.n} trivial experiments on a 2-node Slurm cluster ({args.node_cpus} CPUs each)")
    try:
        cluster.start()
        # Alternated, so that a slower moment of the machine weighs on both alike;
        # Slurm's own start of a hundred tasks varies by a second from one array to
        # the next, so one round says little.
        for k in range(max(1, args.repeat)):
            wall, most = gridrun_sweep(cluster, work, args.n, name=f"bench{k}")
            ours_all.append(wall)
            peak = max(peak, most)
            hand_all.append(by_hand(cluster, work, args.n))
            print(f"  round {k + 1}: gridrun {wall:.1f} s, by hand {hand_all[-1]:.1f} s",
                  flush=True)  # fmt: skip
        _stop_agent(cluster, home)
        ours, hand = statistics.median(ours_all), statistics.median(hand_all)
        print(f"median of {len(ours_all)}:")
        print(f"  grid run --backend slurm   {ours:7.1f} s  (gridrun processes here,"
              f" at most: {peak})")  # fmt: skip
        print(f"  sbatch --array + squeue    {hand:7.1f} s  ({ours / hand:.2f}x for gridrun)",
              flush=True)  # fmt: skip
        if not args.no_submitit:
            sub = with_submitit(cluster, work, args.n)
            if isinstance(sub, float):
                print(f"  submitit map_array         {sub:7.1f} s  ({ours / sub:.2f}x for gridrun)")
            else:
                print(f"  submitit: {sub}")
    finally:
        _stop_agent(cluster, home)
        cluster.remove()
    print(f"(load average {os.getloadavg()[0]:.2f})")


def _stop_agent(cluster: LocalSlurmCluster, home: Path) -> None:
    if home.exists():
        subprocess.run([sys.executable, "-m", "gridrun", "agent", "stop"],
                       env={**os.environ, **cluster.env, "GRID_HOME": str(home)},
                       capture_output=True)  # fmt: skip


if __name__ == "__main__":
    main()
