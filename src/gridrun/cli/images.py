"""``grid images``: the Docker images gridrun cached, and pruning them.

The command line only: what an image is, when it is in use and how pruning works live
with the Docker backend (:mod:`gridrun.backends.docker.images`).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from gridrun.cli.common import home_of, open_store, output_of
from gridrun.errors import UsageError

if TYPE_CHECKING:
    from gridrun.backends.docker.images import CachedImage


def _active_refs(ctx: click.Context) -> set[str]:
    store = open_store(ctx)
    try:
        refs: set[str] = set()
        for run in store.list_runs():
            if run.derived_status().active:
                refs.update(r for r in (run.env_ref, run.env_key) if r)
        # A live docker session (gridrun.sessions) holds its run's image, paused or not.
        from gridrun.store.sessions import live

        for s in live(store):
            if s.backend == "docker":
                refs.update(r for r in (s.env_ref, s.env_key) if r)
        return refs
    finally:
        store.close()


def cached_images(ctx: click.Context, api: Any) -> list[CachedImage]:
    from gridrun.backends.docker import images as docker_images

    return docker_images.cached_images(api, home_of(ctx).root, _active_refs(ctx))


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _engine(ctx: click.Context) -> Any:
    from gridrun.backends.docker import DockerBackend, connect

    DockerBackend(home_of(ctx)).check_available()
    api = connect()
    ctx.call_on_close(api.close)
    return api


@click.group(invoke_without_command=True)
@click.pass_context
def images(ctx: click.Context) -> None:
    """List the Docker images gridrun built (size, last use, in use)."""
    if ctx.invoked_subcommand is not None:
        return
    from gridrun.cli.output import console, emit_json, table, when

    found = cached_images(ctx, _engine(ctx))
    if output_of(ctx) == "json":
        emit_json([asdict(i) for i in found])
        return
    if not found:
        console.print("No gridrun images. `grid run --backend docker` builds them.")
        return
    rows = [
        [
            i.tag,
            i.id,
            i.project,
            _size(i.size),
            when(i.created),
            when(i.last_used),
            "yes" if i.in_use else "no",
        ]
        for i in found
    ]
    console.print(table(["Image", "Id", "Project", "Size", "Built", "Last used", "In use"], rows))


def _days(value: str | None) -> float | None:
    if value is None:
        return None
    raw = value.strip().lower().rstrip("d")
    try:
        days = float(raw)
    except ValueError:
        raise UsageError(f"--older-than {value!r} is not a number of days (e.g. 7 or 7d).")
    if days < 0:
        raise UsageError("--older-than cannot be negative.")
    return days


@images.command("prune")
@click.option(
    "--older-than",
    "older_than",
    metavar="DAYS",
    help="Only images not used for this many days (e.g. 7d). Default: every unused one.",
)
@click.option("--project", help="Only the images of this project.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def prune(ctx: click.Context, older_than: str | None, project: str | None, yes: bool) -> None:
    """Remove cached images that no active run or container uses."""
    from gridrun.backends.docker import images as docker_images
    from gridrun.cli.output import console, emit_json

    days = _days(older_than)
    api = _engine(ctx)
    found = cached_images(ctx, api)
    cutoff = time.time() - days * 86400 if days is not None else None
    doomed = docker_images.prunable(found, cutoff, project)
    as_json = output_of(ctx) == "json"
    if not doomed:
        if as_json:
            emit_json({"removed": [], "reclaimed_bytes": 0})
        else:
            console.print("Nothing to prune.")
        return
    if not yes:
        if not as_json:
            for i in doomed:
                console.print(f"  {i.tag}  {_size(i.size)}")
        try:
            click.confirm(f"Remove {len(doomed)} image(s)?", abort=True, err=True)
        except click.Abort:
            raise UsageError("Nothing removed.", hint="Pass --yes to prune without asking.")
    removed, reclaimed = docker_images.remove_images(api, home_of(ctx).root, doomed, found)
    if as_json:
        emit_json({"removed": removed, "reclaimed_bytes": reclaimed})
    else:
        console.print(f"Removed {len(removed)} image(s), about {_size(reclaimed)}.")
