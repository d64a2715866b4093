"""Fixtures for the environment tests (helpers live in envhelpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from envhelpers import LEAKY, PipDirs


@pytest.fixture
def pip_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PipDirs:
    """No PIP_* variable, and every pip config location inside ``tmp_path``."""
    for name in list(os.environ):
        if name.startswith("PIP_") or name in LEAKY:
            monkeypatch.delenv(name)
    dirs = PipDirs(
        etc=tmp_path / "etc",
        xdg_dirs=tmp_path / "xdg-dirs",
        home=tmp_path / "home",
        xdg_home=tmp_path / "xdg-home",
        site=tmp_path / "site",
    )
    for d in (dirs.etc, dirs.xdg_dirs, dirs.home, dirs.xdg_home, dirs.site):
        d.mkdir()
    monkeypatch.setenv("HOME", str(dirs.home))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(dirs.xdg_dirs))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(dirs.xdg_home))
    monkeypatch.setenv("VIRTUAL_ENV", str(dirs.site))
    monkeypatch.chdir(tmp_path)
    return dirs
