"""How much does gridrun add to running a script? Prints figures, asserts nothing.

(a) ``python hello.py`` bare; (b) ``grid run --follow hello.py`` with its environment
already cached, end to end, and the difference; (c) a cold environment build of
``numpy pandas scikit-learn`` through gridrun's builder (uv) against ``python -m venv``
+ ``pip install`` of the same list, both with empty caches; (d) the cached rebuild of (c).

    python benchmarks/bench_run.py [--repeats 7] [--skip-cold]
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

HEAVY = ["numpy", "pandas", "scikit-learn"]


def timed(cmd: list[str], **kw: object) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - start


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def bench_follow(work: Path, repeats: int) -> tuple[float, float]:
    project = work / "project"
    project.mkdir()
    (project / "hello.py").write_text("print('hello')\n")
    env = dict(os.environ, GRID_HOME=str(work / "home"))
    grid = [sys.executable, "-m", "gridrun"]
    # Warm up: builds and caches the environment, starts the agent.
    subprocess.run(
        [*grid, "run", "--follow", "hello.py"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    bare = [timed([sys.executable, "hello.py"], cwd=project) for _ in range(repeats)]
    follow = [
        timed([*grid, "run", "--cpus", "1", "--follow", "hello.py"], cwd=project, env=env)
        for _ in range(repeats)
    ]
    subprocess.run([*grid, "agent", "stop"], env=env, capture_output=True)
    return median(bare), median(follow)


def bench_builds(work: Path) -> tuple[float, float, float]:
    from gridrun.envs.key import environment_key
    from gridrun.envs.pipconf import load_pip_config
    from gridrun.envs.venv import build_venv

    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    pip_cfg = load_pip_config()
    key = environment_key(py, HEAVY, pip_cfg.fingerprint())
    envs = work / "envs"
    os.environ["UV_CACHE_DIR"] = str(work / "uv-cache")  # cold: nothing cached
    start = time.perf_counter()
    build_venv(envs, key, py, HEAVY, lambda line: None, pip=pip_cfg)
    ours = time.perf_counter() - start
    cached = []
    for _ in range(5):
        start = time.perf_counter()
        build_venv(envs, key, py, HEAVY, lambda line: None, pip=pip_cfg)
        cached.append(time.perf_counter() - start)
    venv = work / "pip-venv"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-cache-dir", *HEAVY],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pip_time = time.perf_counter() - start
    return ours, pip_time, median(cached)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--skip-cold", action="store_true", help="skip (c) and (d)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridrun-bench-"))
    try:
        bare, follow = bench_follow(work, args.repeats)
        print(f"(a) python hello.py (bare)                 median {bare * 1000:8.1f} ms")
        print(f"(b) grid run --follow hello.py (cached)    median {follow * 1000:8.1f} ms")
        print(
            f"    gridrun adds                                  {(follow - bare) * 1000:8.1f} ms"
            "   (target < 500 ms)"
        )
        if not args.skip_cold:
            ours, pip_time, cached = bench_builds(work)
            print(
                f"(c) cold build {' '.join(HEAVY)}: gridrun (uv) {ours:6.1f} s, "
                f"venv + pip {pip_time:6.1f} s, ratio {ours / pip_time:.2f}   (target <= 0.33)"
            )
            print(
                f"(d) cached rebuild of (c)                  median {cached * 1000:8.3f} ms"
                "   (target < 50 ms)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
