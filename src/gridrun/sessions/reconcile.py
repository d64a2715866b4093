"""Sessions whose JupyterLab died on its own (a reboot, an OOM kill) recorded as paused.

Kept apart from ``lifecycle.py`` so ``grid status`` checks its Interactive Nodes
without importing the submission pipeline.
"""

from __future__ import annotations

import sqlite3
import time

from gridrun.processes import ProcessRef
from gridrun.store import sessions as table
from gridrun.store.db import Store
from gridrun.store.models import SessionStatus
from gridrun.store.sessions import Session


def reconcile(store: Store) -> list[Session]:
    """Live sessions, a running one whose server is gone moved to ``paused`` (its files
    and environment are intact: ``grid session resume`` starts it again)."""
    out = []
    for s in table.live(store):
        if s.status == SessionStatus.RUNNING and not store.readonly:
            ref = ProcessRef.parse(s.pid) if s.pid else None
            if ref is None or not ref.alive():
                try:
                    table.move(
                        store,
                        s.id,
                        "session_lost",
                        SessionStatus.PAUSED,
                        paused_at=time.time(),
                        pid=None,
                        message="its server had stopped",
                    )
                    s = table.get_by_id(store, s.id)
                except sqlite3.OperationalError:
                    pass  # a full or read-only disk: shown as recorded
        out.append(s)
    return out
