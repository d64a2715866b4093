"""``--framework`` on the docker backend chooses the base image, through a real build.

No registry is reachable, so the offline test base is tagged as the framework's image
for the test: the build then really starts FROM ``pytorch/pytorch:latest``.
"""

from __future__ import annotations

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
