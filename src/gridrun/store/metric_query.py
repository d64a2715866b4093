"""Reading metrics: the API that ``grid metrics`` and the dashboard share.

Functions over plain data, the contract agreed with the dashboard, so that
callers need nothing from the storage format. Values may be NaN or +-inf (a diverged
loss is a result too): JSON writers must map them (``grid metrics -o json`` writes
them as the strings ``"nan"``, ``"inf"``, ``"-inf"``).
Reading a series is one indexed range scan returning a few packed chunks; summaries
come from the series rows alone and never touch the points.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Sequence
from functools import lru_cache
from operator import itemgetter

from gridrun.store.db import Store
from gridrun.store.metrics import CHUNK_POINTS, Point, unpack

# SQLite's default limit on bound parameters is 999 on old builds; stay well below.
_BATCH = 500


def _batches(ids: Sequence[int]) -> list[list[int]]:
    unique = list(dict.fromkeys(ids))
    return [unique[i : i + _BATCH] for i in range(0, len(unique), _BATCH)]


def series(
    store: Store,
    experiment_ids: list[int],
    keys: list[str] | None = None,
    max_points: int | None = None,
) -> dict[int, dict[str, list[Point]]]:
    """experiment id -> key -> [(step, wall time, value)], sorted by step.

    ``max_points`` keeps at most that many points per series, evenly spaced and always
    including the last one (what a chart of a live experiment must show). Experiments
    without metrics map to an empty dict.
    """
    out: dict[int, dict[str, list[Point]]] = {i: {} for i in experiment_ids}
    for exp_id, key, ordered, parts in _chunks(store, experiment_ids, keys):
        flat = unpack(b"".join(parts))
        n = len(flat) // 3
        if not ordered or max_points is None or not 2 <= max_points < n:
            pts = list(zip(flat[0::3], flat[1::3], flat[2::3], strict=True))
            if not ordered:
                pts.sort(key=lambda p: p[0])  # stable: equal steps keep arrival order
            if max_points is not None:
                pts = downsample(pts, max_points)
        else:  # sorted already: build only the points kept, all in C
            kept = itemgetter(*kept_indices(n, max_points))
            pts = list(zip(kept(flat[0::3]), kept(flat[1::3]), kept(flat[2::3]), strict=True))
        out[exp_id][key] = pts
    return out


def stream(store: Store, experiment_id: int, key: str) -> Iterator[array[float]]:
    """One series' points as flat ``[step, wall, value, ...]`` arrays, sorted by step,
    a stored chunk (4,096 points) at a time.

    For exports of any length (``grid metrics -o json``): a series logged in order
    never has more than one chunk in memory. One logged out of order (rare: a
    TensorBoard file rewritten) is sorted whole first, as numpy float64 columns.
    """
    rows = store.conn.execute(
        "SELECT s.sorted, c.points FROM metric_series s"
        " JOIN metric_chunks c ON c.series_id = s.id"
        " WHERE s.experiment_id = ? AND s.key = ? ORDER BY c.seq",
        (experiment_id, key),
    )
    first = rows.fetchone()
    if first is None:
        return
    if first[0]:
        yield unpack(first[1])
        for _ordered, blob in rows:
            yield unpack(blob)
        return
    import numpy as np

    flat = np.concatenate(
        [np.frombuffer(first[1], "<f8"), *(np.frombuffer(b, "<f8") for _o, b in rows)]
    ).reshape(-1, 3)
    flat = flat[np.argsort(flat[:, 0], kind="stable")]  # stable, like series()
    for start in range(0, len(flat), CHUNK_POINTS):
        yield array("d", flat[start : start + CHUNK_POINTS].ravel().tolist())


def _chunks(
    store: Store, experiment_ids: list[int], keys: list[str] | None
) -> list[tuple[int, str, bool, list[bytes]]]:
    """(experiment id, key, sorted, its chunks' blobs in order) of each series."""
    key_filter = ""
    key_args: list[str] = []
    if keys is not None:
        if not keys:
            return []
        key_filter = f" AND s.key IN ({', '.join('?' for _ in keys)})"
        key_args = list(keys)
    found: dict[tuple[int, str], tuple[bool, list[bytes]]] = {}
    for batch in _batches(experiment_ids):
        marks = ", ".join("?" for _ in batch)
        for exp_id, key, ordered, blob in store.conn.execute(
            "SELECT s.experiment_id, s.key, s.sorted, c.points FROM metric_series s"
            " JOIN metric_chunks c ON c.series_id = s.id"
            f" WHERE s.experiment_id IN ({marks}){key_filter}"
            " ORDER BY s.experiment_id, s.key, c.seq",
            [*batch, *key_args],
        ):
            hit = found.get((exp_id, key))
            if hit is None:
                found[(exp_id, key)] = (bool(ordered), [blob])
            else:
                hit[1].append(blob)
    return [(e, k, o, parts) for (e, k), (o, parts) in found.items()]


@lru_cache(maxsize=256)
def kept_indices(n: int, max_points: int) -> tuple[int, ...]:
    """Indices :func:`downsample` keeps of ``n`` points: the same for every series of
    that length, so the experiments of a sweep keep the same steps and their lines
    still share one x axis."""
    if max_points <= 0:
        return ()
    if n <= max_points:
        return tuple(range(n))
    if max_points == 1:
        return (n - 1,)
    stride = (n - 1) / (max_points - 1)
    return tuple(round(i * stride) for i in range(max_points))


def downsample(points: list[Point], max_points: int) -> list[Point]:
    """At most ``max_points`` points, evenly spaced, the first and last always kept."""
    return [points[i] for i in kept_indices(len(points), max_points)]


def summary(store: Store, experiment_ids: list[int]) -> dict[int, dict[str, dict[str, float]]]:
    """experiment id -> key -> {"last", "min", "max", "count"}.

    ``min`` and ``max`` ignore NaN (a diverged loss stays visible as ``last``); a
    series of NaN only has NaN for both.
    """
    out: dict[int, dict[str, dict[str, float]]] = {i: {} for i in experiment_ids}
    for batch in _batches(experiment_ids):
        marks = ", ".join("?" for _ in batch)
        for exp_id, key, count, last, lo, hi in store.conn.execute(
            "SELECT experiment_id, key, count, last_value, min_value, max_value"
            f" FROM metric_series WHERE experiment_id IN ({marks}) AND count > 0"
            " ORDER BY experiment_id, key",
            batch,
        ):
            out[exp_id][key] = {
                "last": math.nan if last is None else last,
                "min": math.nan if lo is None else lo,
                "max": math.nan if hi is None else hi,
                "count": float(count),
            }
    return out


def keys(store: Store, run_id: int) -> list[str]:
    """Every metric key recorded by any experiment of the run, sorted."""
    rows = store.conn.execute(
        "SELECT DISTINCT s.key FROM metric_series s JOIN experiments e"
        " ON e.id = s.experiment_id WHERE e.run_id = ? ORDER BY s.key",
        (run_id,),
    ).fetchall()
    return [r[0] for r in rows]
