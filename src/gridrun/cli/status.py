"""``grid status`` and ``grid history``: what is running, what ran."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

import click

from gridrun.cli.common import find_target, global_option, home_of, open_store, output_of
from gridrun.home import GridHome
from gridrun.store.models import Experiment, Run, Status

if TYPE_CHECKING:  # `grid -o json status` imports no rich (gridrun.cli.jsonout)
    from rich.console import RenderableType
    from rich.table import Table


def node_of(exp: Experiment) -> str | None:
    """Where an engine ran the experiment (a Ray node), when its backend recorded it."""
    from gridrun.home import GridHome

    try:
        return (GridHome.from_env().experiment_node_file(exp.name)).read_text().strip() or None
    except OSError:
        return None


def engine_queued(exp: Experiment, node: str | None) -> bool:
    """Handed to an engine that has not placed it yet (its node says ``queued in ...``)."""
    return exp.status == Status.RUNNING and bool(node) and str(node).startswith("queued")


def experiment_json(exp: Experiment, run: Run | None = None) -> dict[str, Any]:
    node = node_of(exp)
    return {
        "name": exp.name,
        "run": exp.run_name,
        "index": exp.index,
        "status": exp.status.value,
        # "queued" while an engine (Ray, Slurm) holds it waiting for a node.
        "engine_state": "queued" if engine_queued(exp, node) else None,
        "exit_code": exp.exit_code,
        "error": exp.error,
        "prune_reason": exp.prune_reason,
        "ending": exp.ending,
        "restarts": exp.restarts + exp.retries,
        "preemptions": exp.preemptions,
        "failure_retries": exp.retries,
        "command": command_of(run, exp) if run else None,
        "argv": exp.argv,
        "params": exp.params,
        "cpus": exp.cpus,
        "gpus": exp.gpus,
        "gpu_ids": exp.gpu_ids,
        "memory": exp.memory,
        "queued_at": exp.queued_at,
        "started_at": exp.started_at,
        "finished_at": exp.finished_at,
        "node": node,
    }


def environment_names(run: Run) -> dict[str, list[str]] | None:
    """The run's environment variables by name: values stay in the owner-only record."""
    from gridrun import runenv
    from gridrun.home import GridHome

    return runenv.names(GridHome.from_env().root, run.name, run.backend)


def run_json(run: Run, with_experiments: bool = True) -> dict[str, Any]:
    counts = run.counts()
    return {
        "name": run.name,
        "status": run.derived_status().value,
        "backend": run.backend,
        "created_at": run.created_at,
        "error": run.error,
        "env_key": run.env_key,
        "repo": f"{run.spec.repo}@{run.spec.commit}" if run.spec.repo else None,
        "snapshot": run.spec.snapshot_hash,
        "env_ref": run.env_ref,
        "script": run.spec.script,
        "project": project_of(run),
        "instance_type": run.spec.instance_type,
        "use_spot": run.spec.use_spot,
        "framework": run.spec.framework,
        "torch_build": run.spec.env.torch_build.describe() if run.spec.env.torch_build else None,
        "environment": environment_names(run),
        "experiments": [experiment_json(e, run) for e in run.experiments]
        if with_experiments
        else [],
        "counts": {s.value: counts[s] for s in Status},
        "restarts": sum(e.restarts + e.retries for e in run.experiments),
        "preemptions": sum(e.preemptions for e in run.experiments),
        "failure_retries": sum(e.retries for e in run.experiments),
        "auto_resume": run.spec.auto_resume,
        "max_restarts": run.spec.max_restarts,
        "retries_on_failure": run.spec.retries_on_failure,
        "search": search_json(run),
    }


def search_json(run: Run, store: Any = None) -> dict[str, Any] | None:
    """A bayesian search's objective, pruner and state; with ``store``, its best trial."""
    search = run.spec.search
    if search is None:
        return None
    out: dict[str, Any] = {
        **search.to_dict(),
        "num_trials": run.spec.num_trials,
        "trials": len(run.experiments),
        "state": run.search,
    }
    if store is not None:
        from gridrun.sweep.search import best_trial

        best = best_trial(run, store)
        out["best"] = (
            {"experiment": best[0].name, "value": best[1], "params": best[0].params}
            if best
            else None
        )
    return out


def search_line(run: Run, store: Any) -> str | None:
    """``Best so far: r-exp7 val_loss 0.2386 (lr=0.000356, layers=4); 14 of 14 trials, ...``"""
    from gridrun.sweep.search import best_trial

    search = run.spec.search
    if search is None:
        return None
    c = run.counts()
    total = run.spec.num_trials or len(run.experiments)
    done = sum(c[s] for s in Status if s.finished)
    extra = f", {c[Status.PRUNED]} pruned" if c[Status.PRUNED] else ""
    state = {"open": "searching", "done": "search done", "stopped": "search stopped"}.get(
        run.search or "", "searching"
    )
    counts = f"{done} of {total} trials finished{extra}; {state}"
    best = best_trial(run, store)
    if best is None and c[Status.SUCCEEDED]:
        # The usual cause: a typo in --objective, or a metric printed under another name.
        from gridrun.store.metric_query import keys

        found = ", ".join(keys(store, run.id)) or "none"
        return (
            f"Best so far: none: no finished trial printed {search.objective} "
            f"(metrics read: {found}); {counts}."
        )
    if best is None:
        return f"Best so far: none yet ({search.objective}); {counts}."
    exp, value = best
    params = ", ".join(f"{k}={v}" for k, v in exp.params.items())
    return f"Best so far: {exp.name} {search.objective} {value:.6g} ({params}); {counts}."


def project_of(run: Run) -> str:
    """The Project column: the git remote's owner/repo, else the folder name."""
    return run.spec.project or run.spec.project_name or "-"


def command_of(run: Run, exp: Experiment) -> str:
    from gridrun.specs import script_command

    return shlex.join([*script_command(run.spec.script), *exp.argv])


def _run_duration(run: Run, now: float | None = None) -> float | None:
    from gridrun.cli.output import span

    ends = [e.finished_at for e in run.experiments if e.finished_at]
    end = None if run.active else (max(ends) if ends else run.finished_at)
    return span(run.created_at, end, now)


RUN_COLUMNS = (
    "Run",
    "Project",
    "Status",
    "Duration",
    "Experiments",
    "Running",
    "Queued",
    "Completed",
    "Failed",
    "Stopped",
)


def runs_table(active: list[Run], width: int, now: float | None = None) -> Table:
    """Grid's ``grid status`` table; a five-column layout where ten do not fit.

    Grid's ten columns need about 110 terminal columns. Rather than split headers
    mid-word (``Durati``/``on``), a narrower terminal gets the counts in one
    ``Experiments`` cell (``4: 1 running, 3 queued``) that wraps between words.
    """
    from gridrun.cli.output import Col, duration, fits, status_text, table

    right = {"Project", "Duration"}
    columns = [Col(c, "right" if c in right else None) for c in RUN_COLUMNS]
    rows: list[list[Any]] = []
    for r in active:
        c = r.counts()
        rows.append(
            [
                r.name,
                project_of(r),
                status_text(r.derived_status().value),
                duration(_run_duration(r, now)),
                len(r.experiments),
                c[Status.RUNNING],
                c[Status.PENDING] + c[Status.BUILDING],
                c[Status.SUCCEEDED],
                c[Status.FAILED],
                c[Status.STOPPED],
            ]
        )
    if not rows:
        rows = [["None Active.", *[""] * (len(columns) - 1)]]
        columns = [Col(c.header, c.justify or "right") for c in columns]
        columns[0] = Col("Run", "left")
        columns[2] = Col("Status", "left")
    if fits(columns, rows, width):
        return table(columns, rows)
    compact = [
        columns[0],
        columns[1],
        Col("Status", "left", keep=True),
        Col("Duration", "right", keep=True),
        Col("Experiments", "left"),
    ]
    short_rows = []
    for row in rows:
        project = str(row[1]).replace("/", "/\n")  # wrap owner/repo at its slash
        short_rows.append([row[0], project, row[2], row[3], _counts_text(row[4:])])
    if fits(compact, short_rows, width):
        return table(compact, short_rows)
    # Long --name values: everything but the name in one cell that wraps between words.
    details = [
        [row[0], "  ".join(str(c) for c in (row[1], row[2], row[3], _counts_text(row[4:])) if c)]
        for row in rows
    ]
    return table([Col("Run"), Col("Project, Status, Duration, Experiments", "left")], details)


def _counts_text(counts: list[Any]) -> str:
    if counts[0] == "":
        return ""
    words = ("running", "queued", "completed", "failed", "stopped")
    parts = [f"{n} {w}" for n, w in zip(counts[1:], words, strict=True) if n]
    return f"{counts[0]}: {', '.join(parts)}" if parts else str(counts[0])


def history_table(runs: list[Run], width: int) -> Table:
    """Grid's ``grid history`` table; ``Exps`` for ``Experiments`` where space is short."""
    from gridrun.cli.output import Col, fits, table, when

    rows: list[list[Any]] = []
    for r in runs:
        c = r.counts()
        rows.append(
            [
                r.name,
                when(r.created_at),
                len(r.experiments),
                c[Status.FAILED],
                c[Status.STOPPED],
                c[Status.SUCCEEDED],
            ]
        )
    full = ["Run", "Created At", "Experiments", "Failed", "Stopped", "Completed"]
    # Narrower and narrower forms, each used only when the one before does not fit.
    layouts = [
        (full, False),
        (["Run", "Created At", "Exps", "Failed", "Stopped", "Completed"], False),
        (["Run", "Created At", "Exps", "Failed", "Stopped", "Completed"], True),
        (["Run", "Created At", "Exps", "Fail", "Stop", "Done"], True),
    ]
    for headers, two_lines in layouts:
        columns = [Col(h, "right", keep=h == "Created At") for h in headers]
        columns[0] = Col("Run")
        shown = [[r[0], r[1].replace(" ", "\n", 1) if two_lines else r[1], *r[2:]] for r in rows]
        if fits(columns, shown, width):
            break
    return table(columns, shown)


def experiments_table(
    run: Run, exps: list[Experiment], width: int = 200, now: float | None = None
) -> RenderableType:
    """``grid status RUN``: one row per experiment, swept values that differ as columns.

    Where the Command column cannot fit, the commands follow the table, one a line.
    """
    from rich.console import Group
    from rich.text import Text

    from gridrun.cli.output import Col, duration, fits, span, status_text, table

    varying = _varying_params(exps)
    # Restarts, where the run can restart (--auto_resume, --retries_on_failure) or an
    # experiment was preempted: ordinary runs keep Grid's columns.
    restarts = bool(run.spec.auto_resume or run.spec.retries_on_failure) or any(
        e.preemptions or e.retries for e in exps
    )
    nodes = {e.name: node_of(e) for e in exps}
    with_nodes = any(nodes.values())  # an engine (Ray) recorded where each one ran
    rows = []
    for e in exps:
        waiting = engine_queued(e, nodes[e.name])  # an engine holds it: not running yet
        queued_end = None if waiting else e.started_at
        queued_end = queued_end or (e.finished_at if not e.status.active else None)
        ran = e.started_at and not waiting
        rows.append(
            [
                e.name,
                status_text("queued" if waiting else e.status.value),
                duration(span(e.queued_at, queued_end, now)),
                duration(span(e.started_at, e.finished_at, now)) if ran else "-",
                *([restarts_text(e)] if restarts else []),
                *[e.params.get(p, "-") for p in varying],
                *([nodes[e.name] or "-"] if with_nodes else []),
                command_of(run, e),
            ]
        )
    columns = [
        Col("Experiment"),
        Col("Status", keep=True),
        Col("Queued Duration", "right", keep=True),
        Col("Run Duration", "right", keep=True),
        *([Col("Restarts", keep=True)] if restarts else []),
        *[Col(p) for p in varying],
        *([Col("Node")] if with_nodes else []),
        Col("Command"),
    ]
    if fits(columns, rows, width):
        return table(columns, rows)
    lines = [Text(f"{row[0]}: {row[-1]}") for row in rows]
    return Group(table(columns[:-1], [row[:-1] for row in rows]), Text(""), *lines)


DEFAULT_LIMIT = 100  # experiment rows drawn by `grid status RUN` without --all


def page_of(exps: list[Experiment], limit: int | None) -> list[Experiment]:
    """The experiments a table shows: all of them when they fit ``limit`` (None: no
    limit), else the running and the failed first, then the rest, in index order.

    A sweep of 20,000 took 18 to 36 s to draw (issue 21); as ``kubectl get`` and
    ``squeue`` do, the summary counts stand for the rows left out.
    """
    if limit is None or len(exps) <= limit:
        return exps
    first = (Status.RUNNING, Status.FAILED)
    urgent = [e for e in exps if e.status in first]
    urgent.sort(key=lambda e: (first.index(e.status), e.index))
    rest = [e for e in exps if e.status not in first]
    return (urgent + rest)[:limit]


def summary_line(exps: list[Experiment], shown: int) -> str:
    """``20000 experiments: 16 running, 19,950 queued, 34 failed; showing 100 ...``."""
    counts: dict[Status, int] = {}
    for e in exps:
        counts[e.status] = counts.get(e.status, 0) + 1
    words = {Status.PENDING: "queued", Status.SUCCEEDED: "completed"}
    order = (Status.RUNNING, Status.FAILED, Status.BUILDING, Status.PENDING, Status.SUCCEEDED)
    parts = [
        f"{counts[s]:,} {words.get(s, s.value)}" for s in (*order, Status.STOPPED) if counts.get(s)
    ]
    return (
        f"{len(exps):,} experiments: {', '.join(parts)}. Showing {shown:,} "
        "(running and failed first); --all shows every one, --limit N the first N."
    )


@click.command(short_help="Show active runs, or the experiments of one run.")
@click.argument("name", required=False)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help=f"With NAME: show at most this many experiments (default {DEFAULT_LIMIT}, "
    "running and failed first).",
)
@click.option("--all", "show_all", is_flag=True, help="With NAME: show every experiment.")
@global_option
@click.pass_context
def status(
    ctx: click.Context, name: str | None, limit: int | None, show_all: bool, global_: bool
) -> None:
    """Show active runs; with NAME, the experiments of that run (or one experiment)."""
    from gridrun.cli.jsonout import emit_json

    store = open_store(ctx, read_only=True)
    as_json = output_of(ctx) == "json"
    if name:
        run, exps = find_target(store, name)
        if as_json:
            # Every experiment unless --limit is given: scripts read them all.
            shown = exps if show_all else page_of(exps, limit)
            data = run_json(run, with_experiments=False)
            data["experiments"] = [experiment_json(e, run) for e in shown]
            data["build_warnings"] = _build_warnings(ctx, run)
            data["search"] = search_json(run, store)
            emit_json(data)
            return
        from gridrun.cli.output import console

        shown = exps if show_all else page_of(exps, limit or DEFAULT_LIMIT)
        console.print(experiments_table(run, shown, console.width), soft_wrap=False)
        if len(shown) < len(exps):
            console.print(summary_line(exps, len(shown)), markup=False, highlight=False)
        _print_errors(run, shown, home_of(ctx))
        best = search_line(run, store)
        if best:
            console.print(best, markup=False, highlight=False, soft_wrap=True)
        if run.spec.repo:
            console.print(
                f"repository: {run.spec.repo}@{run.spec.commit}", markup=False, highlight=False
            )
        if run.spec.env.torch_build is not None:
            console.print(run.spec.env.torch_build.describe(), markup=False, highlight=False)
        for warning in _build_warnings(ctx, run):
            console.print(f"[yellow]Build:[/yellow] {warning}", soft_wrap=True, highlight=False)
        return
    runs = store.list_runs()
    active = [r for r in runs if r.active]
    if as_json:
        emit_json([run_json(r) for r in active])
        return
    from gridrun.cli.output import console

    console.print(runs_table(active, console.width))
    inactive = len(runs) - len(active)
    console.print(
        f"\n{inactive} Run(s) are not active. Use `grid history` to view your Run history.",
        markup=False,
    )
    # Grid's second table: sessions (gridrun.sessions), "None Active." when none.
    from gridrun.cli.session import sessions_table
    from gridrun.sessions.reconcile import reconcile

    console.print("Interactive Nodes", markup=False)
    console.print(sessions_table(reconcile(store, home_of(ctx).root)))


def _build_warnings(ctx: click.Context, run: Run) -> list[str]:
    """What the build dropped or pinned (inferred requirements are best effort)."""
    from gridrun.agent.builder import load_build_warnings

    return load_build_warnings(home_of(ctx), run.name)


def restarts_text(e: Experiment) -> str:
    """Preemptions and failure retries, counted apart: ``2 preempted, 1 failed``."""
    parts = []
    if e.preemptions:
        parts.append(f"{e.preemptions} preempted")
    if e.retries:
        parts.append(f"{e.retries} failed")
    return f"{e.restarts + e.retries} ({', '.join(parts)})" if parts else "0"


def _varying_params(exps: list[Experiment]) -> list[str]:
    """Swept parameters whose values differ between the experiments shown."""
    keys: list[str] = []
    for e in exps:
        for k in e.params:
            if k not in keys:
                keys.append(k)
    return [k for k in keys if len({e.params.get(k) for e in exps}) > 1]


def _print_errors(run: Run, exps: list[Experiment], home: GridHome) -> None:
    from gridrun.cli.output import console
    from gridrun.hints import experiment_hint

    if run.error:
        console.print(f"[red]Run failed:[/red] {run.error}", soft_wrap=True)
    for e in exps:
        if e.status == Status.PRUNED:
            reason = e.prune_reason or e.error or "stopped early by its search"
            console.print(f"{e.name} pruned: {reason}", markup=False, soft_wrap=True)
        elif e.error and e.status.active:
            # Queued again or running again: the reason is history, not a failure.
            what = "preempted" if e.ending == "preempted" else "failed"
            console.print(f"{e.name}: last {what}: {e.error}", markup=False, soft_wrap=True)
        elif e.error and e.error != run.error:
            console.print(f"[red]{e.name}:[/red] {e.error}", soft_wrap=True)
        elif e.status == Status.FAILED and e.exit_code not in (None, 0) and not run.error:
            console.print(f"{e.name} exited with code {e.exit_code}.", markup=False)
        if e.status == Status.FAILED:
            hint = experiment_hint(home.experiment_dir(e.name), e.exit_code, e.memory)
            if hint:
                console.print(f"[yellow]Hint:[/yellow] {e.name}: {hint}", soft_wrap=True)


@click.command(short_help="List every run, newest first.")
@global_option
@click.pass_context
def history(ctx: click.Context, global_: bool) -> None:
    """Every run, newest first."""
    from gridrun.cli.output import console, emit_json

    store = open_store(ctx, read_only=True)
    runs = store.list_runs()
    if output_of(ctx) == "json":
        emit_json([run_json(r) for r in runs])
        return
    console.print(history_table(runs, console.width))
