"""Helpers shared by commands: opening the store, finding runs and experiments."""

from __future__ import annotations

import click

from gridrun.errors import NotFoundError
from gridrun.home import GridHome
from gridrun.store.db import Store
from gridrun.store.models import Experiment, Run


def home_of(ctx: click.Context) -> GridHome:
    obj = ctx.find_root().obj or {}
    return obj.get("home") or GridHome.from_env()


def output_of(ctx: click.Context) -> str:
    obj = ctx.find_root().obj or {}
    return obj.get("output", "console")


def open_store(ctx: click.Context, *, read_only: bool = False) -> Store:
    """The state database; ``read_only`` for commands that never write to it.

    Only a brand-new GRID_HOME is created (and write-probed) here: on an existing one a
    full or read-only disk must not stop ``status``, ``history`` or ``logs``, nor
    ``delete`` and ``stop``, which are how a user frees the space again.
    """
    home = home_of(ctx)
    if not home.db_path.exists():
        home.ensure()
        return Store(home.db_path)
    return Store.reader(home.db_path) if read_only else Store(home.db_path)


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
