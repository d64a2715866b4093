"""The metrics API's binary body: stored points out with array slices, thinned evenly."""

from __future__ import annotations

import json
import math
import struct
from itertools import pairwise
from pathlib import Path

import pytest

from gridrun.specs import ExperimentSpec, RunSpec
from gridrun.store.db import Store
from gridrun.store.metrics import SourceState, commit_batch, pack
from gridrun.ui.charts import SeriesCache, encode_series, run_metrics

pytestmark = pytest.mark.unit


def _columns(block: bytes) -> tuple[list[float], list[float], list[float]]:
    n = len(block) // 24
    flat = struct.unpack(f"<{3 * n}d", block)
    return list(flat[:n]), list(flat[n : 2 * n]), list(flat[2 * n :])


def test_a_short_series_goes_out_whole_and_exact() -> None:
    pts = [(0.0, 10.0, 1.0), (1.0, 11.5, math.inf), (2.0, 12.0, math.nan)]
    steps, walls, values = _columns(encode_series(pack(pts), None))
    assert steps == [0, 1, 2] and walls == [10, 11.5, 12]
    assert values[0] == 1 and values[1] == math.inf and math.isnan(values[2])
    assert encode_series(b"", 10) == b""


def test_thinning_keeps_first_and_last_within_the_budget() -> None:
    for n in range(1, 40):
        pts = [(float(i), float(i), float(i)) for i in range(n)]
        for budget in range(1, 12):
            steps, _w, values = _columns(encode_series(pack(pts), budget))
            assert len(steps) <= budget and steps[-1] == n - 1 and values == steps
            if budget > 1:
                assert steps[0] == 0
                gaps = {b - a for a, b in pairwise(steps[:-1])}
                assert len(gaps) <= 1, (n, budget, steps)  # one stride, then the last


def test_every_series_of_one_length_keeps_the_same_steps() -> None:
    a = [(float(i), 0.0, float(i)) for i in range(1000)]
    b = [(float(i), 5.0, -float(i)) for i in range(1000)]
    assert _columns(encode_series(pack(a), 500))[0] == _columns(encode_series(pack(b), 500))[0]


def _body(body: bytes) -> tuple[dict, list[bytes]]:  # type: ignore[type-arg]
    (hlen,) = struct.unpack_from("<I", body)
    header = json.loads(body[4 : 4 + hlen])
    off = 4 + hlen + (-(4 + hlen) % 8)
    blocks = []
    for _key, _exp, n, _t0 in header["series"]:
        blocks.append(body[off : off + 24 * n])
        off += 24 * n
    assert off == len(body)
    return header, blocks


def test_run_metrics_body_and_cache(tmp_path: Path) -> None:
    store = Store(tmp_path / "grid.db")
    store.create_run(
        name="r",
        backend="local",
        spec=RunSpec.from_dict({}),
        env_key=None,
        experiments=[ExperimentSpec(i, ("t.py",)) for i in range(2)],
    )
    exps = store.get_run("r").experiments
    src = SourceState()
    # Out of order on purpose: the API sends points sorted by step.
    commit_batch(store, exps[0].id, "log", src, 1, {}, {"loss": [(2, 12, 0.2), (0, 10, 1.0)]})
    acc = {"acc": [(0, 20, 0.5), (1, 21, 0.6)], "seed": [(0, 20, 42.0)]}
    commit_batch(store, exps[1].id, "log", SourceState(), 1, {}, acc)
    cache = SeriesCache()
    header, blocks = _body(run_metrics(store, exps, cache))
    assert header["keys"] == ["acc", "loss"]  # the seed never changes: not a chart
    index = [s[:3] for s in header["series"]]
    assert index == [["acc", exps[1].name, 2], ["loss", exps[0].name, 2]]
    assert header["series"][1][3] == 10  # no start time recorded: the first point's
    assert _columns(blocks[1]) == ([0, 2], [10, 12], [1.0, 0.2])
    # A new point is seen at once: the cached block is only valid for its count.
    commit_batch(store, exps[0].id, "log", src, 2, {}, {"loss": [(3, 13, 0.1)]})
    _header, blocks = _body(run_metrics(store, exps, cache))
    assert _columns(blocks[1])[0] == [0, 2, 3]
    _header, blocks = _body(run_metrics(store, exps, cache, keys=["loss"], max_points=2))
    assert _columns(blocks[0])[0] == [0, 3]
