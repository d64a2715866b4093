"""``grid metrics RUN|EXPERIMENT``: one row per experiment, its parameters and metrics."""

from __future__ import annotations

import csv
import math
import sys
from typing import Any

import click

from gridrun.cli.common import find_target, open_store, output_of
from gridrun.errors import UsageError
from gridrun.store.models import Experiment

STATS = ("last", "min", "max")


def _number(value: float) -> float | str:
    """JSON has no NaN or infinity: write them as strings a reader can still parse."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _param_keys(exps: list[Experiment]) -> list[str]:
    keys: list[str] = []
    for e in exps:
        keys += [k for k in e.params if k not in keys]
    return keys


def _sorted(
    exps: list[Experiment], stats: dict[int, dict[str, dict[str, float]]], sort: str | None
) -> list[Experiment]:
    if not sort:
        return exps
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    metric_keys = {k for s in stats.values() for k in s}
    params = set(_param_keys(exps))
    if key not in metric_keys and key not in params:
        valid = sorted(metric_keys | params)
        raise UsageError(
            f"Cannot sort by '{key}': no such metric or parameter.",
            hint=f"Choose one of: {', '.join(valid)}." if valid else "No metrics recorded yet.",
        )

    def value(e: Experiment) -> tuple[int, Any]:
        if key in metric_keys:
            v = stats[e.id].get(key, {}).get("last", math.nan)
            return (1, 0.0) if math.isnan(v) else (0, -v if descending else v)
        raw = e.params.get(key)
        try:
            num: Any = float(raw) if raw is not None else None
        except ValueError:
            num = None
        if num is None:
            return (1, 0.0) if raw is None else (0, raw)
        return (0, -num if descending else num)

    try:
        return sorted(exps, key=value)
    except TypeError:  # a parameter mixing numbers and words: compare as text
        return sorted(exps, key=lambda e: str(e.params.get(key, "")), reverse=descending)


def _points_json(flat: Any) -> str:
    """``[step, wall, value], ...`` of one chunk, formatted by json in C: a Python call
    per number would take a minute for 10 million points."""
    import json

    import numpy as np

    vals = flat.tolist()
    triples = zip(vals[0::3], vals[1::3], vals[2::3], strict=True)
    if not np.isfinite(np.frombuffer(flat, dtype=np.float64)).all():
        triples = ((_number(a), b, _number(c)) for a, b, c in triples)  # type: ignore[assignment]
    return json.dumps(list(triples))[1:-1]


def _write_json(
    store: Any, runs_of: dict[int, str], exps: list[Experiment], stats: dict[int, dict[str, Any]]
) -> None:
    """Every point of every series as JSON, written while it is read: memory stays at
    one stored chunk however many points a series holds (10 million lines printed)."""
    import json

    from gridrun.store import metric_query as query

    out = sys.stdout
    dumps = json.dumps
    out.write("[")
    for i, e in enumerate(exps):
        head: dict[str, Any] = {"run": runs_of[e.id], "experiment": e.name}
        head["status"] = e.status.value
        head["params"] = e.params
        out.write(("," if i else "") + "\n  " + dumps(head)[:-1] + ', "metrics": {')
        for j, (k, st) in enumerate(stats[e.id].items()):
            summary = {s: _number(v) for s, v in st.items() if s != "count"}
            summary["count"] = int(st["count"])
            out.write(("," if j else "") + f"\n    {dumps(k)}: " + dumps(summary)[:-1])
            out.write(', "series": [')
            sep = ""
            for flat in query.stream(store, e.id, k):
                out.write(sep + _points_json(flat))
                sep = ", "
            out.write("]}")
        out.write("\n  }}" if stats[e.id] else "}}")
    out.write("\n]\n" if exps else "]\n")


def _draw_charts(store: Any, exps: list[Experiment], keys: list[str], params: list[str]) -> None:
    """One small braille chart per metric, a line per experiment, and which is which."""
    from rich.console import Group

    from gridrun.cli import termchart
    from gridrun.cli.output import console
    from gridrun.store import metric_query as query

    width = max(30, min(100, console.width - 14))
    # Two points per braille column is all a chart can show: never more is read.
    series = query.series(store, [e.id for e in exps], keys, max_points=2 * width)
    swept = [p for p in params if len({e.params.get(p) for e in exps}) > 1]
    shown = exps[: len(termchart.COLOURS)]
    labels = [" ".join([e.name, *(f"{p}={e.params.get(p, '-')}" for p in swept)]) for e in shown]
    for key in keys:
        lines = [
            termchart.Line(e.name, [p[0] for p in pts], [p[2] for p in pts])
            for e in shown
            for pts in [series[e.id].get(key, [])]
        ]
        console.print(Group(*termchart.render(key, lines, width=width)))
    console.print(termchart.legend(labels))
    if len(exps) > len(shown):
        console.print(
            f"Charts show the first {len(shown)} of {len(exps)} experiments; "
            "`grid ui` draws them all.",
            markup=False,
        )


@click.command(short_help="Compare the metrics of runs' experiments.")
@click.argument("names", nargs=-1, required=True, metavar="RUN|EXPERIMENT...")
@click.option(
    "--sort",
    "sort",
    metavar="KEY",
    help="Order by a metric's last value (or a parameter); prefix '-' for descending.",
)
@click.option(
    "-o",
    "--output",
    "fmt",
    type=click.Choice(["console", "json", "csv"]),
    help="A table (console), JSON with every point of every series, or CSV.",
)
@click.option("--no-chart", is_flag=True, help="The table alone, without the charts.")
@click.pass_context
def metrics(
    ctx: click.Context, names: tuple[str, ...], sort: str | None, fmt: str | None, no_chart: bool
) -> None:
    """Show each experiment's parameters and each metric's last, minimum and maximum,
    then a small chart of each metric with a line per experiment.

    Name several runs to compare them: `grid metrics RUN1 RUN2`. Metrics are read,
    with no change to the script, from `key: value` and `key=value` lines it prints,
    TensorBoard event files and metrics.csv files it writes.
    """
    from gridrun.store import metric_query as query

    fmt = fmt or output_of(ctx)
    store = open_store(ctx, read_only=True)
    exps: list[Experiment] = []
    runs_of: dict[int, str] = {}
    for name in dict.fromkeys(names):
        run, found = find_target(store, name)
        for e in found:
            if e.id not in runs_of:
                runs_of[e.id] = run.name
                exps.append(e)
    ids = [e.id for e in exps]
    stats = query.summary(store, ids)
    exps = _sorted(exps, stats, sort)
    keys = sorted({k for s in stats.values() for k in s})
    params = _param_keys(exps)
    if fmt == "json":
        _write_json(store, runs_of, exps, stats)
        return
    if fmt == "csv":
        header = ["experiment", "status", *params, *[f"{k} {s}" for k in keys for s in STATS]]
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(
            [
                [
                    e.name,
                    e.status.value,
                    *[e.params.get(p, "") for p in params],
                    *[
                        repr(stats[e.id][k][s]) if k in stats[e.id] else ""
                        for k in keys
                        for s in STATS
                    ],
                ]
                for e in exps
            ]
        )
        return
    from gridrun.cli.output import console, status_text, table
    from gridrun.metrics.constants import run_constants

    # A printed value that never changes (a seed) is a parameter column, not a metric.
    constants = run_constants(stats)
    keys = [k for k in keys if k not in constants]
    shown = [*params, *(k for k in constants if k not in params)]
    rows = []
    for e in exps:
        cells = []
        for k in keys:
            st = stats[e.id].get(k)
            cells.append(
                f"{_cell(st['last'])} [{_cell(st['min'])}, {_cell(st['max'])}]" if st else "-"
            )
        values = {**{k: _cell(v[e.id]) for k, v in constants.items() if e.id in v}, **e.params}
        rows.append([e.name, status_text(e.status.value), *[values.get(p, "-") for p in shown]])
        rows[-1] += cells
    console.print(table(["Experiment", "Status", *shown, *keys], rows))
    if keys:
        console.print("Each metric: last [min, max].", markup=False)
        if not no_chart:
            _draw_charts(store, exps, keys, params)
    else:
        console.print(
            "No metrics recorded yet. gridrun reads `key: value` or `key=value` lines, "
            "TensorBoard event files and metrics.csv files.",
            markup=False,
        )
