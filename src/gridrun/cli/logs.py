"""``grid logs EXPERIMENT|RUN``: ``[build]``, ``[stdout]``, ``[stderr]`` lines with timestamps."""

from __future__ import annotations

import sys

import click

from gridrun.cli.common import find_target, home_of, open_store, output_of
from gridrun.store.models import Status


@click.command(short_help="Print an experiment's (or a run's) logs.")
@click.argument("name")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until it ends.")
@click.option("-l", "--tail-lines", "tail_lines", type=int, help="Only the last N lines.")
@click.option(
    "--show-build-logs",
    "show_build",
    is_flag=True,
    help="Include the environment build's [build] lines.",
)
@click.pass_context
def logs(
    ctx: click.Context, name: str, follow: bool, tail_lines: int | None, show_build: bool
) -> None:
    """Print logs of an experiment, or of every experiment of a run."""
    from gridrun.agent.builder import build_log_path
    from gridrun.cli.follow import Tail, follow_run
    from gridrun.logs import parse_line

    home = home_of(ctx)
    store = open_store(ctx, read_only=True)
    run, exps = find_target(store, name)
    building = run.status in (Status.BUILDING, Status.FAILED) and run.env_ref is None
    show_build = show_build or building
    if len(exps) == 1 and exps[0].status == Status.PENDING and not follow:
        click.echo("Experiment is pending. Logs will be available when experiment starts.")
        return
    if follow:
        sys.exit(follow_run(home, run.name, show_build, None, [e.name for e in exps], tail_lines))
    labelled = len(exps) > 1
    tails = []
    if show_build:
        tails.append(Tail(build_log_path(home, run.name), "build" if labelled else None))
    tails += [
        Tail(home.experiment_dir(e.name) / "output.log", e.name if labelled else None) for e in exps
    ]
    lines: list[str] = []
    for t in tails:
        lines += t.read()
        if t.partial:
            lines.append(f"{t.label} | {t.partial}" if t.label else t.partial)
    if tail_lines is not None:
        lines = lines[-tail_lines:] if tail_lines > 0 else []
    if output_of(ctx) == "json":
        from gridrun.cli.output import emit_json

        records = []
        for ln in lines:
            label, _, rest = ln.partition(" | ") if labelled else ("", "", ln)
            parsed = parse_line(rest or ln)
            if parsed:
                records.append(
                    {
                        "experiment": label or exps[0].name,
                        "stream": parsed[0],
                        "timestamp": parsed[1],
                        "line": parsed[2],
                    }
                )
        emit_json(records)
        return
    if not lines and all(e.status == Status.PENDING for e in exps):
        click.echo("Experiment is pending. Logs will be available when experiment starts.")
        return
    out = sys.stdout
    for ln in lines:
        out.write(ln + "\n")
