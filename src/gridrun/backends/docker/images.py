"""The Docker images gridrun cached: listing them, and pruning the unused ones.

Images are found in the engine by their ``gridrun=1`` label; their last use comes from
``GRID_HOME/images/last-used.json`` (see :mod:`gridrun.backends.docker.image`), so an
image built from another GRID_HOME shows its build time instead. An image is in use
while a run of this GRID_HOME that is building, pending or running needs it, or while
any container (of any GRID_HOME) was made from it; pruning never removes those.
``grid images`` is the command line over this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gridrun.errors import BackendError


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


def cached_images(api: Any, home_root: Path, active_refs: set[str]) -> list[CachedImage]:
    """Every gridrun image in the engine, most recently used first."""
    from gridrun.backends.docker.image import read_last_used

    last_used = read_last_used(home_root)
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
                    in_use=tag in active_refs or bool({tag, img["Id"]} & used_by_containers),
                    deps=labels.get("gridrun.deps", ""),
                )
            )
    out.sort(key=lambda i: -(i.last_used or i.created))
    return out


def prunable(
    found: Iterable[CachedImage], cutoff: float | None, project: str | None
) -> list[CachedImage]:
    """Those not in use, unused since ``cutoff`` (if given), of ``project`` (if given)."""
    return [
        i
        for i in found
        if not i.in_use
        and (cutoff is None or (i.last_used or i.created) < cutoff)
        and (project is None or i.project == project)
    ]


def remove_images(
    api: Any, home_root: Path, doomed: list[CachedImage], found: list[CachedImage]
) -> tuple[list[str], int]:
    """Remove ``doomed``, then the dependency stages no kept image was built with.

    Returns the tags removed and the bytes reclaimed.
    """
    import docker.errors

    from gridrun.backends.docker.besteffort import forget_record
    from gridrun.backends.docker.image import forget_use, images_dir

    removed: list[str] = []
    reclaimed = 0
    for i in doomed:
        try:
            api.remove_image(i.tag)
        except docker.errors.APIError as exc:
            raise BackendError(f"Could not remove {i.tag}: {exc.explanation or exc}") from exc
        removed.append(i.tag)
        reclaimed += i.size
    forget_use(home_root, removed)
    for tag in removed:
        forget_record(images_dir(home_root), tag)
    _prune_dependency_stages(api, {i.deps for i in found if i.tag not in removed})
    return removed, reclaimed


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
