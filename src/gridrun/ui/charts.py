"""The run page's metrics API: every experiment's series, ready for the line charts.

The answer is binary, not JSON: a 200-experiment sweep with 1,000 points per metric
is 400,000 points, which as JSON is 8 MB that the browser needs a second or more to
parse; as typed arrays it is 6.4 MB that it does not parse at all. Layout::

    uint32 LE   length of the header
    header      UTF-8 JSON {"keys": [...], "experiments": [...],
                            "series": [[key, experiment, n], ...]}
    padding     zero bytes up to a multiple of 8
    per series  n float64 steps, n float32 seconds since the experiment started,
                n float32 values (NaN where the value was NaN or infinite)

Why a cache: encoding the points costs far more than reading them. A finished
experiment's series never change, so each (experiment, metric) block is encoded
once and kept with the point count it had; a poll re-encodes only the series that
grew (the running experiments) and otherwise asks the store for the summary alone.
"""

from __future__ import annotations

import json
import math
import struct
import sys
import threading
from array import array
from collections import OrderedDict

from gridrun.store.db import Store
from gridrun.store.models import Experiment

CacheKey = tuple[int, str, float | None, str, int | None]

# Points one chart draws at most, over all its lines. A chart is ~600 pixels wide, so
# 200 lines of 1,000 points each draw no more at 500 each; every point is kept for up
# to 100 lines (like TensorBoard's sampling, evenly spaced, first and last kept).
POINTS_PER_CHART = 100_000
MIN_POINTS_PER_LINE = 500


def points_per_line(lines: int) -> int:
    return max(MIN_POINTS_PER_LINE, POINTS_PER_CHART // max(1, lines))


class SeriesCache:
    """Encoded blocks of one experiment's series of one key, valid while its count holds.

    Keyed by id, name and start time too, so a deleted and re-used id never hits.
    """

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self._items: OrderedDict[CacheKey, tuple[int, bytes]] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()

    def get(self, key: CacheKey, count: int) -> bytes | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None or hit[0] != count:
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, key: CacheKey, count: int, block: bytes) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old[1])
            self._items[key] = (count, block)
            self._bytes += len(block)
            while self._bytes > self._max and len(self._items) > 1:
                _k, (_c, dropped) = self._items.popitem(last=False)
                self._bytes -= len(dropped)


def _little(a: array) -> bytes:  # type: ignore[type-arg]
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes()


def encode_series(points: list[tuple[float, float, float]], start: float | None) -> bytes:
    """One series block: steps (float64), relative times and values (float32)."""
    if not points:
        return b""
    steps, walls, values = zip(*points, strict=True)
    t0 = start if start is not None else walls[0]
    finite = [v if math.isfinite(v) else math.nan for v in values]
    return (
        _little(array("d", steps))
        + _little(array("f", [w - t0 for w in walls]))
        + _little(array("f", finite))
    )


def run_metrics(
    store: Store,
    exps: list[Experiment],
    cache: SeriesCache,
    keys: list[str] | None = None,
    max_points: int | None = None,
) -> bytes:
    """The body of ``/api/runs/<name>/metrics`` (the layout is in the module doc)."""
    from gridrun.metrics import query

    ids = [e.id for e in exps]
    summary = query.summary(store, ids) if ids else {}
    all_keys = sorted({k for s in summary.values() for k in s})
    wanted = [k for k in all_keys if keys is None or k in keys]
    blocks: dict[tuple[int, str], bytes] = {}
    stale: dict[int, list[str]] = {}
    for e in exps:
        for k in wanted:
            stats = summary.get(e.id, {}).get(k)
            if not stats:
                continue
            hit = cache.get((e.id, e.name, e.started_at, k, max_points), int(stats["count"]))
            if hit is None:
                stale.setdefault(e.id, []).append(k)
            else:
                blocks[(e.id, k)] = hit
    if stale:
        by_id = {e.id: e for e in exps}
        stale_keys = sorted({k for ks in stale.values() for k in ks})
        fresh = query.series(store, list(stale), stale_keys, max_points)
        for exp_id, ks in stale.items():
            exp = by_id[exp_id]
            for k in ks:
                block = encode_series(fresh.get(exp_id, {}).get(k, []), exp.started_at)
                blocks[(exp_id, k)] = block
                count = int(summary[exp_id][k]["count"])
                cache.put((exp_id, exp.name, exp.started_at, k, max_points), count, block)
    index: list[list[str | int]] = []
    body: list[bytes] = []
    for k in wanted:
        for e in exps:
            found = blocks.get((e.id, k))
            if found:
                index.append([k, e.name, len(found) // 16])
                body.append(found)
    header = json.dumps(
        {"keys": wanted, "experiments": [e.name for e in exps], "series": index},
        separators=(",", ":"),
    ).encode()
    pad = b"\0" * (-(4 + len(header)) % 8)
    return b"".join([struct.pack("<I", len(header)), header, pad, *body])
