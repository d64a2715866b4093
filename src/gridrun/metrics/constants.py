"""Series whose value never changes are parameters, not charts.

A script prints many numbers once or the same every time: its seed (``Random Seed:
4242``), its arguments (``{'epochs': 3, 'lr': 0.05}``), a model's parameter count, a
constant learning rate. Read from stdout they are series like any other, but a chart
of a flat line says nothing; they read better as a value next to the experiment's
parameters. Which is which is decided when series are shown, not when they are
stored: an experiment still running may print a second, different value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from gridrun.store.metrics import Point

S = TypeVar("S", bound=Sequence[Point])


def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)  # NaN is the same as NaN here


def is_constant(values: Iterable[float]) -> bool:
    """True when every value is the same (NaN equal to NaN); so for one value too."""
    it = iter(values)
    first = next(it, None)
    if first is None:
        return False
    return all(_same(first, v) for v in it)


def split_constants(series: Mapping[str, S]) -> tuple[dict[str, S], dict[str, float]]:
    """``(charted, constants)`` of one experiment's series, ``key -> [(step, wall,
    value)]`` as :func:`gridrun.store.metric_query.series` returns them: a series
    whose value never changes goes to ``constants`` as that value, the others stay
    series. An empty series is neither."""
    charted: dict[str, S] = {}
    constants: dict[str, float] = {}
    for key, points in series.items():
        if not points:
            continue
        if is_constant(p[2] for p in points):
            constants[key] = points[0][2]
        else:
            charted[key] = points
    return charted, constants


def constant_keys(summary: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The constants of one experiment from its :func:`gridrun.store.metric_query.summary`
    (``key -> {"last", "min", "max", "count"}``) without reading any point: min equal
    to max, and last equal to both (NaN, ignored by min and max, would differ)."""
    out: dict[str, float] = {}
    for key, s in summary.items():
        if s["count"] >= 1 and _same(s["min"], s["max"]) and _same(s["last"], s["min"]):
            out[key] = s["last"]
    return out


def run_constants(
    summaries: Mapping[int, Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[int, float]]:
    """Keys constant in every experiment of a run (or a comparison) that has them, with
    each experiment's value: ``{key: {experiment id: value}}``.

    A key that changes in any one experiment stays a chart for all of them, so a sweep
    whose learning rate is constant in some experiments and scheduled in others still
    shows every line.
    """
    per_exp = {exp_id: constant_keys(s) for exp_id, s in summaries.items()}
    keys = {k for s in summaries.values() for k in s}
    out: dict[str, dict[int, float]] = {}
    for key in sorted(keys):
        having = [exp_id for exp_id, s in summaries.items() if key in s]
        if having and all(key in per_exp[exp_id] for exp_id in having):
            out[key] = {exp_id: per_exp[exp_id][key] for exp_id in having}
    return out
