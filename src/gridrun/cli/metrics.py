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
    store: Any, run_name: str, exps: list[Experiment], stats: dict[int, dict[str, Any]]
) -> None:
    """Every point of every series as JSON, written while it is read: memory stays at
    one stored chunk however many points a series holds (10 million lines printed)."""
    import json

    from gridrun.store import metric_query as query

    out = sys.stdout
    dumps = json.dumps
    out.write("[")
    for i, e in enumerate(exps):
        head = {"run": run_name, "experiment": e.name, "status": e.status.value, "params": e.params}
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
        _write_json(store, run.name, exps, stats)
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
