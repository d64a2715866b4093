"""What this machine offers to experiments: CPUs, memory and GPUs.

Detected with psutil and NVML (nvidia-ml-py) and overridable in
``GRID_HOME/config.yaml`` under ``capacity:``, e.g. to keep a core for yourself. Used
by the backends that share this machine (local, docker) as their capacity.
"""

from __future__ import annotations

import os

from gridrun.config import MachineConfig
from gridrun.specs import Capacity


def detect_gpus() -> list[int]:
    """Indices of the NVIDIA GPUs NVML sees; none when there is no driver."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return []
    try:
        return list(range(pynvml.nvmlDeviceGetCount()))
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def machine_capacity(cfg: MachineConfig) -> Capacity:
    import psutil

    cpus = cfg.cpus if cfg.cpus is not None else float(len(os.sched_getaffinity(0)))
    memory = cfg.memory if cfg.memory is not None else psutil.virtual_memory().total
    gpus = cfg.gpus if cfg.gpus is not None else detect_gpus()
    return Capacity(cpus=cpus, memory=memory, gpus=gpus)
