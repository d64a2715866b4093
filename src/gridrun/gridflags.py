"""Grid's machine flags, read for machines gridrun does not provision.

Grid chose a cloud machine per experiment (``--instance_type``, ``--use_spot``,
``--disk_size``) and a prebuilt image (``--framework``). Tutorial READMEs still use
them, so gridrun accepts each with the meaning it can honour here, and says that
meaning in a one-line note instead of ignoring the flag:

- ``--instance_type NAME`` sizes each experiment by that machine's CPUs, memory and
  GPUs (:mod:`gridrun.instances`); explicit ``--cpus``/``--gpus``/``--memory`` win;
- ``--use_spot`` means preemptible with auto-resume (there are no spot machines here);
- ``--framework`` picks the Docker base image; on other backends the script's imports
  decide what is installed, so it is only noted;
- ``--disk_size`` is noted: experiments use this machine's disk.

The same keys in a ``--config`` YAML (``compute.train.instance_type`` ...) go through
the same function, so the CLI and the YAML cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridrun.errors import UnsupportedError, UsageError
from gridrun.instances import lookup

#: ``--framework`` -> (CPU image, GPU image). Each has a Python 3 on PATH, which the
#: generated Dockerfile needs for its virtualenv; Lightning itself is installed from the
#: script's imports (``import lightning``), on top of PyTorch's image.
FRAMEWORK_IMAGES: dict[str, tuple[str, str]] = {
    "torch": ("pytorch/pytorch:latest", "pytorch/pytorch:latest"),
    "lightning": ("pytorch/pytorch:latest", "pytorch/pytorch:latest"),
    "tensorflow": ("tensorflow/tensorflow:latest", "tensorflow/tensorflow:latest-gpu"),
}
FRAMEWORKS = (*FRAMEWORK_IMAGES, "julia")


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
        _framework(ask, framework, dockerfile, container_backend, backend)
    if disk_size is not None:
        if isinstance(disk_size, bool) or not isinstance(disk_size, int) or disk_size <= 0:
            raise UsageError(f"--disk_size must be a positive number of GB, got {disk_size!r}.")
        ask.notes.append(
            f"--disk_size {disk_size}: experiments use this machine's disk; no volume is "
            "provisioned."
        )
    return ask


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
    ask: MachineAsk, framework: str, dockerfile: str | None, container: bool, backend: str
) -> None:
    if framework not in FRAMEWORKS:
        raise UsageError(
            f"Unknown framework '{framework}'.", hint=f"Valid frameworks: {', '.join(FRAMEWORKS)}."
        )
    if framework == "julia":
        raise UnsupportedError(
            "--framework julia: gridrun runs Python (.py) and bash (.sh) scripts.",
            hint="Install Julia in a --dockerfile and call it from a .sh script.",
        )
    if not container:
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
    ask.base_image = gpu_image if ask.gpus else cpu_image
    ask.notes.append(f"--framework {framework}: base image {ask.base_image}.")


__all__ = ["FRAMEWORKS", "FRAMEWORK_IMAGES", "MachineAsk", "read_grid_flags"]
