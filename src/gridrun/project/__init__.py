"""The project stage: snapshot a project folder, copy it out again, collect what it made.

    take_snapshot(root, home)        select files (ignore.py), store their content once in
                                     GRID_HOME/objects, save snapshots/<hash>.json
    materialize(manifest, objs, to)  an experiment's working copy of a snapshot
    collect_artifacts(manifest, ...) the files an experiment created or changed
    ignore_spec(root)                the selection rules, shared with the docker backend

Importing this package pulls in only the standard library (``pathspec`` loads when
patterns are first read), so the supervisor can call ``collect_artifacts`` cheaply.
"""

from __future__ import annotations

from gridrun.project.artifacts import collect_artifacts, find_artifacts
from gridrun.project.ignore import IgnoreRules, ignore_spec
from gridrun.project.manifest import FileEntry, load_manifest, object_path
from gridrun.project.materialize import materialize
from gridrun.project.snapshot import SIZE_WARNING_BYTES, Snapshot, take_snapshot

__all__ = [
    "SIZE_WARNING_BYTES",
    "FileEntry",
    "IgnoreRules",
    "Snapshot",
    "collect_artifacts",
    "find_artifacts",
    "ignore_spec",
    "load_manifest",
    "materialize",
    "object_path",
    "take_snapshot",
]
