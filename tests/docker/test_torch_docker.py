"""The PyTorch build follows the experiment's GPUs in a Docker image, as on local.

A build container cannot see host folders (``file://``), so the stand-in indexes are
served over HTTP on the engine's bridge gateway: a "PyPI" (``simple/``) holding
``torch 2.0`` and a newer ``3.0`` (as PyPI holds the newer CUDA build) and stand-in
seed wheels, and
a PyTorch index (``pytorch/cpu``, ``pytorch/cu126``) holding ``torch 2.0+cpu`` and
``2.0+cu126``. The inferred requirements are resolved on this machine with the
build's index (the local backend's mechanism), and the image installs the exact pin,
``torch==2.0+cpu``, which only the PyTorch index has: its pip gets it as an extra index.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "envs"))
from envhelpers import make_wheel

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BASE = "gridrun-test-base:bookworm"
TRAIN = "import torch\nprint('torch build', torch.VERSION)\n"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _page(folder: Path, *wheels: Path) -> None:
    """A PEP 503 page in ``folder`` linking wheels that sit beside it (served by HTTP)."""
    folder.mkdir(parents=True, exist_ok=True)
    links = ""
    for wheel in wheels:
        (folder / wheel.name).write_bytes(wheel.read_bytes())
        links += f'<a href="{urllib.parse.quote(wheel.name)}">{wheel.name}</a>\n'
    (folder / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")


@pytest.fixture
def served(api: Any, tmp_path: Path, grid) -> Iterator[str]:
    """The PyTorch index's base URL; ``grid`` installs from the served "PyPI"."""
    yield from _serve(api, tmp_path, grid)


@pytest.fixture
def served_pip(api: Any, tmp_path: Path, grid) -> Iterator[tuple[str, Any]]:
    """(the PyTorch index's base URL, a pip configuration of the served "PyPI")."""
    from gridrun.envs.pipconf import PipConfig

    for base in _serve(api, tmp_path, grid):
        gateway = urllib.parse.urlparse(base).hostname or ""
        simple = base.removesuffix("/pytorch") + "/simple"
        yield base, PipConfig(index_url=simple, trusted_hosts=(gateway,))


def _serve(api: Any, tmp_path: Path, grid) -> Iterator[str]:
    root = tmp_path / "served"
    made = tmp_path / "made"
    for name in ("pip", "setuptools", "wheel"):  # what seeding a venv here asks for
        _page(root / "simple" / name, make_wheel(made / name, name, "99.0"))
    pypi = [make_wheel(made / "pypi", "torch", v) for v in ("2.0", "3.0")]
    _page(root / "simple" / "torch", *pypi)
    for variant in ("cpu", "cu126"):
        wheel = make_wheel(made / variant, "torch", f"2.0+{variant}")
        _page(root / "pytorch" / variant / "torch", wheel)
    config = api.inspect_network("bridge")["IPAM"]["Config"][0]
    # An engine (20.10) that has not started a container yet names no Gateway: the
    # bridge takes the subnet's first address.
    gateway = config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))
    server = ThreadingHTTPServer((gateway, 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://{gateway}:{server.server_address[1]}"
    for name in list(grid.env):
        if name.startswith("PIP_") or name == "UV_INDEX_STRATEGY":
            del grid.env[name]
    grid.env.update(
        PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL=f"{url}/simple", PIP_TRUSTED_HOST=gateway
    )
    try:
        yield f"{url}/pytorch"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_cpu_image_gets_the_cpu_build(grid, served: str, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "train.py").write_text(f"# {uuid.uuid4().hex}\n{TRAIN}")
    (grid.home / "config.yaml").write_text(
        (grid.home / "config.yaml").read_text() + f"torch_index_url: {served}\n"
    )
    out = grid(
        "run", "--backend", "docker", "--base_image", BASE, "--name", "dkt", "train.py",
        cwd=project, timeout=600,
    )  # fmt: skip
    assert "torch:                   CPU build (no GPU requested)" in out.stdout
    data = grid.wait("dkt")
    logs = grid("logs", "dkt-exp0", "--show-build-logs").stdout
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], logs
    assert "torch build 2.0+cpu" in logs
    assert f"torch: CPU build (no GPU requested), from {served}/cpu" in logs
    assert "torch==2.0+cpu" in logs  # the pin resolved here, installed in the image
    assert "torch: CPU build (no GPU requested)" in grid("status", "dkt").stdout


def test_a_gpu_image_gets_the_cuda_build_under_another_tag(
    api: Any, served_pip: tuple[str, Any], make_project, make_request, home, build_log
) -> None:
    from gridrun.backends.docker.image import build_image, container_pip, image_tag
    from gridrun.envs.torchbuild import choose

    served, pip = served_pip
    root = make_project({"train.py": f"# {uuid.uuid4().hex}\n{TRAIN}"})
    wanted = {"requirements": ["torch"], "best_effort": True, "checks": ["torch"]}
    cpu = make_request(root, **wanted, torch_build=choose(0, served, None))
    gpu = make_request(root, **wanted, torch_build=choose(1, served, "12.6"))
    # Only the build differs: the image key covers it.
    assert image_tag(cpu, container_pip(pip, cpu.torch_build)) != image_tag(
        gpu, container_pip(pip, gpu.torch_build)
    )
    log = build_log()
    tag = build_image(api, gpu, log, home.root, pip)
    assert f"torch: CUDA 12.6 build (--gpus 1, the driver runs CUDA 12.6), from {served}/cu126" in (
        log.text()
    )
    container = api.create_container(tag, ["python", "-c", "import torch; print(torch.VERSION)"])
    try:
        api.start(container)
        assert api.wait(container, timeout=120)["StatusCode"] == 0
        assert api.logs(container).decode().strip() == "2.0+cu126"
    finally:
        api.remove_container(container, force=True)


def test_an_index_the_build_cannot_reach_leaves_pypis_build_with_one_warning(
    api: Any, served_pip: tuple[str, Any], make_project, make_request, home, build_log
) -> None:
    from gridrun.backends.docker.image import build_image
    from gridrun.envs.torchbuild import choose

    served, pip = served_pip
    root = make_project({"train.py": f"# {uuid.uuid4().hex}\n{TRAIN}"})
    gone = re.sub(r"/pytorch$", "/nowhere", served)
    req = make_request(
        root, ["torch"], best_effort=True, checks=["torch"], torch_build=choose(0, gone, None)
    )
    log = build_log()
    tag = build_image(api, req, log, home.root, pip)
    warnings = [line for line in log.lines if "cannot be reached" in line]
    assert len(warnings) == 1, log.text()
    assert "installing PyPI's default build" in warnings[0]
    assert "torch==3.0" in log.text()
    again = build_log()
    assert build_image(api, req, again, home.root, pip) == tag
    assert [line for line in again.lines if "cannot be reached" in line] == warnings


def test_declared_requirements_take_the_builds_local_version_at_equal_versions(
    api: Any, served_pip: tuple[str, Any], make_project, make_request, home, build_log
) -> None:
    """``torch<3`` declared: PyPI's 2.0 and the index's 2.0+cpu both fit, and the local
    version is the newer (how PyTorch's own pip instructions work)."""
    from gridrun.backends.docker.image import build_image
    from gridrun.envs.torchbuild import choose

    served, pip = served_pip
    root = make_project({"train.py": f"# {uuid.uuid4().hex}\n{TRAIN}"})
    req = make_request(root, ["torch<3"], torch_build=choose(0, served, None))
    tag = build_image(api, req, build_log(), home.root, pip)
    container = api.create_container(tag, ["python", "-c", "import torch; print(torch.VERSION)"])
    try:
        api.start(container)
        assert api.wait(container, timeout=120)["StatusCode"] == 0
        assert api.logs(container).decode().strip() == "2.0+cpu"
    finally:
        api.remove_container(container, force=True)
