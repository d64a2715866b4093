"""Points and offsets commit together; the read API returns what was written."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from gridrun.store import metric_query as query
from gridrun.store.db import Store
from gridrun.store.metrics import CHUNK_POINTS, SourceState, commit_batch, load_sources
from gridrun.store.schema import SCHEMA, SCHEMA_VERSION

pytestmark = pytest.mark.unit


def test_points_and_summary_round_trip(store: Store, exp_ids: list[int]) -> None:
    a, b, _c = exp_ids
    src = SourceState()
    pts = [(float(i), 100.0 + i, 1.0 / (i + 1)) for i in range(10)]
    assert commit_batch(store, a, "log", src, 50, {"n": {}}, {"loss": pts})
    assert commit_batch(store, b, "log", SourceState(), 10, {}, {"acc": [(0, 1, 0.5)]})
    got = query.series(store, [a, b, exp_ids[2]])
    assert got[a]["loss"] == pts and got[b] == {"acc": [(0, 1, 0.5)]} and got[exp_ids[2]] == {}
    s = query.summary(store, [a])[a]["loss"]
    assert s == {"last": 0.1, "min": 0.1, "max": 1.0, "count": 10.0}
    assert query.keys(store, store.get_run("metric-run").id) == ["acc", "loss"]
    assert query.series(store, [a], keys=["acc"]) == {a: {}}
    assert load_sources(store, a)["log"].offset == 50


def test_appends_fill_chunks_and_stay_sorted(store: Store, exp_ids: list[int]) -> None:
    a = exp_ids[0]
    src = SourceState()
    total = CHUNK_POINTS * 2 + 7
    step = 0
    for offset, size in enumerate((1, 3, CHUNK_POINTS + 1, 5, CHUNK_POINTS - 3), start=1):
        pts = [(float(step + i), 0.0, float(step + i)) for i in range(size)]
        step += size
        assert commit_batch(store, a, "log", src, offset, {}, {"x": pts})
    assert step == total
    got = query.series(store, [a])[a]["x"]
    assert [p[0] for p in got] == [float(i) for i in range(total)]
    chunks = store.conn.execute("SELECT n FROM metric_chunks ORDER BY seq").fetchall()
    assert [r[0] for r in chunks] == [CHUNK_POINTS, CHUNK_POINTS, 7]


def test_out_of_order_steps_come_back_sorted(store: Store, exp_ids: list[int]) -> None:
    a = exp_ids[0]
    commit_batch(store, a, "log", SourceState(), 1, {}, {"x": [(5, 0, 1), (1, 0, 2), (3, 0, 3)]})
    assert [p[0] for p in query.series(store, [a])[a]["x"]] == [1, 3, 5]


def test_lost_race_writes_nothing(store: Store, exp_ids: list[int]) -> None:
    a = exp_ids[0]
    mine, theirs = SourceState(), SourceState()
    assert commit_batch(store, a, "log", theirs, 10, {}, {"x": [(0, 0, 1)]})
    assert not commit_batch(store, a, "log", mine, 10, {}, {"x": [(0, 0, 1)]})
    stale = SourceState(offset=0, known=True)
    assert not commit_batch(store, a, "log", stale, 10, {}, {"x": [(0, 0, 1)]})
    assert query.summary(store, [a])[a]["x"]["count"] == 1


def test_first_source_owns_a_key(store: Store, exp_ids: list[int]) -> None:
    a = exp_ids[0]
    commit_batch(store, a, "tb:runs/events", SourceState(), 1, {}, {"loss": [(0, 0, 1)]})
    commit_batch(store, a, "log", SourceState(), 1, {}, {"loss": [(0, 0, 9)], "acc": [(0, 0, 2)]})
    got = query.series(store, [a])[a]
    assert got == {"loss": [(0, 0, 1)], "acc": [(0, 0, 2)]}


def test_nan_and_inf_in_summary(store: Store, exp_ids: list[int]) -> None:
    a = exp_ids[0]
    pts = [(0, 0, 1.0), (1, 0, math.inf), (2, 0, -2.0), (3, 0, math.nan)]
    commit_batch(store, a, "log", SourceState(), 1, {}, {"x": pts, "y": [(0, 0, math.nan)]})
    s = query.summary(store, [a])[a]
    assert math.isnan(s["x"]["last"]) and s["x"]["min"] == -2 and s["x"]["max"] == math.inf
    assert all(math.isnan(s["y"][k]) for k in ("last", "min", "max"))
    got = query.series(store, [a])[a]["x"]
    assert got[1][2] == math.inf and math.isnan(got[3][2])


def test_downsample_keeps_first_and_last() -> None:
    pts = [(float(i), 0.0, 0.0) for i in range(1000)]
    d = query.downsample(pts, 10)
    assert len(d) == 10 and d[0] == pts[0] and d[-1] == pts[-1]
    assert query.downsample(pts, 1) == [pts[-1]]
    assert query.downsample(pts[:5], 10) == pts[:5]
    assert query.downsample(pts, 0) == []


def test_max_points_in_series(store: Store, exp_ids: list[int]) -> None:
    a = exp_ids[0]
    pts = [(float(i), 0.0, float(i)) for i in range(500)]
    commit_batch(store, a, "log", SourceState(), 1, {}, {"x": pts})
    got = query.series(store, [a], max_points=50)[a]["x"]
    assert len(got) == 50 and got[-1] == pts[-1]


def test_deleting_an_experiment_deletes_its_metrics(store: Store, exp_ids: list[int]) -> None:
    a = exp_ids[0]
    commit_batch(store, a, "log", SourceState(), 1, {}, {"x": [(0, 0, 1)]})
    store.delete_run(store.get_run("metric-run").id)
    for table in ("metric_series", "metric_chunks", "metric_sources"):
        assert store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.execute(
        "INSERT INTO runs (name, created_at, backend, status, spec) VALUES"
        " ('old-run', 0, 'local', 'succeeded', '{}')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = Store(path)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.get_run("old-run").name == "old-run"
    assert query.summary(store, []) == {}


def test_max_points_on_unsorted_series_sorts_first(store: Store, exp_ids: list[int]) -> None:
    a = exp_ids[0]
    pts = [(float(s), 0.0, float(s)) for s in (9, 1, 5, 3, 7, 0, 2, 8, 4, 6)]
    commit_batch(store, a, "log", SourceState(), 1, {}, {"x": pts})
    got = query.series(store, [a], max_points=4)[a]["x"]
    assert [p[0] for p in got] == [0, 3, 6, 9]


def test_max_points_edge_cases(store: Store, exp_ids: list[int]) -> None:
    a = exp_ids[0]
    pts = [(float(s), 0.0, float(s)) for s in range(10)]
    commit_batch(store, a, "log", SourceState(), 1, {}, {"x": pts})
    for m, want in ((0, []), (1, [9.0]), (2, [0.0, 9.0]), (10, [float(s) for s in range(10)])):
        assert [p[0] for p in query.series(store, [a], max_points=m)[a]["x"]] == want


def test_stream_gives_every_point_sorted_a_chunk_at_a_time(
    store: Store, exp_ids: list[int]
) -> None:
    a, b = exp_ids[0], exp_ids[1]
    n = CHUNK_POINTS * 2 + 7
    ordered = [(float(i), 0.0, float(i) / 2) for i in range(n)]
    commit_batch(store, a, "log", SourceState(), 1, {}, {"x": ordered})
    shuffled = [(float(i * 7919 % n), 0.0, float(i)) for i in range(n)]
    commit_batch(store, b, "log", SourceState(), 1, {}, {"x": shuffled})
    for exp in (a, b):
        chunks = list(query.stream(store, exp, "x"))
        assert all(len(c) <= 3 * CHUNK_POINTS for c in chunks) and len(chunks) == 3
        flat = [v for c in chunks for v in c]
        got = list(zip(flat[0::3], flat[1::3], flat[2::3], strict=True))
        assert got == [tuple(p) for p in query.series(store, [exp])[exp]["x"]]
    assert list(query.stream(store, a, "no-such-key")) == []
