"""Inferred requirements resolved on this machine for an image: what the pins are."""

from __future__ import annotations

from pathlib import Path

import pytest
from envhelpers import make_wheel

from gridrun.envs.pipconf import PipConfig
from gridrun.envs.resolve import resolution_key, resolve_here

pytestmark = pytest.mark.slow


def test_pins_are_what_installed_without_the_seeding_and_with_repairs(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "gridrsold", "1.0", body="def legacy():\n    return 1\n")
    make_wheel(wheels, "gridrsold", "2.0")
    make_wheel(wheels, "gridrsapp", "1.0", requires=("gridrsdep",))
    make_wheel(wheels, "gridrsdep", "1.0")
    pip = PipConfig(find_links=(str(wheels),), no_index=True)
    lines: list[str] = []
    wanted = ["gridrsapp", "gridrsold", "gridrs-absent-xyz"]
    checks = ["gridrsold", "gridrsold.legacy", "gridrsapp"]
    found = resolve_here(tmp_path / "envs", "3.11", wanted, checks, pip, lines.append)
    # The dependency comes along; pip, setuptools, wheel and packaging (uv's seeding) do not.
    assert found.pins == ["gridrsapp==1.0", "gridrsdep==1.0", "gridrsold==1.0"]
    assert any("dropped gridrs-absent-xyz" in w for w in found.warnings), found.warnings
    assert any("pinned gridrsold==1.0" in w for w in found.warnings), found.warnings
    assert found.env_key == resolution_key("3.11", wanted, pip, checks)
    # A second resolution reuses the cached environment: same pins, same warnings.
    again = resolve_here(tmp_path / "envs", "3.11", wanted, checks, pip, lines.append)
    assert (again.pins, again.warnings) == (found.pins, found.warnings)
    assert any(line.startswith("Reusing cached environment") for line in lines)
