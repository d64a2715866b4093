"""Precision and recall of the stdout metric reader on real training logs, per framework.

The corpus is ``tests/metrics/logs/``: logs captured by running real code (pytorch/
examples, Lightning, Keras, Hugging Face's Trainer, a tqdm loop, Guild-style ``key:
value`` prints, pairs without colons), each labelled by hand with its true metric names
(see ``tests/metrics/metric_corpus.py``). For each framework, summed over its logs:

* precision: of the series charted (read and not constant), the share that are metrics;
* recall: of the metrics, the share read (charted, or shown as a value when printed once
  or never changing);
* charted recall: of the metrics, the share charted.

Targets (issue 19): precision >= 0.95 and recall >= 0.90; the exit status is 1 when a
framework misses one. Then the reader's speed over a big log made of the corpus' own
lines repeated (``--lines``), in lines per second of CPU time.

    python benchmarks/bench_metric_precision.py [--lines 500000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "metrics"))
from metric_corpus import Score, load, output_log, score

from gridrun.metrics.shapes import LineShapes
from gridrun.metrics.stdout import Patterns, StdoutParser

PRECISION, RECALL = 0.95, 0.90


def table() -> bool:
    """Print the per-framework table; True when every framework meets the targets."""
    by_framework: dict[str, tuple[int, Score]] = {}
    wrong: list[str] = []
    for log in load():
        s = score(log)
        n, total = by_framework.get(log.framework, (0, Score()))
        total.add(s)
        by_framework[log.framework] = (n + 1, total)
        for name in sorted(s.charted - log.metrics):
            wrong.append(f"  charted, not a metric: {log.name}: {name}")
        for name in sorted(log.metrics - s.read):
            wrong.append(f"  metric not read: {log.name}: {name}")
    head = f"{'framework':18} {'logs':>4} {'metrics':>7} {'charted':>7}"
    print(f"{head} {'precision':>9} {'recall':>6} {'charted recall':>14}")
    ok = True
    overall = Score()
    for framework, (n, s) in sorted(by_framework.items()):
        overall.add(s)
        meets = s.precision >= PRECISION and s.recall >= RECALL
        ok &= meets
        print(
            f"{framework:18} {n:4d} {s.true:7d} {s.n_charted:7d} {s.precision:9.2f}"
            f" {s.recall:6.2f} {s.charted_recall:14.2f}{'' if meets else '  below target'}"
        )
    print(
        f"{'all':18} {sum(n for n, _ in by_framework.values()):4d} {overall.true:7d}"
        f" {overall.n_charted:7d} {overall.precision:9.2f} {overall.recall:6.2f}"
        f" {overall.charted_recall:14.2f}"
    )
    print(f"targets: precision >= {PRECISION}, recall >= {RECALL}")
    print("\n".join(wrong))
    return ok


def speed(lines: int) -> None:
    """Lines per second of CPU time through ``feed_log`` (what ingest calls), over the
    corpus' lines repeated, and one line at a time."""
    # split("\n"), not splitlines(): a progress bar's carriage returns stay in its line
    corpus = [line for log in load() for line in output_log(log.raw).split("\n")[:-1]]
    text = "".join(corpus[i % len(corpus)] + "\n" for i in range(lines))
    for name, by_line in (("feed_log (blocks of 8 MB)", False), ("line by line", True)):
        parser = StdoutParser(Patterns(), None, LineShapes())
        out: dict[str, object] = {}
        t = time.process_time()
        if by_line:
            for line in text.split("\n"):
                parser.feed_log_line(line, out)  # type: ignore[arg-type]
        else:
            step = 8 << 20
            start = 0
            while start < len(text):
                end = text.find("\n", start + step) + 1 or len(text)
                parser.feed_log(text[start:end], out)
                start = end
        took = time.process_time() - t
        print(f"speed, {name:26} {lines / took:12,.0f} lines/s ({lines:,} lines, {took:.2f} s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=500_000, help="lines for the speed check")
    args = ap.parse_args()
    ok = table()
    print()
    speed(args.lines)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
