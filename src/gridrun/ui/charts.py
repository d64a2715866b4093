"""The run page's metrics API: every experiment's series, ready for the line charts.

The answer is binary, not JSON: a 200-experiment sweep with 1,000 points per metric
is 400,000 points, which as JSON is 8 MB that the browser needs a second or more to
parse; as typed arrays it is a few MB that it does not parse at all. Layout::

    uint32 LE   length of the header
    header      UTF-8 JSON {"keys": [...], "experiments": [...],
                            "series": [[key, experiment, n, t0], ...]}
    padding     zero bytes up to a multiple of 8
    per series  n float64 steps, n float64 wall times, n float64 values
                (NaN or infinite where the value was)

``t0`` is the experiment's start, the origin of the relative-time axis. Every block is
cut from the stored points, read a chunk at a time (:func:`gridrun.store.metric_query.stream`),
with array slices,
never a Python object per point, so a cold answer for a whole sweep takes
milliseconds; float64 throughout is what makes that possible (float32 would need a
conversion per point), for 1.5 times the bytes of float32 values.

Series longer than the charts' budget (:func:`points_per_line`) keep every k-th point
and the last one: the same steps for every series of one length, so a sweep's lines
still share one x axis (points chosen per line, like min/max buckets, would give each
line its own steps and make the aligned data hundreds of times larger).
``max_points=0`` asks for every point; ``grid metrics -o json`` has them all too.

Why a cache: a finished experiment's series never change, so each (experiment,
metric) block is kept with the point count it had; a poll while a run is active
rebuilds only the series that grew and otherwise asks the store for the summary alone.
"""

from __future__ import annotations

import json
import struct
import sys
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from gridrun.metrics.constants import run_constants
from gridrun.store import metric_query as query
from gridrun.store.db import Store
from gridrun.store.metrics import unpack
from gridrun.store.models import Experiment, Run, Status

CacheKey = tuple[int, str, float | None, str, int | None]

# Points one chart draws at most, over all its lines. A chart is ~600 pixels wide, so
# 200 lines of 1,000 points each draw no more at 500 each; every point is kept for up
# to 100 lines (like TensorBoard's sampling, evenly spaced, first and last kept).
POINTS_PER_CHART = 100_000
MIN_POINTS_PER_LINE = 500


def search_trials(
    run: Run, summary: dict[int, dict[str, dict[str, float]]]
) -> dict[str, Any] | None:
    """A bayesian search's trials for its chart: the objective over trials, and the best.

    One point per finished trial (x: its trial number, y: its value as the search was
    told it), and the best so far after each, which is the line a search should bend
    down (or up); small, so JSON in the run's detail, not the binary series above.
    """
    from gridrun.sweep.search import best_of, objective_value

    search = run.spec.search
    if search is None:
        return None
    best = best_of(run, summary)
    trials: list[dict[str, Any]] = []
    so_far: float | None = None
    pick = min if search.direction == "minimize" else max
    for e in sorted(run.experiments, key=lambda x: x.index):
        stats = summary.get(e.id, {}).get(search.objective)
        value = objective_value(search, stats) if e.status == Status.SUCCEEDED else None
        # A pruned trial is drawn apart, at the value it was stopped at.
        stopped_at = stats.get("last") if stats and e.status == Status.PRUNED else None
        if value is not None:
            so_far = value if so_far is None else pick(so_far, value)
        trials.append(
            {
                "trial": e.index,
                "name": e.name,
                "status": e.status.value,
                "value": value,
                "best_so_far": so_far,
                "pruned_at": stopped_at,
                "prune_reason": e.prune_reason,
            }
        )
    return {
        **search.to_dict(),
        "num_trials": run.spec.num_trials,
        "state": run.search,
        "best": {"name": best[0].name, "value": best[1], "params": best[0].params}
        if best
        else None,
        "trials": trials,
    }


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


def encode_series(stored: bytes, max_points: int | None) -> bytes:
    """One series block (steps, wall times, values: float64 columns) from its stored
    points, thinned to at most ``max_points`` by a whole stride plus the last point."""
    flat = unpack(stored)
    return encode_stream([flat], len(flat) // 3, max_points)


def encode_stream(chunks: Iterable[array[float]], count: int, max_points: int | None) -> bytes:
    """A series block from its stored chunks, read one at a time: only the points kept
    are ever held, so a 10-million-point series costs one chunk of memory
    and the block it becomes. ``count`` (from the summary) sets the stride; points
    logged since then are read too, and the last point read always ends the line."""
    stride = 1
    if max_points is not None and count > max_points:
        stride = count if max_points <= 1 else -(-(count - 1) // (max_points - 1))
    cols = [array("d"), array("d"), array("d")]
    seen = 0
    last: array[float] | None = None
    for flat in chunks:
        n = len(flat) // 3
        if not n:
            continue
        first = -seen % stride  # the chunk's first index on the stride
        for k in range(3):
            cols[k].extend(flat[3 * first + k :: 3 * stride])
        seen += n
        last = flat[3 * (n - 1) : 3 * n]
    if last is None:
        return b""
    if (seen - 1) % stride:  # the last point always: a live line ends where it is now
        for k in range(3):
            cols[k].append(last[k])
    if stride > 1 and max_points is not None and max_points <= 1:
        cols = [array("d", [last[k]]) for k in range(3)]  # room for one point: the latest
    # Array slices only: no float object is made per point, which is what keeps a cold
    # answer for a whole sweep within milliseconds.
    if sys.byteorder == "big":
        for c in cols:
            c.byteswap()
    return b"".join(c.tobytes() for c in cols)


def run_metrics(
    store: Store,
    exps: list[Experiment],
    cache: SeriesCache,
    keys: list[str] | None = None,
    max_points: int | None = None,
) -> bytes:
    """The body of ``/api/runs/<name>/metrics`` (the layout is in the module doc)."""
    ids = [e.id for e in exps]
    summary = query.summary(store, ids) if ids else {}
    all_keys = sorted({k for s in summary.values() for k in s})
    if keys is None:  # a value that never changes is a parameter, not a chart
        flat = run_constants(summary)
        all_keys = [k for k in all_keys if k not in flat]
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
    by_id = {e.id: e for e in exps}
    for exp_id, ks in stale.items():
        exp = by_id[exp_id]
        for k in ks:
            count = int(summary[exp_id][k]["count"])
            block = encode_stream(query.stream(store, exp_id, k), count, max_points)
            if not block:
                continue
            blocks[(exp_id, k)] = block
            cache.put((exp_id, exp.name, exp.started_at, k, max_points), count, block)
    index: list[list[str | int | float]] = []
    body: list[bytes] = []
    for k in wanted:
        for e in exps:
            found = blocks.get((e.id, k))
            if found:
                t0 = e.started_at if e.started_at is not None else _first(found)
                index.append([k, e.name, len(found) // 24, t0])
                body.append(found)
    header = json.dumps(
        {"keys": wanted, "experiments": [e.name for e in exps], "series": index},
        separators=(",", ":"),
    ).encode()
    pad = b"\0" * (-(4 + len(header)) % 8)
    return b"".join([struct.pack("<I", len(header)), header, pad, *body])


def _first(block: bytes) -> float:
    """A block's first wall time: the time origin of an experiment with no start."""
    n = len(block) // 24
    return float(struct.unpack_from("<d", block, 8 * n)[0])
