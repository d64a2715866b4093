"""Writing metric points and source offsets to the store, together or not at all.

Every batch read from a source is committed in one transaction with the source's new
byte offset and parser state, under a conditional update on the *old* offset
(compare-and-set): two readers racing on one source (a supervisor's last pass and a
restarted agent's reconciliation) can never both commit the same bytes, and a reader
killed between reading and committing loses nothing, because the offset it would
have moved was never moved. That is what makes ingestion survive any death without
double counting.

Points are packed into chunks of :data:`CHUNK_POINTS` little-endian float64 triples;
a new batch tops up the series' last chunk before opening another, so a series is a
handful of rows however it was written (one point a second, or a million at once).
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import le
from typing import Any

from gridrun.store.db import Store

CHUNK_POINTS = 4096
Point = tuple[float, float, float]  # (step, wall time, value)
_BIG_ENDIAN = sys.byteorder == "big"


def pack(points: Iterable[Point]) -> bytes:
    flat = array("d", chain.from_iterable(points))
    if _BIG_ENDIAN:
        flat.byteswap()
    return flat.tobytes()


def pack_flat(flat: array[float]) -> bytes:
    """The stored bytes of a flat ``[step0, wall0, value0, step1, ...]`` array."""
    if _BIG_ENDIAN:
        flat = array("d", flat)
        flat.byteswap()
    return flat.tobytes()


def unpack(blob: bytes) -> array[float]:
    """A flat array ``[step0, wall0, value0, step1, ...]``."""
    flat = array("d")
    flat.frombytes(blob)
    if _BIG_ENDIAN:
        flat.byteswap()
    return flat


@dataclass
class SourceState:
    """Where a reader stopped in one source, and what its parser must remember."""

    offset: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    known: bool = False  # a row exists in metric_sources


def load_sources(store: Store, experiment_id: int) -> dict[str, SourceState]:
    rows = store.conn.execute(
        "SELECT source, offset, state FROM metric_sources WHERE experiment_id = ?",
        (experiment_id,),
    ).fetchall()
    return {r[0]: SourceState(r[1], json.loads(r[2]), True) for r in rows}


@dataclass
class ReadBatch:
    """What one read of a file source produced: points, and where to go on from."""

    offset: int
    state: dict[str, Any] = field(default_factory=dict)
    points: dict[str, list[Point]] = field(default_factory=dict)
    more: bool = False  # stopped at the size limit: call again


class _LostRace(Exception):
    """Another reader committed this source first: drop this batch."""


def commit_batch(
    store: Store,
    experiment_id: int,
    source: str,
    before: SourceState,
    offset: int,
    state: dict[str, Any],
    points: dict[str, list[Point]],
) -> bool:
    """Append ``points`` and move ``source`` from ``before.offset`` to ``offset``.

    Returns False, having written nothing, when another reader moved the source first.
    A key already owned by another source of the experiment (the first source to write
    a key owns it) is not appended to: a script that logs ``loss`` to TensorBoard and
    also prints it gets one series, not two interleaved copies.
    """
    try:
        with store.transaction() as c:
            encoded = json.dumps(state, separators=(",", ":"))
            if before.known:
                moved = c.execute(
                    "UPDATE metric_sources SET offset = ?, state = ?"
                    " WHERE experiment_id = ? AND source = ? AND offset = ?",
                    (offset, encoded, experiment_id, source, before.offset),
                ).rowcount
                if moved != 1:
                    raise _LostRace
            else:
                try:
                    c.execute(
                        "INSERT INTO metric_sources (experiment_id, source, offset, state)"
                        " VALUES (?, ?, ?, ?)",
                        (experiment_id, source, offset, encoded),
                    )
                except sqlite3.IntegrityError:
                    raise _LostRace from None
            for key, pts in points.items():
                if pts:
                    _append(c, experiment_id, source, key, pts)
    except _LostRace:
        return False
    before.offset, before.state, before.known = offset, state, True
    return True


def _append(
    c: sqlite3.Connection, experiment_id: int, source: str, key: str, pts: list[Point]
) -> None:
    row = c.execute(
        "SELECT id, source, count, last_step, min_value, max_value, sorted FROM metric_series"
        " WHERE experiment_id = ? AND key = ?",
        (experiment_id, key),
    ).fetchone()
    series_id: int
    if row is None:
        series_id = (
            c.execute(
                "INSERT INTO metric_series (experiment_id, key, source) VALUES (?, ?, ?)",
                (experiment_id, key, source),
            ).lastrowid
            or 0
        )
        count, last_step, lo, hi, ordered = 0, None, None, None, True
    else:
        series_id, owner, count, last_step, lo, hi, ordered = row
        if owner != source:
            return
        ordered = bool(ordered)
    steps = [p[0] for p in pts]
    if ordered:
        ordered = (last_step is None or steps[0] >= last_step) and all(map(le, steps, steps[1:]))
    values = [p[2] for p in pts if not math.isnan(p[2])]  # NaN: a point, never a min or max
    if values:
        lo = min(values) if lo is None else min(lo, *values)
        hi = max(values) if hi is None else max(hi, *values)
    last = pts[-1]
    c.execute(
        "UPDATE metric_series SET count = ?, last_step = ?, last_wall = ?, last_value = ?,"
        " min_value = ?, max_value = ?, sorted = ? WHERE id = ?",
        (count + len(pts), last[0], last[1], last[2], lo, hi, int(ordered), series_id),
    )
    _write_chunks(c, series_id, pts)


def _write_chunks(c: sqlite3.Connection, series_id: int, pts: Sequence[Point]) -> None:
    tail = c.execute(
        "SELECT seq, n, first_step, last_step, points FROM metric_chunks WHERE series_id = ?"
        " ORDER BY seq DESC LIMIT 1",
        (series_id,),
    ).fetchone()
    start = 0
    if tail is not None and tail[1] < CHUNK_POINTS:
        seq, n, first, last, blob = tail
        take = min(CHUNK_POINTS - n, len(pts))
        part = pts[:take]
        c.execute(
            "UPDATE metric_chunks SET n = ?, first_step = ?, last_step = ?, points = ?"
            " WHERE series_id = ? AND seq = ?",
            (
                n + take,
                min(first, *(p[0] for p in part)),
                max(last, *(p[0] for p in part)),
                blob + pack(part),
                series_id,
                seq,
            ),
        )
        start, next_seq = take, seq + 1
    else:
        next_seq = 0 if tail is None else tail[0] + 1
    for i in range(start, len(pts), CHUNK_POINTS):
        part = pts[i : i + CHUNK_POINTS]
        steps = [p[0] for p in part]
        c.execute(
            "INSERT INTO metric_chunks (series_id, seq, n, first_step, last_step, points)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (series_id, next_seq, len(part), min(steps), max(steps), pack(part)),
        )
        next_seq += 1
