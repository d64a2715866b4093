"""Stepping down to an older installed Python when an installed package needs one.

Real uv builds of wheels made on the fly, offline: a package that imports
``collections.Mapping`` (gone in 3.10) fails on the default Python, so the build starts
again on the newest installed Python that still has it, never older than the code's
own syntax allows (``oldest_python``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from envhelpers import make_wheel, offline, run_python

from gridrun.envs.pyselect import choose_python
from gridrun.envs.venv import build_venv, build_warnings

pytestmark = pytest.mark.slow

OLD_ABC = "from collections import Mapping\n"


def build(tmp_path: Path, key: str, oldest: str, checks: list[str]) -> tuple[Path, list[str]]:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "gridabc", "1.0", body=OLD_ABC)
    lines: list[str] = []
    env = build_venv(
        tmp_path / "envs",
        key,
        "3.11",
        ["gridabc"],
        lines.append,
        offline(wheels),
        best_effort=True,
        checks=checks,
        oldest_python=oldest,
    )
    return env, lines


def test_a_package_needing_a_removed_stdlib_name_gets_an_older_python(tmp_path: Path) -> None:
    chosen = choose_python((3, 9))
    assert chosen is not None, "CI has Python 3.6-3.13 under ~/.pyenv/versions"
    env, lines = build(tmp_path, "abc", "3.6", ["gridabc", "gridabc.VERSION"])
    major, minor = chosen.split(".")
    assert run_python(env, "import sys, gridabc; print(sys.version_info[:2])") == (
        f"({major}, {minor})"
    )
    expected = (
        f"Warning: using Python {chosen} for the environment: gridabc imports "
        f"collections.Mapping, which Python 3.9 is the last to have"
    )
    assert expected in build_warnings(env)  # kept for every run that reuses it
    assert expected in lines
    # Reused as it is: no second build, the warning again.
    again: list[str] = []
    assert build_venv(tmp_path / "envs", "abc", "3.11", ["gridabc"], again.append) == env
    assert expected in again


def test_the_code_s_own_oldest_python_is_never_stepped_below(tmp_path: Path) -> None:
    # The code uses `match` (3.10): a Python 3.9 would not even parse it.
    env, _ = build(tmp_path, "floor", "3.10", ["gridabc"])
    assert run_python(env, "import sys; print(sys.version_info[:2])") == "(3, 11)"
    assert (
        "Warning: the environment needs Python 3.9 or older (gridabc imports "
        "collections.Mapping, which Python 3.9 is the last to have); "
        "the code itself needs Python 3.10 or newer"
    ) in build_warnings(env)


def test_without_an_oldest_python_the_python_is_kept(tmp_path: Path) -> None:
    # --python, a declared version, or declared requirements: nothing is stepped.
    env, lines = build(tmp_path, "kept", "", ["gridabc"])
    assert run_python(env, "import sys; print(sys.version_info[:2])") == "(3, 11)"
    assert not any("Python 3.9" in line for line in lines)


def test_a_package_that_imports_is_not_moved(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "gridfine", "1.0", body="from collections.abc import Mapping\n")
    env = build_venv(
        tmp_path / "envs",
        "fine",
        "3.11",
        ["gridfine"],
        lambda _line: None,
        offline(wheels),
        best_effort=True,
        checks=["gridfine"],
        oldest_python="3.6",
    )
    assert run_python(env, "import sys; print(sys.version_info[:2])") == "(3, 11)"
    assert build_warnings(env) == []
