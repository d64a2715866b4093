"""``grid images``: the Docker images gridrun cached, and pruning them.

Images are found in the engine by their ``gridrun=1`` label; their last use comes from
``GRID_HOME/images/last-used.json`` (see :mod:`gridrun.envs.image`), so an image built
from another GRID_HOME shows its build time instead. An image is in use while a run of
this GRID_HOME that is building, pending or running needs it, or while any container
(of any GRID_HOME) was made from it; ``prune`` never removes those.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import click

from gridrun.cli.common import home_of, open_store, output_of
from gridrun.errors import BackendError, UsageError


@dataclass
class CachedImage:
    tag: str
    id: str
    project: str
    size: int
    created: float
    last_used: float | None
    in_use: bool
    deps: str


def _created(raw: Any) -> float:
    if isinstance(raw, int | float):
        return float(raw)
    try:
        return datetime.fromisoformat(str(raw).split(".")[0].rstrip("Z")).timestamp()
    except ValueError:
        return 0.0


def _active_refs(ctx: click.Context) -> set[str]:
    store = open_store(ctx)
    try:
        refs: set[str] = set()
        for run in store.list_runs():
            if run.derived_status().active:
                refs.update(r for r in (run.env_ref, run.env_key) if r)
        return refs
    finally:
        store.close()


def cached_images(ctx: click.Context, api: Any) -> list[CachedImage]:
    from gridrun.envs.image import read_last_used

    last_used = read_last_used(home_of(ctx).root)
    active = _active_refs(ctx)
    used_by_containers: set[str] = set()
    for c in api.containers(all=True):
        used_by_containers.update({c.get("Image", ""), c.get("ImageID", "")})
    out = []
    for img in api.images(filters={"label": "gridrun=1"}):
        labels = img.get("Labels") or {}
        tags = [t for t in (img.get("RepoTags") or []) if t != "<none>:<none>"]
        for tag in tags:
            out.append(
                CachedImage(
                    tag=tag,
                    id=img["Id"].split(":")[-1][:12],
                    project=labels.get("gridrun.project", "-"),
                    size=int(img.get("Size") or 0),
                    created=_created(img.get("Created")),
                    last_used=last_used.get(tag),
                    in_use=tag in active or bool({tag, img["Id"]} & used_by_containers),
                    deps=labels.get("gridrun.deps", ""),
                )
            )
    out.sort(key=lambda i: -(i.last_used or i.created))
    return out


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
    import docker.errors

    from gridrun.cli.output import console, emit_json
    from gridrun.envs.image import forget_use

    days = _days(older_than)
    api = _engine(ctx)
    found = cached_images(ctx, api)
    cutoff = time.time() - days * 86400 if days is not None else None
    doomed = [
        i
        for i in found
        if not i.in_use
        and (cutoff is None or (i.last_used or i.created) < cutoff)
        and (project is None or i.project == project)
    ]
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
    removed: list[str] = []
    reclaimed = 0
    for i in doomed:
        try:
            api.remove_image(i.tag)
        except docker.errors.APIError as exc:
            raise BackendError(f"Could not remove {i.tag}: {exc.explanation or exc}") from exc
        removed.append(i.tag)
        reclaimed += i.size
    forget_use(home_of(ctx).root, removed)
    _prune_dependency_stages(api, {i.deps for i in found if i.tag not in removed})
    if as_json:
        emit_json({"removed": removed, "reclaimed_bytes": reclaimed})
    else:
        console.print(f"Removed {len(removed)} image(s), about {_size(reclaimed)}.")


def _prune_dependency_stages(api: Any, keep: set[str]) -> None:
    """Remove the untagged dependency-stage images no remaining image was built with.

    They hold the pip configuration of their build and the layer cache of the
    dependencies; the ones a kept image shares stay, so its next rebuild is fast.
    """
    import docker.errors

    for img in api.images(filters={"label": ["gridrun=1", "gridrun.stage=deps"]}):
        tags = [t for t in (img.get("RepoTags") or []) if t != "<none>:<none>"]
        if tags or (img.get("Labels") or {}).get("gridrun.deps") in keep:
            continue
        try:
            api.remove_image(img["Id"])
        except docker.errors.APIError:
            pass  # used by another build right now, or a parent of something: keep it
