"""Docker backend timings next to the same steps by hand with ``docker build``.

Needs an engine (``DOCKER_HOST``) holding the base image (``.ci/docker-engine.sh``
makes ``gridrun-test-base:bookworm`` offline). Prints, for a project that needs
``six``: the cold build, a cached re-run from ``grid run`` to the first ``[stdout]``
line, and a code-only rebuild, each through gridrun and by hand (``docker build`` of
the Dockerfile gridrun generates, then ``docker run``).

    DOCKER_HOST=unix:///tmp/gridrun-ci-docker/docker.sock python benchmarks/bench_docker.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BASE = os.environ.get("GRIDRUN_BENCH_BASE", "gridrun-test-base:bookworm")


def prune() -> None:
    """Remove gridrun's images and the build cache: the next build is cold."""
    ids = subprocess.run(
        ["docker", "images", "-q", "--filter", "label=gridrun=1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rmi", "-f", *set(ids)], capture_output=True)
    subprocess.run(["docker", "image", "prune", "-f"], capture_output=True)
    subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True)


def grid_run(project: Path, env: dict[str, str]) -> tuple[float, float]:
    """(seconds to the first [stdout] line, seconds to the end) of grid run --follow."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridrun",
            "run",
            "--backend",
            "docker",
            "--base_image",
            BASE,
            "--cpus",
            "1",
            "--follow",
            "app.py",
        ],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    first = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if first is None and "[stdout]" in line:
            first = time.perf_counter() - start
    if proc.wait() != 0:
        raise SystemExit("grid run failed")
    return first or float("nan"), time.perf_counter() - start


def by_hand(context: Path, dockerfile: str, tag: str) -> tuple[float, float]:
    """(docker build seconds, docker build + docker run to first output seconds)."""
    start = time.perf_counter()
    build = subprocess.run(
        ["docker", "build", "-q", "-f", str(context / dockerfile), "-t", tag, str(context)],
        capture_output=True,
        text=True,
        env=dict(os.environ, DOCKER_BUILDKIT="0"),
    )
    if build.returncode != 0:
        raise SystemExit(f"docker build failed: {build.stderr.strip()}")
    built = time.perf_counter() - start
    subprocess.run(
        ["docker", "run", "--rm", tag, "python", "app.py"], check=True, capture_output=True
    )
    return built, time.perf_counter() - start


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gridrun-bench-docker-"))
    project = work / "project"
    project.mkdir()
    (project / "app.py").write_text("import six, sys\nprint('hello', sys.argv)\n")
    (project / "requirements.txt").write_text("six\n")
    env = dict(os.environ, GRID_HOME=str(work / "home"))
    try:
        prune()
        cold = grid_run(project, env)
        cached = grid_run(project, env)
        (project / "app.py").write_text(
            f"# {uuid.uuid4().hex}\n" + (project / "app.py").read_text()
        )
        code = grid_run(project, env)

        # By hand: the same Dockerfile and context, built with the docker CLI.
        from gridrun.agent.builder import build_request
        from gridrun.backends.docker.image import container_pip, prepare_context
        from gridrun.envs.pipconf import load_pip_config
        from gridrun.home import GridHome
        from gridrun.store.db import Store

        home = GridHome(work / "home")
        run = Store(home.db_path).list_runs()[0]
        req = build_request(home, run)
        context = work / "context"
        context.mkdir()
        plan = prepare_context(req, container_pip(load_pip_config()), context)
        tag = "gridrun-bench-by-hand:latest"
        prune()
        hand_cold = by_hand(context, plan.dockerfile, tag)
        hand_cached = by_hand(context, plan.dockerfile, tag)
        app = context / "project" / "app.py"
        app.write_text(f"# {uuid.uuid4().hex}\n" + app.read_text())
        hand_code = by_hand(context, plan.dockerfile, tag)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
        print(f"Dockerfile: {plan.dockerfile} in {plan.context}")
        print(f"{'step':34} {'gridrun':>24} {'by hand (build / +run)':>26}")
        rows = [
            ("cold build + run", cold, hand_cold),
            ("cached re-run", cached, hand_cached),
            ("code-only rebuild + run", code, hand_code),
        ]
        for label, (first, total), (b, br) in rows:
            print(
                f"{label:34} first [stdout] {first:5.2f}s, end {total:5.2f}s   "
                f"{b:6.2f}s / {br:6.2f}s"
            )
        subprocess.run(
            [sys.executable, "-m", "gridrun", "agent", "stop"], env=env, capture_output=True
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
