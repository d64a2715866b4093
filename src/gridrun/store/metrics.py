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
from itertools import chain, filterfalse, islice
from operator import itemgetter, le
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
class Columns:
    """Points as three parallel arrays (steps, wall times, values), in order: what
    the stdout parser's block path makes, and what a batch is stored from, so that a
    million points are never a million tuples."""

    steps: array[float]
    walls: array[float]
    values: array[float]

    @classmethod
    def of(cls, points: Sequence[Point] | Columns) -> Columns:
        if isinstance(points, Columns):
            return points
        return cls(
            array("d", map(itemgetter(0), points)),
            array("d", map(itemgetter(1), points)),
            array("d", map(itemgetter(2), points)),
        )

    def copy(self) -> Columns:
        return Columns(array("d", self.steps), array("d", self.walls), array("d", self.values))

    def extend(self, other: Columns) -> None:
        self.steps.extend(other.steps)
        self.walls.extend(other.walls)
        self.values.extend(other.values)

    def __len__(self) -> int:
        return len(self.steps)

    def flat(self, start: int = 0, stop: int | None = None) -> array[float]:
        """Points ``start:stop`` interleaved as stored: step, wall, value, step, ..."""
        stop = len(self.steps) if stop is None else stop
        out = array("d", bytes(24 * (stop - start)))
        out[0::3] = self.steps[start:stop]
        out[1::3] = self.walls[start:stop]
        out[2::3] = self.values[start:stop]
        return out


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
    points: dict[str, list[Point]] | dict[str, Columns] | dict[str, list[Point] | Columns],
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
                if len(pts):
                    _append(c, experiment_id, source, key, Columns.of(pts))
    except _LostRace:
        return False
    before.offset, before.state, before.known = offset, state, True
    return True


def _append(c: sqlite3.Connection, experiment_id: int, source: str, key: str, pts: Columns) -> None:
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
    steps, values = pts.steps, pts.values
    if ordered:
        ordered = (last_step is None or steps[0] >= last_step) and all(
            map(le, steps, islice(steps, 1, None))
        )
    # NaN is a point, never a min or max.
    kept = list(filterfalse(math.isnan, values)) if any(map(math.isnan, values)) else values
    if len(kept):
        lo = min(kept) if lo is None else min(lo, min(kept))
        hi = max(kept) if hi is None else max(hi, max(kept))
    n = len(pts)
    c.execute(
        "UPDATE metric_series SET count = ?, last_step = ?, last_wall = ?, last_value = ?,"
        " min_value = ?, max_value = ?, sorted = ? WHERE id = ?",
        (count + n, steps[-1], pts.walls[-1], values[-1], lo, hi, int(ordered), series_id),
    )
    _write_chunks(c, series_id, pts)


def _write_chunks(c: sqlite3.Connection, series_id: int, pts: Columns) -> None:
    tail = c.execute(
        "SELECT seq, n, first_step, last_step, points FROM metric_chunks WHERE series_id = ?"
        " ORDER BY seq DESC LIMIT 1",
        (series_id,),
    ).fetchone()
    start, total = 0, len(pts)
    if tail is not None and tail[1] < CHUNK_POINTS:
        seq, n, first, last, blob = tail
        take = min(CHUNK_POINTS - n, total)
        part = pts.steps[:take]
        c.execute(
            "UPDATE metric_chunks SET n = ?, first_step = ?, last_step = ?, points = ?"
            " WHERE series_id = ? AND seq = ?",
            (
                n + take,
                min(first, min(part)),
                max(last, max(part)),
                blob + pack_flat(pts.flat(0, take)),
                series_id,
                seq,
            ),
        )
        start, next_seq = take, seq + 1
    else:
        next_seq = 0 if tail is None else tail[0] + 1
    for i in range(start, total, CHUNK_POINTS):
        j = min(i + CHUNK_POINTS, total)
        part = pts.steps[i:j]
        c.execute(
            "INSERT INTO metric_chunks (series_id, seq, n, first_step, last_step, points)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (series_id, next_seq, j - i, min(part), max(part), pack_flat(pts.flat(i, j))),
        )
        next_seq += 1
