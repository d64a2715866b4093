"""The instance-type table and what Grid's machine flags mean here (pure functions)."""

from __future__ import annotations

import pytest

from gridrun.errors import UsageError
from gridrun.gridflags import JULIA_IMAGE, read_grid_flags
from gridrun.instances import INSTANCE_TYPES, lookup

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("name", "cpus", "gib", "gpus", "model"),
    [
        ("t2.medium", 2, 4, 0, None),
        ("t2.micro", 1, 1, 0, None),
        ("m5.large", 2, 8, 0, None),
        ("m5.24xlarge", 96, 384, 0, None),
        ("c5.9xlarge", 36, 72, 0, None),
        ("g4dn.xlarge", 4, 16, 1, "T4"),
        ("g4dn.12xlarge", 48, 192, 4, "T4"),
        ("p2.xlarge", 4, 61, 1, "K80"),
        ("p2.16xlarge", 64, 732, 16, "K80"),
        ("p3.2xlarge", 8, 61, 1, "V100"),
        ("p3.8xlarge", 32, 244, 4, "V100"),
        ("p3.16xlarge", 64, 488, 8, "V100"),
        ("p4d.24xlarge", 96, 1152, 8, "A100"),
        ("n1-standard-4", 4, 15, 0, None),
        ("a2-highgpu-1g", 12, 85, 1, "A100"),
    ],
)
def test_table_matches_the_providers(name, cpus, gib, gpus, model) -> None:
    itype = lookup(name)
    assert (itype.cpus, itype.memory_gib, itype.gpus, itype.gpu_model) == (cpus, gib, gpus, model)
    assert itype.memory == int(gib * 2**30)


def test_grid_docs_families_are_all_there() -> None:
    for family in ("t2.", "m5.", "c5.", "g4dn.", "p2.", "p3.", "p4d."):
        assert any(n.startswith(family) for n in INSTANCE_TYPES), family


def test_lookup_is_case_insensitive_and_suggests() -> None:
    assert lookup(" P3.2XLARGE ").name == "p3.2xlarge"
    with pytest.raises(UsageError, match=r"Did you mean 'g4dn\.xlarge'"):
        lookup("g4dn.xlarg")
    with pytest.raises(UsageError, match=r"Known families: .*p4d"):
        lookup("zz9")


def test_describe() -> None:
    assert lookup("p3.2xlarge").describe() == "8 CPUs, 61 GiB, 1 V100 GPU"
    assert lookup("t2.nano").describe() == "1 CPU, 0.5 GiB"


def _read(**kw):
    args = dict(
        instance_type=None,
        use_spot=False,
        framework=None,
        disk_size=None,
        cpus=None,
        gpus=None,
        memory=None,
        base_image=None,
        dockerfile=None,
        auto_resume=False,
        container_backend=False,
        backend="local",
    )
    args.update(kw)
    return read_grid_flags(**args)


def test_instance_type_fills_only_what_is_not_given() -> None:
    ask = _read(instance_type="p3.2xlarge", cpus=2.0)
    assert (ask.cpus, ask.gpus, ask.memory) == (2.0, 1, 61 * 2**30)
    assert ask.notes == [
        "--instance_type p3.2xlarge: each experiment gets 8 CPUs, 61 GiB, 1 V100 GPU of this "
        "machine; --cpus given, and kept."
    ]


def test_use_spot_means_auto_resume() -> None:
    ask = _read(use_spot=True)
    assert ask.auto_resume is True and "preemptible" in ask.notes[0]


@pytest.mark.parametrize(
    ("framework", "gpus", "image"),
    [
        ("torch", None, "pytorch/pytorch:latest"),
        ("lightning", 1, "pytorch/pytorch:latest"),
        ("tensorflow", None, "tensorflow/tensorflow:latest"),
        ("tensorflow", 1, "tensorflow/tensorflow:latest-gpu"),
    ],
)
def test_framework_chooses_the_docker_base_image(framework, gpus, image) -> None:
    ask = _read(framework=framework, gpus=gpus, container_backend=True, backend="docker")
    assert ask.base_image == image
    assert ask.notes == [f"--framework {framework}: base image {image}."]


def test_framework_leaves_a_given_image_alone() -> None:
    ask = _read(framework="torch", base_image="mine:1", container_backend=True)
    assert ask.base_image == "mine:1" and "--base_image is given" in ask.notes[0]
    ask = _read(framework="torch", dockerfile="Dockerfile", container_backend=True)
    assert ask.base_image is None and "--dockerfile is given" in ask.notes[0]


def test_framework_elsewhere_is_a_note() -> None:
    ask = _read(framework="torch")
    assert ask.base_image is None and "the local backend installs" in ask.notes[0]


def test_julia_framework_and_scripts() -> None:
    ask = _read(framework="julia", script="train.jl", container_backend=True, backend="docker")
    assert ask.base_image == JULIA_IMAGE == "julia:1.11"
    assert ask.notes == ["--framework julia: base image julia:1.11."]
    ask = _read(framework="julia", script="train.jl", gpus=1, container_backend=True)
    assert ask.base_image == JULIA_IMAGE  # CUDA.jl brings its own CUDA libraries
    ask = _read(script="train.jl", container_backend=True, backend="docker")
    assert ask.base_image == JULIA_IMAGE, "a .jl script gets Julia's image without the flag"
    assert ask.notes == ["train.jl is a Julia script: base image julia:1.11."]
    ask = _read(script="train.jl", base_image="mine:1", container_backend=True)
    assert ask.base_image == "mine:1" and ask.notes == []
    ask = _read(framework="julia", script="train.jl")
    assert ask.base_image is None
    assert ask.notes == [
        "--framework julia: the local backend runs the script with the julia on PATH; "
        "the framework only chooses the base image on Docker."
    ]
    with pytest.raises(UsageError, match="runs Julia"):
        _read(framework="julia", script="train.py")
    with pytest.raises(UsageError, match="--framework tensorflow runs Python scripts"):
        _read(framework="tensorflow", script="train.jl", container_backend=True)


def test_grids_julia_versions_are_that_tag_of_julias_image() -> None:
    ask = _read(framework="julia:1.6.1", script="train.jl", container_backend=True)
    assert ask.base_image == "julia:1.6.1"
    assert ask.notes == ["--framework julia:1.6.1: base image julia:1.6.1."]
    ask = _read(framework="julia:1.7", script="train.jl", container_backend=True, gpus=1)
    assert ask.base_image == "julia:1.7"
    with pytest.raises(UsageError, match="runs Julia"):
        _read(framework="julia:1.6.1", script="train.py")
    with pytest.raises(UsageError, match="is not a framework"):
        _read(framework="julia:latest", script="train.jl")


def test_refusals() -> None:
    with pytest.raises(UsageError, match="'jax' is not a framework"):
        _read(framework="jax")
    with pytest.raises(UsageError, match=r"torchelastic .* not available.*torchrun"):
        _read(framework="torchelastic", script="train.py")
    with pytest.raises(UsageError, match="--disk_size"):
        _read(disk_size=-5)
