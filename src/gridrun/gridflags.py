"""Grid's machine flags, read for machines gridrun does not provision.

Grid chose a cloud machine per experiment (``--instance_type``, ``--use_spot``,
``--disk_size``) and a prebuilt image (``--framework``). Tutorial READMEs still use
them, so gridrun accepts each with the meaning it can honour here, and says that
meaning in a one-line note instead of ignoring the flag:

- ``--instance_type NAME`` sizes each experiment by that machine's CPUs, memory and
  GPUs (:mod:`gridrun.instances`); explicit ``--cpus``/``--gpus``/``--memory`` win;
- ``--use_spot`` means preemptible with auto-resume (there are no spot machines here);
- ``--framework`` picks the Docker base image; on other backends the script's imports
  decide what is installed (a Julia script runs with the ``julia`` on PATH), so it is
  only noted. ``julia`` goes with ``.jl`` scripts and the others with Python ones: a
  mismatch is refused, since the image would lack the script's interpreter. A ``.jl``
  script on Docker gets Julia's image even without the flag;
- ``--disk_size`` is noted: experiments use this machine's disk.

The same keys in a ``--config`` YAML (``compute.train.instance_type`` ...) go through
the same function, so the CLI and the YAML cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gridrun.errors import UsageError
from gridrun.instances import lookup
from gridrun.specs import needs_python_env

#: Julia's official image, pinned to a minor version so that a rebuild months later
#: runs the same Julia (``julia:latest`` would move under a cached run). It has no
#: Python, so a Julia script's generated Dockerfile has no Python stage; CUDA.jl brings
#: its own CUDA libraries, so the same image serves GPUs.
JULIA_IMAGE = "julia:1.11"

#: ``--framework`` -> (CPU image, GPU image). The Python ones have a Python 3 on PATH,
#: which the generated Dockerfile needs for its virtualenv; Lightning itself is
#: installed from the script's imports (``import lightning``), on top of PyTorch's image.
FRAMEWORK_IMAGES: dict[str, tuple[str, str]] = {
    "torch": ("pytorch/pytorch:latest", "pytorch/pytorch:latest"),
    "lightning": ("pytorch/pytorch:latest", "pytorch/pytorch:latest"),
    "tensorflow": ("tensorflow/tensorflow:latest", "tensorflow/tensorflow:latest-gpu"),
    "julia": (JULIA_IMAGE, JULIA_IMAGE),
}
FRAMEWORKS = tuple(FRAMEWORK_IMAGES)
#: Grid's ``--framework julia:1.6.1``: a version of Julia, which is that tag of its image.
JULIA_VERSION = re.compile(r"^julia:\d+\.\d+(\.\d+)?$")


@dataclass
class MachineAsk:
    """The resources and image one experiment asks for, after Grid's flags are read."""

    cpus: float | None
    gpus: int | None
    memory: str | int | None
    base_image: str | None
    auto_resume: bool
    notes: list[str]


def read_grid_flags(
    *,
    instance_type: str | None,
    use_spot: bool,
    framework: str | None,
    disk_size: int | None,
    cpus: float | None,
    gpus: int | None,
    memory: str | int | None,
    base_image: str | None,
    dockerfile: str | None,
    auto_resume: bool,
    container_backend: bool,
    backend: str,
    script: str = "",
) -> MachineAsk:
    """Fold Grid's flags into resources and an image, with a note for each flag used."""
    ask = MachineAsk(cpus, gpus, memory, base_image, auto_resume, [])
    if instance_type:
        _instance(ask, instance_type)
    if use_spot:
        ask.auto_resume = True
        ask.notes.append(
            "--use_spot: no spot machines here; experiments are preemptible and resume "
            "after a preemption (as --auto_resume)."
        )
    if framework:
        _framework(ask, framework, dockerfile, container_backend, backend, script)
    elif _julia_default(script, container_backend, ask.base_image or dockerfile):
        # Without the flag a .jl script still needs Julia's image, not python:X-slim.
        ask.base_image = JULIA_IMAGE
        ask.notes.append(f"{script} is a Julia script: base image {JULIA_IMAGE}.")
    if disk_size is not None:
        if isinstance(disk_size, bool) or not isinstance(disk_size, int) or disk_size <= 0:
            raise UsageError(f"--disk_size must be a positive number of GB, got {disk_size!r}.")
        ask.notes.append(
            f"--disk_size {disk_size}: experiments use this machine's disk; no volume is "
            "provisioned."
        )
    return ask


def _julia_default(script: str, container: bool, image_given: str | None) -> bool:
    return bool(script) and not needs_python_env(script) and container and not image_given


def _instance(ask: MachineAsk, name: str) -> None:
    itype = lookup(name)
    given = []
    if ask.cpus is None:
        ask.cpus = float(itype.cpus)
    else:
        given.append("--cpus")
    if ask.gpus is None:
        ask.gpus = itype.gpus
    else:
        given.append("--gpus")
    if ask.memory is None:
        ask.memory = itype.memory
    else:
        given.append("--memory")
    wins = f"; {', '.join(given)} given, and kept" if given else ""
    ask.notes.append(
        f"--instance_type {itype.name}: each experiment gets {itype.describe()} of this "
        f"machine{wins}."
    )


def _framework(
    ask: MachineAsk,
    framework: str,
    dockerfile: str | None,
    container: bool,
    backend: str,
    script: str,
) -> None:
    pinned = None
    if framework == "torchelastic":
        raise UsageError(
            "--framework torchelastic (Grid's elastic multi-node PyTorch) is not available: "
            "each experiment is one process tree; pass --framework torch and start "
            "torchrun in the script."
        )
    if JULIA_VERSION.match(framework):  # Grid's julia:1.6.1 ...: that tag of Julia's image
        framework, pinned = "julia", framework
    if framework not in FRAMEWORKS:
        raise UsageError(
            f"Invalid value for '--framework': '{framework}' is not a framework.",
            hint=f"Valid frameworks: {', '.join(FRAMEWORKS)}, or julia:VERSION (julia:1.6.1).",
        )
    julia_script = bool(script) and not needs_python_env(script)
    # Each framework's image has one interpreter: a mismatch could only fail inside it.
    if script and julia_script and framework != "julia":
        raise UsageError(
            f"--framework {framework} runs Python scripts, and {script} is a Julia script.",
            hint="Pass --framework julia, or leave --framework out.",
        )
    if script and not julia_script and framework == "julia":
        raise UsageError(
            f"--framework julia runs Julia (.jl) scripts, and {script} is not one.",
            hint="Leave --framework out, or pass --framework lightning, torch or tensorflow.",
        )
    if not container:
        if framework == "julia":
            where = "each node's PATH" if backend == "ray" else "PATH"
            ask.notes.append(
                f"--framework julia: the {backend} backend runs the script with the julia "
                f"on {where}; the framework only chooses the base image on Docker."
            )
        else:
            ask.notes.append(
                f"--framework {framework}: the {backend} backend installs what the script "
                "imports; the framework only chooses the base image on Docker."
            )
        return
    if ask.base_image or dockerfile:
        chosen = "--base_image" if ask.base_image else "--dockerfile"
        ask.notes.append(f"--framework {framework}: {chosen} is given and chooses the image.")
        return
    cpu_image, gpu_image = FRAMEWORK_IMAGES[framework]
    ask.base_image = pinned or (gpu_image if ask.gpus else cpu_image)
    ask.notes.append(f"--framework {pinned or framework}: base image {ask.base_image}.")


__all__ = ["FRAMEWORKS", "FRAMEWORK_IMAGES", "JULIA_IMAGE", "MachineAsk", "read_grid_flags"]
