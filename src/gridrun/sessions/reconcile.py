"""Sessions whose JupyterLab died on its own (a reboot, an OOM kill) recorded as paused.

Kept apart from ``lifecycle.py`` so ``grid status`` checks its Interactive Nodes
without importing the submission pipeline.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from gridrun.processes import ProcessRef
from gridrun.store import sessions as table
from gridrun.store.db import Store
from gridrun.store.models import SessionStatus
from gridrun.store.sessions import Session


def server_alive(home_root: Path | None, s: Session) -> bool | None:
    """Whether the session's server still runs: its process, or its container (None:
    the Docker engine does not answer, so nobody can say)."""
    if s.backend == "docker":
        if home_root is None:
            return None
        from gridrun.sessions.container import running

        return running(home_root, s.id)
    ref = ProcessRef.parse(s.pid) if s.pid else None
    return ref is not None and ref.alive()


def reconcile(store: Store, home_root: Path | None = None) -> list[Session]:
    """Live sessions, a running one whose server is gone moved to ``paused`` (its files
    and environment are intact: ``grid session resume`` starts it again).

    ``home_root``: where docker sessions' containers are labelled from; without it
    (older callers) a docker session is shown as recorded."""
    out = []
    for s in table.live(store):
        running = s.status == SessionStatus.RUNNING and not store.readonly
        if running and server_alive(home_root, s) is False:
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
