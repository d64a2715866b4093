"""Turning a snapshot back into a folder: the experiment's own working copy.

The copying itself is :mod:`gridrun.project.treecopy` (standard library only, shared
with the Slurm runner); this module reads the manifest and says which object is missing.
"""

from __future__ import annotations

from pathlib import Path

from gridrun.errors import StateError
from gridrun.project.manifest import FileEntry, load_manifest, object_path
from gridrun.project.treecopy import Entry, copy_file, write_tree

__all__ = ["copy_file", "materialize", "tree_entries"]


def tree_entries(files: dict[str, FileEntry], objects_dir: Path) -> list[Entry]:
    """A manifest's files as :func:`~gridrun.project.treecopy.write_tree` takes them."""
    return [
        (
            rel,
            None if e.sha256 is None else str(object_path(objects_dir, e.sha256)),
            e.mode,
            e.mtime_ns,
            e.link,
        )
        for rel, e in files.items()
    ]


def materialize(manifest_path: Path, objects_dir: Path, dest: Path) -> None:
    """Write the snapshot described by ``manifest_path`` into ``dest``.

    ``dest`` is created if needed; files already there with the same paths are replaced.
    """
    entries = tree_entries(load_manifest(manifest_path), objects_dir)
    try:
        write_tree(entries, str(dest))
    except FileNotFoundError as exc:
        missing = next((e[1] for e in entries if e[1] and not Path(e[1]).exists()), None)
        if missing is None:
            raise
        rel = next(e[0] for e in entries if e[1] == missing)
        raise StateError(
            f"Snapshot object {missing} for {rel} is missing from the store.",
            hint="Submit the run again to take a new snapshot.",
        ) from exc
