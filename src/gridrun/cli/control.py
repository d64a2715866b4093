"""``grid stop`` and ``grid delete``: for a run (all its experiments) or one experiment."""

from __future__ import annotations

import shutil

import click

from gridrun.cli.common import home_of, open_store, output_of
from gridrun.errors import NotFoundError, UsageError
from gridrun.home import GridHome
from gridrun.store.db import Store
from gridrun.store.models import Experiment, Run


def _targets(store: Store, kind: str, names: tuple[str, ...]) -> list[tuple[Run, list[Experiment]]]:
    out = []
    for name in names:
        if kind == "run":
            run = store.get_run(name)
            out.append((run, run.experiments))
        else:
            exp = store.find_experiment(name)
            if exp is None:
                raise NotFoundError(
                    f"No experiment named '{name}'.",
                    hint="`grid status RUN` lists a run's experiments.",
                )
            out.append((store.get_run_by_id(exp.run_id), [exp]))
    return out


KIND = click.Choice(["run", "experiment"])


@click.command(short_help="Stop a run (every experiment) or one experiment.")
@click.argument("kind", type=KIND)
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def stop(ctx: click.Context, kind: str, names: tuple[str, ...]) -> None:
    """Stop runs or experiments: SIGTERM, then SIGKILL after the grace period.

    Pending experiments of a run are stopped too, so a sweep stops as one thing.
    """
    from gridrun.agent.stopping import stop_experiments, stop_run
    from gridrun.cli.output import console, emit_json
    from gridrun.config import load_machine_config

    home = home_of(ctx)
    store = open_store(ctx)
    grace = load_machine_config(home.config_path).stop_grace_seconds
    result = {}
    if kind == "run":
        # Not through _targets: a run's experiments (10^5 in a large sweep) are never
        # loaded to stop them; the store stops the queued ones in one statement.
        runs = [store.get_run(name, with_experiments=False) for name in names]
        for run in runs:
            result[run.name] = stop_run(home, store, run.id, grace)
    else:
        for run, exps in _targets(store, kind, names):
            result[run.name] = stop_experiments(home, store, exps, grace)
    if output_of(ctx) == "json":
        emit_json(result)
        return
    for run_name, stopped in result.items():
        if stopped:
            console.print(f"Stopped {len(stopped)} experiment(s) of {run_name}.", markup=False)
        else:
            console.print(f"Nothing to stop in {run_name}: it is not active.", markup=False)


@click.command(short_help="Rehearse a spot reclaim: preempt running experiments.")
@click.argument("names", nargs=-1, required=True)
@click.option("--no-wait", "no_wait", is_flag=True, help="Return once the SIGTERM is sent.")
@click.pass_context
def preempt(ctx: click.Context, names: tuple[str, ...], no_wait: bool) -> None:
    """Preempt EXPERIMENT(s) (or every running experiment of a RUN) as a cloud would.

    The script gets SIGTERM, has the grace period (stop_grace_seconds, 30 s) to save a
    checkpoint and exit, and is killed after it. Under --auto_resume the experiment
    then goes back to the queue and runs the same command again in the same working
    directory, with GRID_RESTART_COUNT one higher; without it, it fails "preempted".
    Test your checkpoint logic here before paying for spot machines.
    """
    from gridrun.agent.preempting import preempt_experiments
    from gridrun.cli.common import find_target
    from gridrun.cli.output import console, emit_json
    from gridrun.config import load_machine_config

    home = home_of(ctx)
    store = open_store(ctx)
    grace = load_machine_config(home.config_path).stop_grace_seconds
    targets = [e for name in names for e in find_target(store, name)[1]]
    results = preempt_experiments(home, store, targets, grace, wait=not no_wait)
    if output_of(ctx) == "json":
        emit_json([r.as_json() for r in results])
        return
    for r in results:
        console.print(f"{r.name}: {r.message}", markup=False, soft_wrap=True)
    if not any(r.preempted for r in results):
        raise UsageError(
            "Nothing was preempted: only running experiments can be.",
            hint="`grid status RUN` shows which are running.",
        )


@click.command(short_help="Delete a run or an experiment with its logs and artifacts.")
@click.argument("kind", type=click.Choice(["run", "experiment", "cluster"]))
@click.argument("names", nargs=-1, required=True)
@click.option(
    "--force",
    is_flag=True,
    help="Stop it first if it is still active (a cluster: only ever forgotten, as Grid's "
    "--force did).",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Accepted, as Grid's for a cluster: forgetting one is immediate.",
)
@click.pass_context
def delete(ctx: click.Context, kind: str, names: tuple[str, ...], force: bool, wait: bool) -> None:
    """Delete runs or experiments: their records, logs and artifacts.

    Then `grid gc` runs: snapshot files, manifests and environments that no remaining
    run uses are removed too, so a deleted run leaves no copy of its files.

    `grid delete cluster NAME` is `grid clusters rm NAME`: gridrun forgets the name and
    stops nothing, since it created none of the cluster's machines.
    """
    from gridrun.agent.builder import build_log_path
    from gridrun.agent.stopping import stop_experiments
    from gridrun.cli.output import console
    from gridrun.config import load_machine_config

    home = home_of(ctx)
    if kind == "cluster":
        from gridrun import clusters

        for name in names:
            clusters.remove(home, name)
            console.print(f"Cluster {name} removed from this GRID_HOME (nothing was stopped).")
        return
    # Read first, write last: on a disk without a byte left, even opening the store
    # for writing fails (SQLite's -shm and -wal files), so the targets are found with
    # a reader and their folders removed before the store is opened to write. The
    # space they held is what the records' deletion then writes with (issue 21).
    store = open_store(ctx, read_only=True)
    targets = _targets(store, kind, names)
    active = [e for _run, exps in targets for e in exps if e.status.active]
    if active and not force:
        raise UsageError(
            f"{', '.join(e.name for e in active)} still active.",
            hint="Stop it first or pass --force.",
        )
    if active:  # stopping writes: it needs the store open for writing first
        store.close()
        store = open_store(ctx)
        grace = load_machine_config(home.config_path).stop_grace_seconds
        for _run, exps in targets:
            stop_experiments(home, store, [e for e in exps if e.status.active], grace)
    for run, exps in targets:
        for e in exps:
            shutil.rmtree(home.experiment_dir(e.name), ignore_errors=True)
        if kind == "run" or len(run.experiments) == len(exps):
            shutil.rmtree(build_log_path(home, run.name).parent, ignore_errors=True)
    if store.readonly:
        store.close()
        store = open_store(ctx)
    for run, exps in targets:
        if kind == "run" or len(run.experiments) == len(exps):
            store.delete_run(run.id)
            console.print(f"Deleted run {run.name}.", markup=False)
        else:
            for e in exps:
                store.delete_experiment(e.id)
                console.print(f"Deleted experiment {e.name}.", markup=False)
    _collect_after_delete(home, store)


def _collect_after_delete(home: GridHome, store: Store) -> None:
    """The records are gone whatever happens here; a collection that cannot run (a
    read-only disk) is reported in one line, and `grid gc` can be run again later."""
    from gridrun.cli.output import console
    from gridrun.errors import StateError
    from gridrun.gc import collect

    try:
        freed = collect(home, store)
    except StateError as exc:
        console.print(f"Warning: {exc.message} Run `grid gc` later.", markup=False)
        return
    console.print(freed.summary(), markup=False)


@click.command(short_help="Remove snapshot files and environments no run uses.")
@click.pass_context
def gc(ctx: click.Context) -> None:
    """Remove what no remaining run references: snapshot objects and manifests, cached
    environments and leftover experiment folders. Anything modified in the last 15
    minutes is kept (a `grid run` may be taking its snapshot); datastores are not touched.
    `grid delete` runs this itself."""
    from gridrun.cli.output import console, emit_json
    from gridrun.gc import collect

    home = home_of(ctx)
    freed = collect(home, open_store(ctx))
    if output_of(ctx) == "json":
        emit_json(freed.as_json())
    else:
        console.print(freed.summary(), markup=False)
