"""``grid status`` and ``grid history``: what is running, what ran."""

from __future__ import annotations

import shlex
from typing import Any

import click

from gridrun.cli.common import find_target, home_of, open_store, output_of
from gridrun.store.models import Experiment, Run, Status


def experiment_json(exp: Experiment, run: Run | None = None) -> dict[str, Any]:
    return {
        "name": exp.name,
        "run": exp.run_name,
        "index": exp.index,
        "status": exp.status.value,
        "exit_code": exp.exit_code,
        "error": exp.error,
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
    }


def run_json(run: Run) -> dict[str, Any]:
    counts = run.counts()
    return {
        "name": run.name,
        "status": run.derived_status().value,
        "backend": run.backend,
        "created_at": run.created_at,
        "error": run.error,
        "env_key": run.env_key,
        "env_ref": run.env_ref,
        "script": run.spec.get("script"),
        "experiments": [experiment_json(e, run) for e in run.experiments],
        "counts": {s.value: counts[s] for s in Status},
    }


def command_of(run: Run, exp: Experiment) -> str:
    script = run.spec.get("script", "")
    interpreter = "bash" if script.endswith(".sh") else "python"
    return shlex.join([interpreter, script, *exp.argv])


def _run_duration(run: Run) -> float | None:
    from gridrun.cli.output import span

    ends = [e.finished_at for e in run.experiments if e.finished_at]
    end = None if run.active else (max(ends) if ends else run.finished_at)
    return span(run.created_at, end)


def _heal(ctx: click.Context, store: Any) -> None:
    """Work without an agent (it crashed, the machine rebooted): start one to reconcile."""
    if store.has_active_work():
        from gridrun.agent.control import agent_running, start_agent

        home = home_of(ctx)
        if not agent_running(home):
            start_agent(home)


@click.command(short_help="Show active runs, or the experiments of one run.")
@click.argument("name", required=False)
@click.pass_context
def status(ctx: click.Context, name: str | None) -> None:
    """Show active runs; with NAME, the experiments of that run (or one experiment)."""
    from gridrun.cli.output import console, duration, emit_json, span, status_text, table

    store = open_store(ctx)
    _heal(ctx, store)
    as_json = output_of(ctx) == "json"
    if name:
        run, exps = find_target(store, name)
        if as_json:
            data = run_json(run)
            data["experiments"] = [experiment_json(e, run) for e in exps]
            emit_json(data)
            return
        varying = _varying_params(exps)
        rows = []
        for e in exps:
            queued_end = e.started_at or (e.finished_at if not e.status.active else None)
            rows.append(
                [
                    e.name,
                    status_text(e.status.value),
                    duration(span(e.queued_at, queued_end)),
                    duration(span(e.started_at, e.finished_at)) if e.started_at else "-",
                    *[e.params.get(p, "-") for p in varying],
                    command_of(run, e),
                ]
            )
        console.print(
            table(
                ["Experiment", "Status", "Queued Duration", "Run Duration", *varying, "Command"],
                rows,
            )
        )
        _print_errors(run, exps)
        return
    runs = store.list_runs()
    active = [r for r in runs if r.active]
    if as_json:
        emit_json([run_json(r) for r in active])
        return
    rows = []
    for r in active:
        c = r.counts()
        rows.append(
            [
                r.name,
                status_text(r.derived_status().value),
                duration(_run_duration(r)),
                len(r.experiments),
                c[Status.RUNNING],
                c[Status.PENDING] + c[Status.BUILDING],
                c[Status.SUCCEEDED],
                c[Status.FAILED],
                c[Status.STOPPED],
            ]
        )
    console.print(
        table(
            [
                "Run",
                "Status",
                "Duration",
                "Experiments",
                "Running",
                "Queued",
                "Completed",
                "Failed",
                "Stopped",
            ],
            rows,
        )
    )
    inactive = len(runs) - len(active)
    console.print(
        f"{inactive} Run(s) are not active. Use `grid history` to view your Run history.",
        markup=False,
    )


def _varying_params(exps: list[Experiment]) -> list[str]:
    """Swept parameters whose values differ between the experiments shown."""
    keys: list[str] = []
    for e in exps:
        for k in e.params:
            if k not in keys:
                keys.append(k)
    return [k for k in keys if len({e.params.get(k) for e in exps}) > 1]


def _print_errors(run: Run, exps: list[Experiment]) -> None:
    from gridrun.cli.output import console

    if run.error:
        console.print(f"[red]Run failed:[/red] {run.error}", soft_wrap=True)
    for e in exps:
        if e.error and e.error != run.error:
            console.print(f"[red]{e.name}:[/red] {e.error}", soft_wrap=True)
        elif e.status == Status.FAILED and e.exit_code not in (None, 0) and not run.error:
            console.print(f"{e.name} exited with code {e.exit_code}.", markup=False)


@click.command(short_help="List every run, newest first.")
@click.pass_context
def history(ctx: click.Context) -> None:
    """Every run, newest first."""
    from gridrun.cli.output import console, emit_json, table, when

    store = open_store(ctx)
    runs = store.list_runs()
    if output_of(ctx) == "json":
        emit_json([run_json(r) for r in runs])
        return
    rows = []
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
    console.print(
        table(["Run", "Created At", "Experiments", "Failed", "Stopped", "Completed"], rows)
    )
