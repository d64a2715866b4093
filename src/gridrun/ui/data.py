"""What the pages show, as plain data: the same records ``grid status`` prints.

The JSON shapes reuse the CLI's (:func:`gridrun.cli.status.run_json`) so the
dashboard and ``grid -o json status`` never disagree about a run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gridrun.cli.output import duration, span
from gridrun.cli.status import command_of, experiment_json, run_json
from gridrun.home import GridHome
from gridrun.metrics.constants import run_constants
from gridrun.store.models import Experiment, Run, Status

# Metrics whose best value is the largest; every other metric is best when smallest.
_HIGHER_IS_BETTER = ("acc", "f1", "auc", "precision", "recall", "score", "reward", "iou", "map")


def higher_is_better(key: str) -> bool:
    k = key.lower()
    return any(word in k for word in _HIGHER_IS_BETTER)


def run_duration(run: Run) -> float | None:
    ends = [e.finished_at for e in run.experiments if e.finished_at]
    end = None if run.active else (max(ends) if ends else run.finished_at)
    return span(run.created_at, end)


def run_row(run: Run) -> dict[str, Any]:
    """One line of the runs page: ``grid status`` and ``grid history`` columns together."""
    c = run.counts()
    return {
        "name": run.name,
        "status": run.derived_status().value,
        "active": run.active,
        "backend": run.backend,
        "script": run.spec.script,
        "created_at": run.created_at,
        "duration": duration(run_duration(run)),
        "experiments": len(run.experiments),
        "running": c[Status.RUNNING],
        "queued": c[Status.PENDING] + c[Status.BUILDING],
        "completed": c[Status.SUCCEEDED],
        "failed": c[Status.FAILED],
        "stopped": c[Status.STOPPED],
        "pruned": c[Status.PRUNED],
    }


def param_names(exps: list[Experiment]) -> list[str]:
    """Every parameter name, in first-seen order; the swept ones first."""
    names: list[str] = []
    for e in exps:
        for k in e.params:
            if k not in names:
                names.append(k)
    varying = [k for k in names if len({e.params.get(k) for e in exps}) > 1]
    return varying + [k for k in names if k not in varying]


def run_detail(run: Run, summary: dict[int, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """The run page's data: the run, each experiment with its metrics' last/min/max."""
    data = run_json(run)
    row = run_row(run)
    row.pop("experiments")  # the count; the list from run_json stays
    data.update(row)
    data["params"] = param_names(run.experiments)
    data["varying"] = [
        k for k in data["params"] if len({e.params.get(k) for e in run.experiments}) > 1
    ]
    # A printed value that never changes (a seed, a parameter count) is a parameter of
    # the experiment, not a metric to chart: it joins the parameter columns.
    ids = [e.id for e in run.experiments]
    constants = run_constants({i: summary.get(i, {}) for i in ids})
    data["params"] += [k for k in constants if k not in data["params"]]
    data["constants"] = sorted(constants)
    keys: list[str] = sorted({k for s in summary.values() for k in s} - set(constants))
    data["metrics"] = [{"key": k, "higher_is_better": higher_is_better(k)} for k in keys]
    out = []
    for e, ej in zip(run.experiments, data["experiments"], strict=True):
        ej["id"] = e.id
        ej["duration"] = duration(span(e.started_at, e.finished_at)) if e.started_at else "-"
        mine = summary.get(e.id, {})
        ej["metrics"] = {k: _clean(v) for k, v in mine.items() if k not in constants}
        for k, values in constants.items():
            if e.id in values and k not in ej["params"]:
                ej["params"] = {**ej["params"], k: number(values[e.id])}
        out.append(ej)
    data["experiments"] = out
    from gridrun.ui.charts import search_trials

    data["search"] = search_trials(run, summary)
    best = (data["search"] or {}).get("best") or {}
    for ej in out:
        ej["best"] = ej["name"] == best.get("name")
    data["api"] = f"/api/runs/{quote(run.name)}"
    data["metrics_api"] = f"/api/runs/{quote(run.name)}/metrics"
    return data


_COUNTS = ("running", "queued", "completed", "failed", "stopped")


def compare_detail(
    runs: list[Run], summary: dict[int, dict[str, dict[str, float]]]
) -> dict[str, Any]:
    """Several runs' experiments on one page, as one run's page shows its own: the
    table gains a Run column, parameters and metrics are the union of the runs'."""
    details = [run_detail(r, summary) for r in runs]
    exps = []
    for d in details:
        exps += [{**e, "run": d["name"]} for e in d["experiments"]]
    params: list[str] = []
    for d in details:
        params += [p for p in d["params"] if p not in params]
    keys = sorted({m["key"] for d in details for m in d["metrics"]})
    names = [r.name for r in runs]
    query = "runs=" + quote(",".join(names))
    return {
        "name": " vs ".join(names),
        "runs": names,
        "compare": True,
        "status": "running" if any(d["active"] for d in details) else "succeeded",
        "active": any(d["active"] for d in details),
        "duration": "-",
        "script": ", ".join(sorted({d["script"] for d in details})),
        "backend": ", ".join(sorted({d["backend"] for d in details})),
        "params": params,
        "varying": [k for k in params if len({e["params"].get(k) for e in exps}) > 1],
        "metrics": [{"key": k, "higher_is_better": higher_is_better(k)} for k in keys],
        "experiments": exps,
        **{c: sum(d[c] for d in details) for c in _COUNTS},
        "api": f"/api/compare?{query}",
        "metrics_api": f"/api/compare/metrics?{query}",
    }


def _clean(stats: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN or infinity: they become null (shown as '-')."""
    import math

    return {k: (v if isinstance(v, int) or math.isfinite(v) else None) for k, v in stats.items()}


def experiment_detail(run: Run, exp: Experiment) -> dict[str, Any]:
    data = experiment_json(exp, run)
    data["id"] = exp.id
    data["command"] = command_of(run, exp)
    data["duration"] = duration(span(exp.started_at, exp.finished_at)) if exp.started_at else "-"
    data["active"] = exp.status.active
    return data


def display_name(name: str) -> str:
    """A file name as text a page or JSON can carry: undecodable bytes (``os.fsdecode``
    keeps them as surrogates, which no encoder accepts) become U+FFFD."""
    return os.fsencode(name).decode("utf-8", "replace")


def artifacts_of(home: GridHome, exp: Experiment) -> list[dict[str, Any]]:
    """The files an experiment saved, as ``grid artifacts`` would copy them.

    ``path`` is for showing; ``href`` is the download address, the name's own bytes
    percent-encoded, so a file whose name is not UTF-8 still downloads."""
    root = home.experiment(exp.name).artifacts
    base = f"/experiments/{quote(exp.name)}/artifacts/"
    files = []
    if root.is_dir():
        for dirpath, _dirs, names in os.walk(root):
            for fn in names:
                p = Path(dirpath) / fn
                try:
                    st = p.lstat()
                except OSError:
                    continue  # removed while listed
                rel = p.relative_to(root).as_posix()
                files.append(
                    {
                        "path": display_name(rel),
                        "href": base + quote(os.fsencode(rel)),
                        "size": st.st_size,
                        "mtime": st.st_mtime,
                    }
                )
    return sorted(files, key=lambda f: f["path"])


def artifact_path(home: GridHome, exp: Experiment, rel: str | bytes) -> Path | None:
    """The artifact file at ``rel``, or None when it is missing or escapes the folder."""
    root = (home.experiment(exp.name).artifacts).resolve()
    target = (root / (os.fsdecode(rel) if isinstance(rel, bytes) else rel)).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        return None
    return target


def number(v: float | None) -> str:
    """A metric value as the tables show it: 5 significant digits, '-' for none."""
    if v is None:
        return "-"
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.5g}"


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def age(ts: float | None) -> str:
    if ts is None:
        return "-"
    from gridrun.cli.output import when

    return when(ts) if time.time() - ts > 0 else "-"
