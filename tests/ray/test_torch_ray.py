"""On Ray the PyTorch build is chosen for each node: the CPU build with no GPU, and with
``--gpus`` the CUDA build that node's driver runs.

The stand-in PyTorch index (``torch 0.0.7+cpu``, ``+cu126``) is local (``file://``):
the session's cluster runs on this machine, so its nodes read it as the local backend
does (tests/envs/test_torch_build.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "envs"))
from envhelpers import make_wheel, simple_index

pytestmark = pytest.mark.ray


def _torch_project(grid, tmp_path: Path, config: str = "") -> Path:  # type: ignore[no-untyped-def]
    base = tmp_path / "pytorch"
    for variant in ("cpu", "cu126"):
        wheel = make_wheel(tmp_path / "wheels" / variant, "torch", f"0.0.7+{variant}")
        simple_index(base / variant, wheel)
    path = grid.home / "config.yaml"
    path.write_text(path.read_text() + f"torch_index_url: {base.resolve().as_uri()}\n{config}")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "train.py").write_text("import torch\nprint('torch build', torch.VERSION)\n")
    # A version PyPI never had: were the PyTorch index not used, the build would fail
    # at once rather than download PyPI's CUDA torch.
    (project / "requirements.txt").write_text("torch==0.0.7\n")
    return project


def test_a_cpu_experiment_gets_the_cpu_build_on_its_node(ray_grid, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = _torch_project(ray_grid, tmp_path)
    out = ray_grid("run", "--backend", "ray", "--name", "rt", "train.py", cwd=project)
    assert "torch:                   CPU build (no GPU requested)" in out.stdout
    data = ray_grid.wait("rt", timeout=600)
    logs = ray_grid("logs", "rt-exp0").stdout
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], logs
    assert "torch build 0.0.7+cpu" in logs


def test_a_gpu_experiment_gets_the_cuda_build_on_a_gpu_node(  # type: ignore[no-untyped-def]
    ray_grid, ray_cluster, tmp_path: Path
) -> None:
    """A node that declares a GPU (none is there: Ray only counts it) and whose driver
    does not answer builds the CUDA version the head's capacity.cuda names."""
    project = _torch_project(ray_grid, tmp_path, "capacity:\n  cuda: '12.6'\n")
    node = ray_cluster.add_worker(cpus=1, gpus=1)
    try:
        out = ray_grid("run", "--backend", "ray", "--name", "rg", "--gpus", "1", "train.py",
                       cwd=project)  # fmt: skip
        assert "CUDA build (--gpus 1, the one each node's driver runs)" in out.stdout
        data = ray_grid.wait("rg", timeout=600)
        logs = ray_grid("logs", "rg-exp0").stdout
        assert [e["status"] for e in data["experiments"]] == ["succeeded"], logs
        assert "torch build 0.0.7+cu126" in logs
    finally:
        ray_cluster.remove_node(node)


def test_each_node_chooses_by_its_own_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gridrun.backends.ray.node import node_torch_build
    from gridrun.backends.ray.task import TaskSpec
    from gridrun.envs.torchbuild import choose, each_node

    def task(**kw: object) -> TaskSpec:
        fields: dict = {
            "python": "3.11", "requirements": (), "home_label": "h", "experiment": "e",
            "attempt": "a", "script": "t.py", "args": (), "env": {},
        }  # fmt: skip
        return TaskSpec(**fields, **kw)

    base = "https://mirror.example/whl"
    spec = task(env_key="0123abcd", gpus=1, cuda="12.6", torch_build=each_node(1, base).to_dict())
    assert each_node(1, base).describe() == (
        "torch: CUDA build (--gpus 1, the one each node's driver runs)"
    )
    # A node without a driver that answers: the head's capacity.cuda.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    key, build = node_torch_build(spec)
    assert (key, build and build.index_url) == ("0123abcd-cu126", f"{base}/cu126")
    # A node whose driver runs CUDA 12.8: its own build, under a key of its own.
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text(
        "#!/bin/sh\necho '| NVIDIA-SMI 570.1  Driver Version: 570.1  CUDA Version: 12.8 |'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{smi.parent}{os.pathsep}/usr/bin:/bin")
    key, build = node_torch_build(spec)
    assert (key, build and build.variant) == ("0123abcd-cu128", "cu128")
    # A CPU experiment keeps the head's choice and key.
    cpu = task(env_key="0123abcd", gpus=0, torch_build=choose(0, base, None).to_dict())
    assert node_torch_build(cpu)[0] == "0123abcd"
