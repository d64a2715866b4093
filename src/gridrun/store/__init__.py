"""The SQLite store: the single source of truth for runs, experiments and events."""

from __future__ import annotations

from gridrun.store.db import Store
from gridrun.store.models import Experiment, Run, RunStatus, Status

__all__ = ["Experiment", "Run", "RunStatus", "Status", "Store"]
