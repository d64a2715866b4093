"""Checking that a datastore version still holds exactly what was stored.

A version is immutable by design, but root can write through the host path of its tree
(root ignores 0444), and an experiment that escaped its read-only mount could too. Two
checks find that:

* :func:`verify` (``grid datastore verify``) re-reads every file and compares its sha256,
  type and symlink target with ``manifest.json``, and lists extra or missing entries;
* :func:`quick_check` (``grid datastore list``, and every mount at submission) compares
  each file's size and modification time with those recorded when the version was
  completed: cheap (one ``lstat`` per file) and enough for any ordinary write, which
  changes one of the two. Only a deliberate ``utime`` after the write gets past it, and
  ``verify`` catches that.

A mismatch is recorded in ``TAMPERED`` in the version folder, so the version lists as
``tampered`` and can no longer be mounted until it is deleted and created again.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from gridrun.datastores import layout, objects

TAMPERED_FILE = layout.TAMPERED_FILE
MAX_LISTED = 20


def _manifest(vdir: Path) -> dict[str, Any] | None:
    return layout.read_json(vdir / "manifest.json")


def verify(vdir: Path) -> list[str]:
    """Every difference between the version's tree and its manifest (empty: intact)."""
    manifest = _manifest(vdir)
    if manifest is None:
        return ["manifest.json is missing or unreadable"]
    tree = vdir / "files"
    problems: list[str] = []
    expected: set[str] = set()
    for e in manifest.get("entries", []):
        rel = e.get("path", "")
        expected.add(rel)
        path = tree / rel
        try:
            st = path.lstat()
        except OSError:
            problems.append(f"{rel}: missing")
            continue
        kind = e.get("type")
        if kind == "dir":
            if not stat.S_ISDIR(st.st_mode):
                problems.append(f"{rel}: no longer a folder")
        elif kind == "link":
            if not stat.S_ISLNK(st.st_mode) or os.readlink(path) != e.get("target"):
                problems.append(f"{rel}: symlink changed")
        elif not stat.S_ISREG(st.st_mode):
            problems.append(f"{rel}: no longer a regular file")
        elif not objects.intact(path, e.get("sha256", "")):
            problems.append(f"{rel}: content changed (sha256 differs)")
    problems.extend(f"{rel}: not part of the version" for rel in _extra(tree, expected))
    record(vdir, problems)
    return problems


def _extra(tree: Path, expected: set[str]) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(tree):
        rel_dir = os.path.relpath(dirpath, tree)
        for name in [*dirnames, *filenames]:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel not in expected:
                found.append(rel)
    return sorted(found)


def quick_check(vdir: Path) -> list[str]:
    """Files whose size or mtime differs from what was recorded at completion."""
    manifest = _manifest(vdir)
    if manifest is None:
        return []
    tree = vdir / "files"
    problems = []
    for e in manifest.get("entries", []):
        if e.get("type") != "file":
            continue
        try:
            st = (tree / e["path"]).lstat()
        except OSError:
            problems.append(f"{e['path']}: missing")
            continue
        if st.st_size != e.get("size") or ("mtime_ns" in e and st.st_mtime_ns != e["mtime_ns"]):
            problems.append(f"{e['path']}: changed (size or modification time differs)")
    if problems:
        record(vdir, problems)
    return problems


def record(vdir: Path, problems: list[str]) -> None:
    """Remember the outcome, so that every command sees a tampered version as one."""
    marker = vdir / TAMPERED_FILE
    try:
        if problems:
            layout.atomic_write(marker, json.dumps({"problems": problems}))
        else:
            marker.unlink(missing_ok=True)
    except OSError:
        pass  # a full or read-only disk: the check itself still reported it
