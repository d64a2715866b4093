"""``grid logs EXPERIMENT|RUN``: ``[build]``, ``[stdout]``, ``[stderr]`` lines with timestamps."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

from gridrun.cli.common import find_target, home_of, open_store, output_of
from gridrun.cli.follow import Tail
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
    from gridrun.cli.follow import follow_run

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
    tails += [Tail(home.experiment(e.name).output_log, e.name if labelled else None) for e in exps]
    if tail_lines is not None:
        _start_at_last(tails, tail_lines)
    # Streamed a chunk at a time: memory stays flat whatever the size of the logs.
    if output_of(ctx) == "json":
        _write_json(_lines(tails), labelled, exps[0].name)
        return
    out = sys.stdout
    wrote = False
    for ln in _lines(tails):
        out.write(ln + "\n")
        wrote = True
    if not wrote and all(e.status == Status.PENDING for e in exps):
        click.echo("Experiment is pending. Logs will be available when experiment starts.")


def _lines(tails: list[Tail]) -> Iterator[str]:
    """Each log's whole lines, then its unfinished last line, log after log."""
    for t in tails:
        yield from t.lines()
        if t.partial:
            yield f"{t.label} | {t.partial}" if t.label else t.partial


def _start_at_last(tails: list[Tail], n: int) -> None:
    """Position the logs so that, read in order, they give the last ``n`` lines in all."""
    for t in reversed(tails):
        n -= t.skip_to_last(n)


def _write_json(lines: Iterator[str], labelled: bool, only: str) -> None:
    """A JSON array of ``{experiment, stream, timestamp, line}``, written as it is read."""
    import json

    from gridrun.logs import parse_line

    out = sys.stdout
    out.write("[")
    sep = "\n  "
    for ln in lines:
        label, _, rest = ln.partition(" | ") if labelled else ("", "", ln)
        parsed = parse_line(rest or ln)
        if parsed:
            record = {
                "experiment": label or only,
                "stream": parsed[0],
                "timestamp": parsed[1],
                "line": parsed[2],
            }
            out.write(sep + json.dumps(record))
            sep = ",\n  "
    out.write("\n]\n" if sep != "\n  " else "]\n")
