"""The PyTorch build follows the experiment's GPUs, through the real CLI and real uv.

The PyTorch index cannot be reached from here, so two stand in for it: local PEP 503
indexes ``cpu/`` and ``cu126/`` holding tiny wheels named ``torch`` with the local
versions ``2.0+cpu`` and ``2.0+cu126``, while the "PyPI" the pip configuration names
offers ``torch 3.0`` (find-links), as PyPI holds the newer CUDA build. Without gridrun's choice the
resolver takes 3.0; with it, a CPU run gets ``+cpu`` and a ``--gpus 1`` run
(a GPU declared under ``capacity:``, CUDA 12.6 from config: no driver here) gets
``+cu126``.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import pytest
from envhelpers import make_wheel, simple_index

pytestmark = pytest.mark.slow

TRAIN = "import torch\nprint('torch build', torch.VERSION)\n"


@pytest.fixture
def torch_indexes(tmp_path: Path, grid) -> Path:
    """The run's project; the grid fixture's environment points at the local indexes."""
    wheels = tmp_path / "wheels"
    base = tmp_path / "pytorch"
    for variant in ("cpu", "cu126"):
        simple_index(base / variant, make_wheel(wheels / variant, "torch", f"2.0+{variant}"))
    # PyPI's newer build, offered beside PyPI (whose own torch is older than 3.0 and
    # never downloaded: 3.0 wins wherever the PyTorch index is not used).
    make_wheel(wheels / "pypi", "torch", "3.0")
    for name in list(grid.env):
        if name.startswith("PIP_") or name == "UV_INDEX_STRATEGY":
            del grid.env[name]
    grid.env.update(PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS=str(wheels / "pypi"))
    config = grid.home / "config.yaml"
    config.write_text(
        config.read_text()
        + f"torch_index_url: {base.resolve().as_uri()}\n"
        + "capacity:\n  gpus: 1\n  cuda: '12.6'\n  cpus: 2\n"
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(TRAIN)
    return project


def _run(grid, project: Path, *options: str) -> tuple[str, str]:
    """The submission's output and the experiment's log."""
    out = grid("run", *options, "train.py", cwd=project)
    name = re.search(r"grid_name:\s+(\S+)", out.stdout)
    assert name, out.stdout
    data = grid.wait(name.group(1))
    logs = grid("logs", name.group(1)).stdout
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], logs
    return out.stdout, grid("logs", name.group(1)).stdout + grid("status", name.group(1)).stdout


def test_a_cpu_run_gets_the_cpu_build_and_a_gpu_run_the_cuda_one(grid, torch_indexes) -> None:
    summary, log = _run(grid, torch_indexes)
    assert "torch:                   CPU build (no GPU requested)" in summary
    assert "torch build 2.0+cpu" in log
    assert "torch: CPU build (no GPU requested)" in log  # grid status RUN says it too

    summary, log = _run(grid, torch_indexes, "--gpus", "1")
    assert "torch:                   CUDA 12.6 build (--gpus 1, the driver runs CUDA 12.6)" in (
        summary
    )
    assert "torch build 2.0+cu126" in log


def test_an_unreachable_index_leaves_the_default_build_until_it_answers(
    grid,
    torch_indexes: Path,
    tmp_path: Path,
) -> None:
    # The pip index is a mirror that serves PyPI's JSON API beside /simple: the warning
    # reads the default build's download from it (a 2.5 GB torch wheel that pins a
    # 1.25 GB nvidia wheel), never from PyPI itself.
    mirror = tmp_path / "mirror"
    # Its /simple holds what seeding a virtualenv asks for (stand-ins: nothing here
    # imports them), so that no build reaches PyPI.
    seeds = [make_wheel(tmp_path / "seeds", n, "99.0") for n in ("pip", "setuptools", "wheel")]
    simple_index(mirror / "simple", *seeds)
    _release(
        mirror / "pypi",
        "torch",
        "3.0",
        2_500_000_000,
        ["nvidia-big==1.0; platform_system == 'Linux'", "numpy"],
    )
    _release(mirror / "pypi", "nvidia-big", "1.0", 1_250_000_000, [])
    grid.env["PIP_INDEX_URL"] = (mirror / "simple").resolve().as_uri()
    pytorch = torch_indexes.parent / "pytorch"
    pytorch.rename(tmp_path / "pytorch-away")  # the index does not answer
    summary, log = _run(grid, torch_indexes)
    assert "CPU build (no GPU requested)" in summary  # chosen; the build falls back
    assert "torch build 3.0" in log
    warnings = [line for line in log.splitlines() if "cannot be reached" in line]
    assert len(warnings) == 1, log
    assert "installing PyPI's default build, about 3.8 GB to download" in warnings[0]

    # The same code once the index answers again: the chosen build, not the stand-in
    # environment that holds PyPI's.
    (tmp_path / "pytorch-away").rename(pytorch)
    summary, log = _run(grid, torch_indexes)
    assert "torch build 2.0+cpu" in log
    assert "cannot be reached" not in log


def _release(api: Path, name: str, version: str, size: int, requires: list[str]) -> None:
    """PyPI's JSON API for one release of ``name``, as files (``<api>/<name>/json``)."""
    import json

    machine = platform.machine()
    wheel = f"{name.replace('-', '_')}-{version}-py3-none-manylinux_2_28_{machine}.whl"
    data = {
        "info": {"name": name, "version": version, "requires_dist": requires},
        "urls": [{"filename": wheel, "size": size}],
    }
    (api / name).mkdir(parents=True)
    (api / name / "json").write_text(json.dumps(data))


def test_the_default_builds_download_is_read_from_the_index_or_not_guessed(
    tmp_path: Path,
) -> None:
    from gridrun.envs.pipconf import PipConfig
    from gridrun.envs.torchbuild import default_build_download

    api = tmp_path / "pypi"
    requires = [
        "cuda-toolkit[cublas]==13.0; platform_system == 'Linux'",
        "nvidia-mac==1; platform_system == 'Darwin'",  # not here
        "filelock",
    ]
    _release(api, "torch", "9.0", 500_000_000, requires)
    _release(api, "nvidia-mac", "1", 9_000_000_000, [])
    # A meta package whose extras pin the real wheels.
    toolkit = ["nvidia-cublas==13.1; extra == 'cublas'", "nvidia-cufft==13.1; extra == 'cufft'"]
    _release(api, "cuda-toolkit", "13.0", 3_000, toolkit)
    _release(api, "nvidia-cublas", "13.1", 700_000_000, [])
    _release(api, "nvidia-cufft", "13.1", 9_000_000_000, [])  # an extra not asked for
    (tmp_path / "simple").mkdir()
    mirror = PipConfig(index_url=(tmp_path / "simple").as_uri())
    assert default_build_download("3.11", mirror) == "about 1.2 GB"
    (api / "nvidia-cublas" / "json").unlink()  # metadata missing: no guess
    assert default_build_download("3.11", mirror) == "several GB"
    # An index with no JSON API beside it.
    other = PipConfig(index_url=(tmp_path / "pypi").as_uri())
    assert default_build_download("3.11", other) == "several GB"


# ---------------------------------------------------------------- the choice alone
def test_the_build_follows_the_gpus_and_the_drivers_cuda() -> None:
    from gridrun.envs.torchbuild import choose, wants_torch

    base = "https://mirror.example/whl"
    cpu = choose(0, base, None)
    assert (cpu.variant, cpu.index_url) == ("cpu", f"{base}/cpu")
    assert cpu.describe() == "torch: CPU build (no GPU requested)"
    # A driver runs any build up to its own CUDA version: 12.7 takes cu126.
    gpu = choose(2, base, "12.7")
    assert (gpu.variant, gpu.index_url) == ("cu126", f"{base}/cu126")
    assert gpu.describe() == "torch: CUDA 12.6 build (--gpus 2, the driver runs CUDA 12.7)"
    assert choose(1, base, "13.1").variant == "cu130"
    for cuda in (None, "10.2"):  # no driver, or older than any build: PyPI's build
        assert choose(1, base, cuda).variant == ""
    assert wants_torch(["torchvision>=0.20"], [])
    assert wants_torch(["lightning"], ["torch.nn"])
    assert not wants_torch(["numpy", "torchmetrics"], ["numpy"])


def test_requirements_that_pick_a_build_themselves_are_left_alone() -> None:
    from gridrun.envs.torchbuild import chosen_by_user

    assert chosen_by_user(["torch==2.1.0+cu121"])
    assert chosen_by_user(["--extra-index-url https://download.pytorch.org/whl/cu121", "torch"])
    assert not chosen_by_user(["torch>=2.6", "torchvision", "--index-url https://pypi.org/simple"])


def test_a_bad_cuda_version_in_config_is_one_line(grid, tmp_path: Path) -> None:
    (grid.home / "config.yaml").write_text("capacity:\n  cuda: twelve\n")
    (tmp_path / "t.py").write_text("print(1)\n")
    proc = grid("run", "t.py", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "capacity.cuda must be a CUDA version such as 12.6, not twelve" in proc.stderr
    assert "Traceback" not in proc.stderr
