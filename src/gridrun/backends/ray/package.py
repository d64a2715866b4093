"""The run's package: what travels to the cluster as the driver job's ``working_dir``.

One tar of the snapshot (built straight from the object store, with each file's mode,
modification time and symlink target) and the manifest beside it. A tar, not the
files themselves, because Ray applies its own ignore rules (``.gitignore``, ``.git``,
``.venv``) to a ``working_dir``: the snapshot's rules (``.gridignore`` first) have
already decided what travels, and a tar keeps Ray from deciding again.

When the nodes fetch a run's commit themselves (``ray.nodes_fetch: always``), the tar
holds only what the repository cannot give them: a checkout's untracked files. The
manifest still travels whole: it is what a node copies out of the fetched tree and
checks the digest of.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Collection
from pathlib import Path

from gridrun.backends.ray.node import MANIFEST_JSON, SNAPSHOT_TAR
from gridrun.errors import ProjectError


def ray_package_limit() -> int:
    """The largest package Ray uploads to its nodes, in bytes (Ray's own constant)."""
    try:
        from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE

        return int(GCS_STORAGE_MAX_SIZE)
    except (ImportError, AttributeError, ValueError):
        return 100 * 2**20  # what older Ray versions accepted


def check_package_size(
    manifest: Path, limit: int | None = None, only: Collection[str] | None = None
) -> None:
    """Refuse a snapshot Ray would not accept, naming its largest files.

    ``only``: the files that travel (a package for nodes that fetch); all by default.
    """
    from gridrun.project.manifest import load_manifest

    limit = ray_package_limit() if limit is None else limit
    files = load_manifest(manifest)
    if only is not None:
        files = {rel: e for rel, e in files.items() if rel in only}
    total = sum(e.size for e in files.values())
    if total < limit:
        return
    largest = sorted(files.values(), key=lambda e: e.size, reverse=True)[:3]
    names = ", ".join(f"{e.path} ({_mib(e.size)})" for e in largest)
    raise ProjectError(
        f"The snapshot is {_mib(total)}, above the {_mib(limit)} Ray accepts as a job's "
        f"working_dir; largest files: {names}.",
        hint="Leave them out with a .gridignore, or put data in a datastore.",
    )


def build_package(
    manifest: Path, objects_dir: Path, dest: Path, only: Collection[str] | None = None
) -> Path:
    """Write ``dest/snapshot.tar`` and ``dest/manifest.json`` (once: reused if there).

    ``only``: the files whose contents go in the tar (the untracked files of a run the
    nodes fetch); every file of the manifest by default.
    """
    from gridrun.project.manifest import load_manifest, object_path

    if (dest / SNAPSHOT_TAR).is_file() and (dest / MANIFEST_JSON).is_file():
        return dest
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = load_manifest(manifest)
    with tarfile.open(tmp / SNAPSHOT_TAR, "w", format=tarfile.PAX_FORMAT) as tar:
        for rel, entry in sorted(files.items()):
            if only is not None and rel not in only:
                continue
            info = tarfile.TarInfo(rel)
            info.mode = entry.mode
            info.mtime = entry.mtime_ns / 1e9 if entry.mtime_ns else 0
            if entry.link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = entry.link
                tar.addfile(info)
                continue
            assert entry.sha256 is not None
            source = object_path(objects_dir, entry.sha256)
            info.size = entry.size
            with open(source, "rb") as fh:
                tar.addfile(info, fh)
    shutil.copyfile(manifest, tmp / MANIFEST_JSON)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
