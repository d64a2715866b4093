"""Cloud instance types, as Grid users name their machines, mapped to resources.

Grid sized an experiment by the machine it ran on (``--instance_type p3.2xlarge``).
gridrun runs on machines it does not provision, so an instance type is read as the
resources that machine offers, and each experiment is scheduled by those: CPUs,
memory and GPUs. The table holds the AWS families Grid's docs used (t2, m5, c5,
g4dn, p2, p3, p4d) and their common neighbours, plus GCP's general-purpose and GPU
machine types. Figures are the providers' published vCPU, memory (GiB) and GPU
counts; the GPU model is shown but not matched, since the local scheduler counts
GPUs, not models.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from gridrun.errors import UsageError


@dataclass(frozen=True)
class InstanceType:
    """What one machine type offers an experiment."""

    name: str
    cpus: int
    memory_gib: float
    gpus: int = 0
    gpu_model: str | None = None

    @property
    def memory(self) -> int:
        """Memory in bytes, as the scheduler counts it."""
        return int(self.memory_gib * 2**30)

    def describe(self) -> str:
        """``8 CPUs, 61 GiB, 1 V100 GPU``."""
        parts = [f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}", f"{self.memory_gib:g} GiB"]
        if self.gpus:
            parts.append(f"{self.gpus} {self.gpu_model} GPU{'s' if self.gpus != 1 else ''}")
        return ", ".join(parts)


def _family(
    prefix: str, sizes: Mapping[str, tuple[int, float, int]], gpu: str | None = None
) -> dict[str, InstanceType]:
    return {
        f"{prefix}{size}": InstanceType(f"{prefix}{size}", c, m, g, gpu if g else None)
        for size, (c, m, g) in sizes.items()
    }


def _ratio(prefix: str, counts: tuple[int, ...], gib_per_cpu: float) -> dict[str, InstanceType]:
    return {
        f"{prefix}{n}": InstanceType(f"{prefix}{n}", n, round(n * gib_per_cpu, 2)) for n in counts
    }


_BURST = {
    "nano": (1, 0.5, 0),
    "micro": (1, 1, 0),
    "small": (1, 2, 0),
    "medium": (2, 4, 0),
    "large": (2, 8, 0),
    "xlarge": (4, 16, 0),
    "2xlarge": (8, 32, 0),
}
_M5 = {
    "large": (2, 8, 0),
    "xlarge": (4, 16, 0),
    "2xlarge": (8, 32, 0),
    "4xlarge": (16, 64, 0),
    "8xlarge": (32, 128, 0),
    "12xlarge": (48, 192, 0),
    "16xlarge": (64, 256, 0),
    "24xlarge": (96, 384, 0),
}
_C5 = {
    "large": (2, 4, 0),
    "xlarge": (4, 8, 0),
    "2xlarge": (8, 16, 0),
    "4xlarge": (16, 32, 0),
    "9xlarge": (36, 72, 0),
    "12xlarge": (48, 96, 0),
    "18xlarge": (72, 144, 0),
    "24xlarge": (96, 192, 0),
}
_R5 = {k: (c, m * 2, 0) for k, (c, m, _) in _M5.items()}
_G4DN = {
    "xlarge": (4, 16, 1),
    "2xlarge": (8, 32, 1),
    "4xlarge": (16, 64, 1),
    "8xlarge": (32, 128, 1),
    "12xlarge": (48, 192, 4),
    "16xlarge": (64, 256, 1),
    "metal": (96, 384, 8),
}
# g5 sizes up to 16xlarge have g4dn's vCPUs, memory and GPU counts; the A10G boxes add two.
_G5 = {
    **{k: v for k, v in _G4DN.items() if k != "metal"},
    "24xlarge": (96, 384, 4),
    "48xlarge": (192, 768, 8),
}
_P2 = {"xlarge": (4, 61, 1), "8xlarge": (32, 488, 8), "16xlarge": (64, 732, 16)}
_P3 = {"2xlarge": (8, 61, 1), "8xlarge": (32, 244, 4), "16xlarge": (64, 488, 8)}
_A2 = {
    "highgpu-1g": (12, 85, 1),
    "highgpu-2g": (24, 170, 2),
    "highgpu-4g": (48, 340, 4),
    "highgpu-8g": (96, 680, 8),
    "megagpu-16g": (96, 1360, 16),
}
_G2 = {
    "standard-4": (4, 16, 1),
    "standard-8": (8, 32, 1),
    "standard-12": (12, 48, 1),
    "standard-16": (16, 64, 1),
    "standard-24": (24, 96, 2),
    "standard-32": (32, 128, 1),
    "standard-48": (48, 192, 4),
    "standard-96": (96, 384, 8),
}
_N1 = (1, 2, 4, 8, 16, 32, 64, 96)

#: Every known instance type by name (AWS ``family.size``, GCP ``family-kind-N``).
INSTANCE_TYPES: dict[str, InstanceType] = {
    # AWS
    **_family("t2.", _BURST),
    **_family("t3.", {k: (max(c, 2), m, g) for k, (c, m, g) in _BURST.items()}),
    **_family("m5.", _M5),
    **_family("c5.", _C5),
    **_family("r5.", _R5),
    **_family("g4dn.", _G4DN, "T4"),
    **_family("g5.", _G5, "A10G"),
    **_family("p2.", _P2, "K80"),
    **_family("p3.", _P3, "V100"),
    **_family("p3dn.", {"24xlarge": (96, 768, 8)}, "V100"),
    **_family("p4d.", {"24xlarge": (96, 1152, 8)}, "A100"),
    # GCP
    **_ratio("n1-standard-", _N1, 3.75),
    **_ratio("n1-highmem-", _N1[1:], 6.5),
    **_ratio("n1-highcpu-", _N1[1:], 0.9),
    **_ratio("e2-standard-", (2, 4, 8, 16, 32), 4),
    **_ratio("n2-standard-", (2, 4, 8, 16, 32, 48, 64, 80, 96, 128), 4),
    **_family("a2-", _A2, "A100"),
    **_family("g2-", _G2, "L4"),
}


def lookup(name: str, where: str = "--instance_type") -> InstanceType:
    """The instance type called ``name``, or a one-line error with the nearest names."""
    key = str(name).strip().lower()
    found = INSTANCE_TYPES.get(key)
    if found is not None:
        return found
    close = difflib.get_close_matches(key, list(INSTANCE_TYPES), n=3, cutoff=0.6)
    families = sorted(
        {n.split(".")[0] if "." in n else n.rsplit("-", 1)[0] for n in INSTANCE_TYPES}
    )
    hint = (
        f"Did you mean {' or '.join(repr(c) for c in close)}?"
        if close
        else f"Known families: {', '.join(families)}; or give --cpus, --gpus and --memory."
    )
    raise UsageError(f"Unknown instance type '{name}' for {where}.", hint=hint)


__all__ = ["INSTANCE_TYPES", "InstanceType", "lookup"]
