"""The sessions table: interactive nodes (gridrun.sessions) as the store keeps them.

Every status change goes through :func:`move`, which checks it against the named
transitions in :mod:`gridrun.store.transitions` and applies it with a conditional
``UPDATE`` (the loser of a race changes nothing), recording an event, as the
experiments' transitions do. Nothing outside ``gridrun.store`` writes a status.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gridrun.errors import StateError, UsageError
from gridrun.store.db import Store
from gridrun.store.models import SessionStatus
from gridrun.store.transitions import EventKind, check


@dataclass
class Session:
    """One session's row. ``spec`` is a :class:`~gridrun.specs.RunSpec` dict."""

    id: int
    name: str
    created_at: float
    backend: str
    status: SessionStatus
    spec: dict[str, Any]
    env_key: str | None
    env_ref: str | None
    from_run: str | None
    idle_seconds: float | None
    port: int | None
    token: str | None
    pid: str | None
    started_at: float | None
    paused_at: float | None
    message: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Session:
        return cls(
            id=row["id"],
            name=row["name"],
            created_at=row["created_at"],
            backend=row["backend"],
            status=SessionStatus(row["status"]),
            spec=json.loads(row["spec"]),
            env_key=row["env_key"],
            env_ref=row["env_ref"],
            from_run=row["from_run"],
            idle_seconds=row["idle_seconds"],
            port=row["port"],
            token=row["token"],
            pid=row["pid"],
            started_at=row["started_at"],
            paused_at=row["paused_at"],
            message=row["message"],
        )

    @property
    def live(self) -> bool:
        return self.status != SessionStatus.DELETED


def create(
    store: Store,
    *,
    name: str,
    backend: str,
    spec: dict[str, Any],
    env_key: str | None,
    from_run: str | None,
    idle_seconds: float | None,
) -> Session:
    """Record a new session, ``starting``; a live session of that name is a usage error."""
    now = time.time()
    try:
        with store.transaction() as c:
            cur = c.execute(
                "INSERT INTO sessions (name, created_at, backend, status, spec, env_key,"
                " from_run, idle_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    now,
                    backend,
                    SessionStatus.STARTING.value,
                    json.dumps(spec),
                    env_key,
                    from_run,
                    idle_seconds,
                ),
            )
            c.execute(
                "INSERT INTO events (ts, kind, message) VALUES (?, ?, ?)",
                (now, EventKind.SESSION_CREATED.value, name),
            )
            session_id = cur.lastrowid
    except sqlite3.IntegrityError as exc:
        if "sessions.name" in str(exc):
            raise UsageError(
                f"A session named '{name}' already exists.",
                hint="Choose another --name, or `grid session delete` it first.",
            ) from exc
        raise StateError(f"Could not record session '{name}': {exc}.") from exc
    assert session_id is not None
    return get_by_id(store, session_id)


def move(store: Store, session_id: int, name: str, to: SessionStatus, **fields: Any) -> bool:
    """Apply the named transition ``name`` to ``to``, setting ``fields`` with it.

    Returns whether the row moved: ``False`` means it was no longer in a status the
    transition starts from (another process got there first).
    """
    t = check(name, to)
    fields["status"] = to.value
    cols = ", ".join(f"{k} = ?" for k in fields)
    frm = [s.value for s in t.frm]
    sql = f"UPDATE sessions SET {cols} WHERE id = ? AND status IN ({', '.join('?' for _ in frm)})"
    with store.transaction() as c:
        changed = c.execute(sql, [*fields.values(), session_id, *frm]).rowcount == 1
        if changed:
            c.execute(
                "INSERT INTO events (ts, kind, message) VALUES (?, ?, ?)",
                (time.time(), EventKind(name).value, str(session_id)),
            )
    return changed


def set_fields(store: Store, session_id: int, **fields: Any) -> None:
    """Fields that are no status (the environment once built, the server's port)."""
    if "status" in fields:
        raise StateError("A session's status changes only through a named transition.")
    cols = ", ".join(f"{k} = ?" for k in fields)
    with store.transaction() as c:
        c.execute(f"UPDATE sessions SET {cols} WHERE id = ?", [*fields.values(), session_id])


def _select(store: Store, where: str, args: Sequence[Any]) -> list[Session]:
    try:
        rows = store.conn.execute(f"SELECT * FROM sessions {where}", args).fetchall()
    except sqlite3.OperationalError as exc:  # a read-only store of an older schema
        if "no such table" in str(exc):
            return []
        raise
    return [Session.from_row(r) for r in rows]


def live(store: Store) -> list[Session]:
    """Every session not deleted, oldest first."""
    return _select(store, "WHERE status != 'deleted' ORDER BY created_at, id", ())


def find(store: Store, name: str) -> Session | None:
    found = _select(store, "WHERE name = ? AND status != 'deleted'", (name,))
    return found[0] if found else None


def get(store: Store, name: str) -> Session:
    session = find(store, name)
    if session is None:
        names = ", ".join(s.name for s in live(store)) or "none"
        raise UsageError(
            f"No session named '{name}' (sessions: {names}).",
            hint="`grid session list` shows them.",
        )
    return session


def get_by_id(store: Store, session_id: int) -> Session:
    found = _select(store, "WHERE id = ?", (session_id,))
    if not found:
        raise StateError(f"Session {session_id} is gone from the store.")
    return found[0]
