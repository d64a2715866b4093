"""``--framework`` on the docker backend chooses the base image, through a real build.

No registry is reachable, so the offline test base is tagged as the framework's image
for the test: the build then really starts FROM ``pytorch/pytorch:latest``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BASE = "gridrun-test-base:bookworm"


@pytest.fixture
def torch_image():
    import docker

    client = docker.from_env()
    try:
        base = client.images.get(BASE)
        existing = client.images.list(name="pytorch/pytorch:latest")
        # A tag left by an interrupted run of this test points at the test base itself
        # and may be reused; a real pytorch image must never be replaced.
        if existing and existing[0].id != base.id:
            pytest.fail("pytorch/pytorch:latest exists in the test engine; it must not be replaced")
        base.tag("pytorch/pytorch", "latest")
        yield "pytorch/pytorch:latest"
    finally:
        try:
            client.images.remove("pytorch/pytorch:latest", noprune=True)
        except docker.errors.ImageNotFound:
            pass
        client.close()


def test_framework_chooses_the_base_image(grid, tmp_path: Path, torch_image: str) -> None:
    project = tmp_path / "fw"
    project.mkdir()
    (project / "hello.py").write_text(f"# {uuid.uuid4().hex}\nprint('hello from torch')\n")
    proc = grid(
        "run",
        "--backend",
        "docker",
        "--framework",
        "torch",
        "--cpus",
        "1",
        "--name",
        "fw-torch",
        "--follow",
        "hello.py",
        cwd=project,
        timeout=600,
    )
    assert f"NOTE --framework torch: base image {torch_image}." in proc.stderr
    assert "hello from torch" in proc.stdout
    build = grid("logs", "--show-build-logs", "fw-torch-exp0").stdout
    assert f"base {torch_image}" in build, build


# --------------------------------------------------------------------------- Julia
JULIA = "julia:1.11"
FAKE_JULIA_IMAGE = f"""FROM {BASE}
RUN rm -f /usr/bin/python3* /usr/local/bin/python* \\
 && ! command -v python3 && ! command -v python \\
 && printf '%s\\n' '#!/bin/bash' 'echo "fake julia argv: $*"' 'script="$1"; shift' \\
    'exec bash "$script" "$@"' > /usr/local/bin/julia \\
 && chmod 755 /usr/local/bin/julia
LABEL gridrun.test=fake-julia
"""


@pytest.fixture
def julia_image():
    """``julia:1.11`` for the test: the offline base with Python removed and a stand-in
    ``julia`` (prints its arguments, runs the .jl file's lines as bash).

    Julia's image cannot be pulled here (no registry) and Julia cannot be installed, so
    the interpreter is the one boundary faked; the build FROM ``julia:1.11``, the
    Dockerfile without a Python stage and the container run are real.
    """
    import io

    import docker

    client = docker.from_env()
    try:
        existing = client.images.list(name=JULIA)
        if existing and (existing[0].labels or {}).get("gridrun.test") != "fake-julia":
            pytest.fail(f"{JULIA} exists in the test engine; it must not be replaced")
        client.images.build(fileobj=io.BytesIO(FAKE_JULIA_IMAGE.encode()), tag=JULIA, rm=True)
        yield JULIA
    finally:
        try:
            client.images.remove(JULIA, force=True)
        except docker.errors.ImageNotFound:
            pass
        client.close()


def test_framework_julia_runs_a_sweep_in_an_image_without_python(
    grid, tmp_path: Path, julia_image: str
) -> None:
    project = tmp_path / "gridrun-test-julia"
    project.mkdir()
    # Run as bash by the stand-in; a real Julia script would println(ARGS).
    (project / "train.jl").write_text(f'# {uuid.uuid4().hex}\necho "hello from julia: $*"\n')
    proc = grid(
        "run",
        "--backend",
        "docker",
        "--framework",
        "julia",
        "--cpus",
        "1",
        "--name",
        "fw-julia",
        "--follow",
        "train.jl",
        "--n",
        "[1, 2]",
        cwd=project,
        timeout=600,
    )
    assert f"NOTE --framework julia: base image {julia_image}." in proc.stderr
    for i in (1, 2):
        logs = grid("logs", f"fw-julia-exp{i - 1}").stdout
        assert f"fake julia argv: train.jl --n {i}" in logs, logs
        assert f"hello from julia: --n {i}" in logs, logs
    build = grid("logs", "--show-build-logs", "fw-julia-exp0").stdout
    assert f"base {julia_image}" in build, build
    assert "venv" not in build and "pip install" not in build, build


def test_a_julia_script_on_an_image_without_julia_fails_its_build_in_one_line(
    grid, tmp_path: Path
) -> None:
    project = tmp_path / "gridrun-test-nojulia"
    project.mkdir()
    (project / "train.jl").write_text(f'# {uuid.uuid4().hex}\necho "never runs"\n')
    proc = grid(
        "run",
        "--backend",
        "docker",
        "--base_image",
        BASE,
        "--name",
        "no-julia",
        "--follow",
        "train.jl",
        cwd=project,
        timeout=600,
        check=False,
    )
    assert proc.returncode != 0
    data = grid.json("status", "no-julia")
    text = json.dumps(data)
    assert "this image has no julia on PATH" in text, data
    assert "never runs" not in grid("logs", "no-julia-exp0").stdout
