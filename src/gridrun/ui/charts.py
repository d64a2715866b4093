"""The run page's metrics API: every experiment's series, ready for the line charts.

Why a cache: a 200-experiment sweep with 1,000 points per metric is 200,000 points
a metric, and turning them into JSON costs far more than reading them. A finished
experiment's series never change, so each (experiment, metric) is encoded once and
kept with the point count it had; a poll re-encodes only the series that grew
(the running experiments), and asks the store for nothing else.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from typing import Any

from gridrun.store.db import Store
from gridrun.store.models import Experiment

CacheKey = tuple[int, str, float | None, str, int | None]

# Points per line the charts ask for: more than a chart's width in pixels shows nothing
# more, and keeps a 200-experiment sweep's payload small.
DEFAULT_MAX_POINTS = 1000


class SeriesCache:
    """JSON fragments of one experiment's series of one key, valid while its count holds.

    Keyed by id, name and start time too, so a deleted and re-used id never hits.
    """

    def __init__(self, capacity: int = 20000) -> None:
        self._items: OrderedDict[CacheKey, tuple[int, str]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, key: CacheKey, count: int) -> str | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None or hit[0] != count:
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, key: CacheKey, count: int, fragment: str) -> None:
        with self._lock:
            self._items[key] = (count, fragment)
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)


def _finite(values: list[float]) -> list[float | None]:
    if all(map(math.isfinite, values)):
        return values  # type: ignore[return-value]
    return [v if math.isfinite(v) else None for v in values]


def encode_series(points: list[tuple[float, float, float]], start: float | None) -> str:
    """``{"step": [...], "t": [...], "v": [...]}`` with t in seconds since the start."""
    steps = [p[0] for p in points]
    t0 = start if start is not None else (points[0][1] if points else 0.0)
    times = [round(p[1] - t0, 3) for p in points]
    values = _finite([p[2] for p in points])
    return json.dumps({"step": steps, "t": times, "v": values}, separators=(",", ":"))


def run_metrics(
    store: Store,
    exps: list[Experiment],
    cache: SeriesCache,
    keys: list[str] | None = None,
    max_points: int | None = DEFAULT_MAX_POINTS,
) -> str:
    """The JSON body of ``/api/runs/<name>/metrics``.

    ``{"keys": [...], "experiments": [names], "series": {key: {exp: {...}}}}``
    """
    from gridrun.metrics import query

    ids = [e.id for e in exps]
    summary = query.summary(store, ids) if ids else {}
    all_keys = sorted({k for s in summary.values() for k in s})
    wanted = [k for k in all_keys if keys is None or k in keys]
    fragments: dict[tuple[int, str], str] = {}
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
                fragments[(e.id, k)] = hit
    if stale:
        by_exp = {e.id: e for e in exps}
        stale_keys = sorted({k for ks in stale.values() for k in ks})
        fresh = query.series(store, list(stale), stale_keys, max_points)
        for exp_id, ks in stale.items():
            exp = by_exp[exp_id]
            for k in ks:
                points = fresh.get(exp_id, {}).get(k, [])
                frag = encode_series(points, exp.started_at)
                fragments[(exp_id, k)] = frag
                cache.put(
                    (exp_id, exp.name, exp.started_at, k, max_points),
                    int(summary[exp_id][k]["count"]),
                    frag,
                )
    parts = []
    for k in wanted:
        inner = ",".join(
            f"{json.dumps(e.name)}:{fragments[(e.id, k)]}" for e in exps if (e.id, k) in fragments
        )
        parts.append(f"{json.dumps(k)}:{{{inner}}}")
    head: dict[str, Any] = {"keys": wanted, "experiments": [e.name for e in exps]}
    return json.dumps(head, separators=(",", ":"))[:-1] + ',"series":{' + ",".join(parts) + "}}"
