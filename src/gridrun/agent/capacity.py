"""This machine's capacity, as the agent places experiments of the backends sharing it.

The detection lives in :mod:`gridrun.machine` (backends use it too); this module keeps
the agent's names for it.
"""

from __future__ import annotations

from gridrun.machine import Capacity, detect_gpus, machine_capacity

__all__ = ["Capacity", "detect_gpus", "machine_capacity"]
