"""Helpers shared by the project-stage tests (a module, so tests can import them)."""

from __future__ import annotations

import os
from pathlib import Path

from gridrun.home import GridHome


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create ``files`` (relative path -> content) under ``root``; return ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def backdate(root: Path, seconds: float = 3600) -> None:
    """Age every file under ``root``, as in a project nobody edited in the last hour."""
    when = int((os.path.getmtime(root) - seconds) * 1e9)
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(dirpath, name), ns=(when, when), follow_symlinks=False)


def count_objects(home: GridHome) -> int:
    return sum(1 for p in home.objects.rglob("*") if p.is_file() and not p.name.startswith(".tmp-"))
