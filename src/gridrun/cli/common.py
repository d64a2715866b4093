"""Helpers shared by commands: opening the store, finding runs and experiments."""

from __future__ import annotations

import click

from gridrun.errors import NotFoundError
from gridrun.home import GridHome
from gridrun.store.db import Store
from gridrun.store.models import Experiment, Run

#: Grid's ``--global`` (everyone in the team): a GRID_HOME has one user, whose runs,
#: sessions and datastores are all listed anyway, so the flag is accepted and changes
#: nothing. One option object, so the commands that take it say the same thing.
global_option = click.option(
    "--global",
    "global_",
    is_flag=True,
    help="Accepted, as Grid's: a GRID_HOME has one user, so everything is listed anyway.",
)


def cluster_named(ctx: click.Context, name: str | None) -> None:
    """Check a Grid ``--cluster`` given to a command whose data is the same on every
    cluster (datastores live in GRID_HOME): an unknown name is refused, listing them."""
    if name:
        from gridrun import clusters

        clusters.load(home_of(ctx)).get(name)


def home_of(ctx: click.Context) -> GridHome:
    obj = ctx.find_root().obj or {}
    return obj.get("home") or GridHome.from_env()


def output_of(ctx: click.Context) -> str:
    obj = ctx.find_root().obj or {}
    return obj.get("output", "console")


def open_store(ctx: click.Context, *, read_only: bool = False) -> Store:
    """The state database, with an agent brought back if work waits and none serves it.

    ``read_only`` for commands that never write to it. Only a brand-new GRID_HOME is
    created (and write-probed) here: on an existing one a full or read-only disk must
    not stop ``status``, ``history`` or ``logs``, nor ``delete`` and ``stop``, which
    are how a user frees the space again.
    """
    home = home_of(ctx)
    if not home.db_path.exists():
        home.ensure()
        store = Store(home.db_path)
    else:
        store = Store.reader(home.db_path) if read_only else Store(home.db_path)
    heal(home, store)
    return store


def heal(home: GridHome, store: Store) -> None:
    """Work without an agent (it crashed, the machine rebooted): start one.

    Every command that reads state calls this (``grid logs -f`` every few seconds
    too), so pending work never waits for `grid run`; it costs one lock probe and one
    indexed query. Not on a read-only store: an agent could not work there.
    """
    if not store.readonly and store.has_active_work():
        from gridrun.agent.control import agent_running, start_agent

        if not agent_running(home):
            start_agent(home)


def find_target(store: Store, name: str) -> tuple[Run, list[Experiment]]:
    """A run name gives all its experiments; an experiment name gives that one."""
    run = store.find_run(name)
    if run is not None:
        return run, run.experiments
    exp = store.find_experiment(name)
    if exp is not None:
        run = store.get_run_by_id(exp.run_id)
        return run, [e for e in run.experiments if e.id == exp.id]
    raise NotFoundError(
        f"No run or experiment named '{name}'.", hint="`grid history` lists every run."
    )
