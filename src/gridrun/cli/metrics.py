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


@click.command(short_help="Compare the metrics of a run's experiments.")
@click.argument("name")
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
@click.pass_context
def metrics(ctx: click.Context, name: str, sort: str | None, fmt: str | None) -> None:
    """Show each experiment's parameters and each metric's last, minimum and maximum.

    Metrics are read, with no change to the script, from `key: value` and `key=value`
    lines it prints, TensorBoard event files and metrics.csv files it writes.
    """
    from gridrun.store import metric_query as query

    fmt = fmt or output_of(ctx)
    store = open_store(ctx, read_only=True)
    run, exps = find_target(store, name)
    ids = [e.id for e in exps]
    stats = query.summary(store, ids)
    exps = _sorted(exps, stats, sort)
    keys = sorted({k for s in stats.values() for k in s})
    params = _param_keys(exps)
    if fmt == "json":
        from gridrun.cli.output import emit_json

        points = query.series(store, ids)
        emit_json(
            [
                {
                    "run": run.name,
                    "experiment": e.name,
                    "status": e.status.value,
                    "params": e.params,
                    "metrics": {
                        k: {
                            **{s: _number(v) for s, v in stats[e.id][k].items() if s != "count"},
                            "count": int(stats[e.id][k]["count"]),
                            "series": [
                                [_number(step), wall, _number(v)]
                                for step, wall, v in points[e.id].get(k, [])
                            ],
                        }
                        for k in stats[e.id]
                    },
                }
                for e in exps
            ]
        )
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

    rows = []
    for e in exps:
        cells = []
        for k in keys:
            st = stats[e.id].get(k)
            cells.append(
                f"{_cell(st['last'])} [{_cell(st['min'])}, {_cell(st['max'])}]" if st else "-"
            )
        rows.append(
            [e.name, status_text(e.status.value), *[e.params.get(p, "-") for p in params], *cells]
        )
    console.print(table(["Experiment", "Status", *params, *keys], rows))
    if keys:
        console.print("Each metric: last [min, max].", markup=False)
    else:
        console.print(
            "No metrics recorded yet. gridrun reads `key: value` or `key=value` lines, "
            "TensorBoard event files and metrics.csv files.",
            markup=False,
        )
