"""The environment key: stable for equivalent inputs, different for anything that matters."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from gridrun.envs.key import (
    count_packages,
    environment_key,
    normalize_requirement,
    normalize_requirements,
    python_minor,
)

BASE = ["numpy>=1.24", "torch==2.1.0", "six"]


def test_shape_and_determinism_across_processes() -> None:
    key = environment_key("3.11", BASE, "fp")
    assert len(key) == 16 and int(key, 16) >= 0
    code = (
        "from gridrun.envs.key import environment_key;"
        "print(environment_key('3.11', ['numpy>=1.24', 'torch==2.1.0', 'six'], 'fp'))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
    ).stdout.strip()
    assert other == key


@pytest.mark.unit
@pytest.mark.parametrize(
    "variant",
    [
        ["six", "torch==2.1.0", "numpy>=1.24"],  # order
        ["NumPy >= 1.24", "Torch == 2.1.0", "six"],  # case and spaces
        ["numpy>=1.24  # the array library", "", "# comment", "torch==2.1.0", "six", "six"],
        ["numpy>=1.24\ntorch==2.1.0\nsix"],  # one multi-line string
    ],
)
def test_cosmetic_differences_keep_the_key(variant: list[str]) -> None:
    assert environment_key("3.11", variant, "fp") == environment_key("3.11", BASE, "fp")


@pytest.mark.unit
def test_python_patch_version_and_spelling_do_not_matter() -> None:
    key = environment_key("3.11", BASE)
    assert environment_key("3.11.7", BASE) == key
    assert environment_key("python3.11", BASE) == key
    assert python_minor("/usr/bin/python3") == "/usr/bin/python3"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("python", "requirements", "extra"),
    [
        ("3.10", BASE, "fp"),
        ("3.11", ["numpy>=1.25", "torch==2.1.0", "six"], "fp"),
        ("3.11", [*BASE, "tomli"], "fp"),
        ("3.11", BASE[:2], "fp"),
        ("3.11", ["numpy[extra]>=1.24", "torch==2.1.0", "six"], "fp"),
        ("3.11", ["--extra-index-url https://x.example/simple", *BASE], "fp"),
        ("3.11", BASE, "other-fingerprint"),
        ("3.11", BASE, ""),
    ],
)
def test_anything_that_changes_installs_changes_the_key(
    python: str, requirements: list[str], extra: str
) -> None:
    assert environment_key(python, requirements, extra) != environment_key("3.11", BASE, "fp")


@pytest.mark.unit
def test_platform_is_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = environment_key("3.11", BASE)
    monkeypatch.setattr(platform, "machine", lambda: "riscv128")
    assert environment_key("3.11", BASE) != key


@pytest.mark.unit
def test_normalisation_rules() -> None:
    assert normalize_requirement("Foo_Bar.Baz [Extra_B, extra-a] >= 1.0 , < 2") == (
        "foo-bar-baz[extra-a,extra-b]<2,>=1.0"
    )
    assert normalize_requirement('Pkg>=1; python_version  <  "3.12"') == (
        'pkg>=1; python_version < "3.12"'
    )
    assert normalize_requirement("My_Pkg @ https://host/My_Pkg-1.0.tar.gz#sha256=AB") == (
        "my-pkg @ https://host/My_Pkg-1.0.tar.gz#sha256=AB"
    )
    # URLs, paths and wheel files are case-sensitive: kept as they are.
    assert normalize_requirement("./Libs/My_Lib") == "./Libs/My_Lib"
    assert normalize_requirement("Some_Pkg-1.0-py3-none-any.whl") == "Some_Pkg-1.0-py3-none-any.whl"
    assert normalize_requirement("git+https://host/Repo.git#egg=Repo") == (
        "git+https://host/Repo.git#egg=Repo"
    )
    assert normalize_requirement("  # only a comment") is None
    assert normalize_requirement("--extra-index-url   https://x.example/simple") == (
        "--extra-index-url https://x.example/simple"
    )


@pytest.mark.unit
def test_option_lines_keep_their_order_and_come_first() -> None:
    lines = ["six", "--index-url https://b", "tomli", "--extra-index-url https://a", "-e ./pkg"]
    assert normalize_requirements(lines) == [
        "--index-url https://b",
        "--extra-index-url https://a",
        "-e ./pkg",
        "six",
        "tomli",
    ]
    assert count_packages(lines) == 3
    assert count_packages([]) == 0
