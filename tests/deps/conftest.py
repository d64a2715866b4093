"""Shared helpers: real projects written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _grid_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRID_HOME", str(tmp_path / "grid-home"))


def write_project(root: Path, files: dict[str, str]) -> list[str]:
    """Write ``files`` (relative path -> text) under ``root``; return the snapshot list."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(files)


@pytest.fixture
def project(tmp_path: Path):
    """``make(files) -> (root, snapshot files)`` in a fresh project folder."""
    root = tmp_path / "proj"
    root.mkdir()

    def make(files: dict[str, str]) -> tuple[Path, list[str]]:
        return root, write_project(root, files)

    return make
