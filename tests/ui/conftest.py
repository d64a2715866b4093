"""Fixtures: a real ``grid ui`` process and a real Chromium (Debian's, via Playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from uihelpers import TRAIN, Dashboard, chromium_path, start_dashboard, stop_dashboard


@pytest.fixture
def dashboard(grid: Any) -> Iterator[Dashboard]:
    d = start_dashboard(grid)
    yield d
    stop_dashboard(d)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "project"
    p.mkdir()
    (p / "train.py").write_text(TRAIN)
    return p


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("No chromium: scripts/test installs it (apt-get install chromium) as root.")
        pytest.skip("Needs Debian's chromium (apt-get install chromium); CI installs it.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors: {errors}"
