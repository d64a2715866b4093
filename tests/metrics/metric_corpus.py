"""The labelled corpus of real training logs under ``tests/metrics/logs/``, and how
well the stdout reader does on it; shared by ``test_metric_precision.py`` and
``benchmarks/bench_metric_precision.py``.

Each ``NAME.log`` is what one real script printed (stdout and stderr together, bytes
as they came: carriage returns of progress bars included), captured by running it;
``NAME.json`` says which framework printed it, the command, the versions, and by
hand which names are its metrics (what a person would chart or compare) and which
printed numbers are not (``parameters``: seeds, arguments, parameter counts).
``logs/capture/`` holds the scripts that are not pytorch/examples' own.

Scores, for one log or summed over a framework's logs:

* precision: of the series charted (read, and not constant:
  :func:`gridrun.metrics.constants.split_constants`), the share that are metrics;
* recall: of the metrics, the share read at all (charted, or shown as a value when
  the log prints it once or never changing, as Lightning's rich bar does when not on
  a terminal);
* charted recall: of the metrics, the share charted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from gridrun.logs import format_line
from gridrun.metrics.constants import split_constants
from gridrun.metrics.shapes import LineShapes
from gridrun.metrics.stdout import Patterns, StdoutParser
from gridrun.store.metrics import Columns, Point

LOGS = Path(__file__).resolve().parent / "logs"
START = 1796119200.0  # 2026-12-01T10:00:00Z


@dataclass
class Labelled:
    name: str
    framework: str
    command: str
    raw: str
    metrics: set[str]
    parameters: set[str]


@dataclass
class Score:
    charted: set[str] = field(default_factory=set)
    read: set[str] = field(default_factory=set)
    true_charted: int = 0
    true_read: int = 0
    true: int = 0
    n_charted: int = 0

    def add(self, other: Score) -> None:
        self.true_charted += other.true_charted
        self.true_read += other.true_read
        self.true += other.true
        self.n_charted += other.n_charted

    @property
    def precision(self) -> float:
        return self.true_charted / self.n_charted if self.n_charted else 1.0

    @property
    def recall(self) -> float:
        return self.true_read / self.true if self.true else 1.0

    @property
    def charted_recall(self) -> float:
        return self.true_charted / self.true if self.true else 1.0


def load() -> list[Labelled]:
    out = []
    for label in sorted(LOGS.glob("*.json")):
        meta = json.loads(label.read_text())
        raw = label.with_suffix(".log").read_bytes().decode("utf-8", errors="replace")
        out.append(
            Labelled(
                label.stem,
                meta["framework"],
                meta["command"],
                raw,
                set(meta["metrics"]),
                set(meta["parameters"]),
            )
        )
    return out


def output_log(raw: str) -> str:
    """``raw`` as gridrun's LogSink writes it to ``output.log``: a line per ``\\n``."""
    lines = raw.split("\n")
    if lines and not lines[-1]:
        lines.pop()
    return "".join(format_line("stdout", t, START + i * 1e-3) for i, t in enumerate(lines))


def read(raw: str, *, by_line: bool = False) -> dict[str, list[Point]]:
    """The series the stdout reader finds in a raw log, through ``feed_log`` (what
    ingest calls) or one line at a time."""
    parser = StdoutParser(Patterns(), None, LineShapes())
    out: dict[str, list[Point] | Columns] = {}
    text = output_log(raw)
    if by_line:
        for line in text.split("\n"):
            parser.feed_log_line(line, out)  # type: ignore[arg-type]
    else:
        parser.feed_log(text, out)
    return {
        k: list(zip(v.steps, v.walls, v.values, strict=True)) if isinstance(v, Columns) else v
        for k, v in out.items()
    }


def score(log: Labelled) -> Score:
    series = read(log.raw)
    charted, _constants = split_constants(series)
    s = Score(charted=set(charted), read=set(series))
    s.true = len(log.metrics)
    s.n_charted = len(charted)
    s.true_charted = len(log.metrics & set(charted))
    s.true_read = len(log.metrics & set(series))
    return s
