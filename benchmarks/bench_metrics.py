"""Metrics ingestion and reading, next to what a user would do by hand.

Prints, side by side:

* ingesting a million ``[stdout]`` metric lines of ``output.log`` into the store
  (the issue's bound: under 10 s), next to ``grep -oE`` pulling one key's numbers out
  of the same file (what a user does without gridrun, with no storage at all);
* the next pass after 1,000 more lines (incremental: no reparse from the start);
* lines that repeat no shape (a clock printed on each), which the block path of
  :mod:`gridrun.metrics.shapes` cannot take: the general path's cost per line;
* reading 100,000 scalars from a TensorBoard event file with gridrun's reader, next
  to TensorBoard's own ``EventFileLoader`` when the ``tensorboard`` package is there;
* the read API on 200 experiments x 1,000 points x 3 metrics (the dashboard's run
  page): ``series`` for every point, ``series(max_points=200)`` and ``summary``.

    python benchmarks/bench_metrics.py [--lines 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gridrun.metrics.ingest import IngestTarget, ingest_experiment
from gridrun.specs import ExperimentSpec, RunSpec
from gridrun.store import metric_query as query
from gridrun.store.db import Store
from gridrun.store.metrics import SourceState, commit_batch


def make_store(path: Path, experiments: int) -> tuple[Store, list[int]]:
    store = Store(path)
    store.create_run(
        name="bench",
        backend="local",
        spec=RunSpec.from_dict({}),
        env_key=None,
        experiments=[ExperimentSpec(i, ("t.py",), {"lr": str(i)}) for i in range(experiments)],
    )
    return store, [e.id for e in store.get_run("bench").experiments]


def write_log(path: Path, lines: int) -> None:
    with open(path, "w") as fh:
        for i in range(lines):
            us = i % 1_000_000
            if i % 10 == 9:
                fh.write(f"[stderr] [2026-12-01T10:00:00.{us:06d}+00:00] a line without metrics\n")
            else:
                fh.write(
                    f"[stdout] [2026-12-01T10:00:00.{us:06d}+00:00] epoch: {i // 1000} "
                    f"step={i} loss: {1 / (i + 1):.6f} acc={i / lines:.4f}\n"
                )


def bench_stdout(tmp: Path, lines: int) -> None:
    log = tmp / "output.log"
    write_log(log, lines)
    store, ids = make_store(tmp / "stdout.db", 1)
    target = IngestTarget(ids[0], log)
    t0, c0 = time.perf_counter(), time.process_time()
    points = ingest_experiment(store, target, final=True)
    ours, cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    grep = subprocess.run(
        ["grep", "-oE", "loss: [0-9.e+-]+", str(log)], capture_output=True, check=True
    )
    by_hand = time.perf_counter() - t0
    print(f"stdout: {lines:,} lines, {log.stat().st_size / 1e6:.0f} MB")
    print(
        f"  gridrun ingest into the store   {ours:6.2f} s  ({points:,} points, all keys; "
        f"{cpu:.2f} s of CPU)"
    )
    print(
        f"  grep -oE 'loss: ...' (no store) {by_hand:6.2f} s  "
        f"({grep.stdout.count(b'loss'):,} matches, one key)"
    )
    with open(log, "a") as fh:
        for i in range(1000):
            fh.write(f"[stdout] [2026-12-01T11:00:00.{i:06d}+00:00] step={lines + i} loss: 0.1\n")
    t0 = time.perf_counter()
    more = ingest_experiment(store, target, final=True)
    ms = (time.perf_counter() - t0) * 1e3
    print(f"  next pass, 1,000 new lines      {ms:6.1f} ms ({more:,} points)")


def bench_varied(tmp: Path, lines: int) -> None:
    """Lines of no repeated shape (the script logs its own clock on each line, as
    Python's logging with %(asctime)s does): every line goes the general way."""
    log = tmp / "varied.log"
    with open(log, "w") as fh:
        for i in range(lines):
            us = i % 1_000_000
            fh.write(
                f"[stdout] [2026-12-01T10:00:00.{us:06d}+00:00] 10:00:{i % 60:02d},{i % 1000:03d}"
                f" INFO step={i} loss: {1 / (i + 1):.6f} acc={i / lines:.4f}\n"
            )
    store, ids = make_store(tmp / "varied.db", 1)
    c0 = time.process_time()
    points = ingest_experiment(store, IngestTarget(ids[0], log), final=True)
    cpu = time.process_time() - c0
    print(
        f"  {lines:,} lines of no repeated shape {cpu:6.2f} s of CPU ({points:,} points; "
        f"{cpu / lines * 1e6:.1f} us a line, the general path)"
    )


def bench_tensorboard(tmp: Path, events: int) -> None:
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        print("tensorboard: tensorboardX not installed (pip install -e '.[dev]'); skipped")
        return
    from gridrun.metrics.tfevents import read_events

    logdir = tmp / "tb"
    w = SummaryWriter(str(logdir), flush_secs=3600, max_queue=10_000)
    for s in range(events):
        w.add_scalar("loss", 1 / (s + 1), s)
    w.close()
    (path,) = logdir.glob("events.out.tfevents.*")
    t0 = time.perf_counter()
    offset, state, n, more = 0, {}, 0, True
    while more:
        b = read_events(path, offset, state, 8 << 20)
        offset, state, more = b.offset, b.state, b.more
        n += sum(len(p) for p in b.points.values())
    ours = time.perf_counter() - t0
    print(f"tensorboard: {events:,} scalars, {path.stat().st_size / 1e6:.1f} MB")
    print(f"  gridrun's reader                {ours:6.2f} s  ({n:,} scalars)")
    try:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    except ImportError:
        print("  tensorboard's EventFileLoader    (tensorboard not installed)")
        return
    t0 = time.perf_counter()
    count = sum(len(e.summary.value) for e in EventFileLoader(str(path)).Load())
    print(f"  tensorboard's EventFileLoader   {time.perf_counter() - t0:6.2f} s  ({count:,})")


def bench_query(tmp: Path, experiments: int, points: int) -> None:
    store, ids = make_store(tmp / "query.db", experiments)
    for i, exp_id in enumerate(ids):
        series = {
            k: [(float(s), 1.7e9 + s, (i + 1) / (s + 1)) for s in range(points)]
            for k in ("loss", "acc", "val_loss")
        }
        commit_batch(store, exp_id, "log", SourceState(), 1, {}, series)
    reader = Store(store.path)

    def timed(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best * 1e3

    print(f"read API: {experiments} experiments x {points:,} points x 3 metrics")
    print(f"  series(), every point           {timed(lambda: query.series(reader, ids)):6.1f} ms")
    print(
        f"  series(keys=['loss'])           "
        f"{timed(lambda: query.series(reader, ids, keys=['loss'])):6.1f} ms"
    )
    print(
        f"  series(max_points=200)          "
        f"{timed(lambda: query.series(reader, ids, max_points=200)):6.1f} ms"
    )
    print(f"  summary()                       {timed(lambda: query.summary(reader, ids)):6.1f} ms")


def calibrate() -> None:
    """How fast this machine runs Python right now: shared machines vary by 5x or more."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(2000):
        sum(range(1000))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"machine: sum(range(1000)) takes {wall / 2000 * 1e6:.1f} us "
        f"({cpu / 2000 * 1e6:.1f} us of CPU), to compare figures across machines"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--varied-lines", type=int, default=200_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gridrun-bench-metrics-"))
    try:
        calibrate()
        bench_stdout(tmp, args.lines)
        bench_varied(tmp, args.varied_lines)
        bench_tensorboard(tmp, args.events)
        bench_query(tmp, 200, 1000)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
