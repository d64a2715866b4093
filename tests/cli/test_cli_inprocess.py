"""The CLI in-process with click's CliRunner: fast checks of parsing and output."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gridrun.cli import cli


@pytest.mark.unit
def test_help_lists_every_command() -> None:
    out = CliRunner().invoke(cli, ["--help"]).output
    for cmd in (
        "run",
        "status",
        "history",
        "logs",
        "stop",
        "delete",
        "artifacts",
        "sync-env",
        "datastore",
        "images",
    ):
        assert cmd in out


@pytest.mark.unit
def test_run_help_shows_grid_options() -> None:
    out = CliRunner().invoke(cli, ["run", "--help"]).output
    for opt in (
        "--cpus",
        "--gpus",
        "--strategy",
        "--num_trials",
        "--datastore_name",
        "--dependency_file",
        "--config",
        "--localdir",
        "--backend",
        "--follow",
    ):
        assert opt in out


def test_dry_run_prints_commands_and_records_nothing(
    grid_home: Path, tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "hello.py").write_text("print('hi')\n")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        cli,
        [
            "run",
            "--dry_run",
            "hello.py",
            "--number",
            "[1, 2]",
            "--food_item",
            "['pizza', 'hotdog']",
        ],
    )
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("exp")]
    assert lines == [
        "exp0: python hello.py --number 1 --food_item pizza",
        "exp1: python hello.py --number 1 --food_item hotdog",
        "exp2: python hello.py --number 2 --food_item pizza",
        "exp3: python hello.py --number 2 --food_item hotdog",
    ]
    res = CliRunner().invoke(cli, ["-o", "json", "history"])
    assert res.output.strip() == "[]"


def test_legacy_option_spellings(grid_home: Path, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "hello.py").write_text("print('hi')\n")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        cli,
        [
            "run",
            "--dry_run",
            "--grid_cpus",
            "1",
            "--grid_strategy",
            "random_search",
            "--grid_trials",
            "2",
            "--seed",
            "1",
            "hello.py",
            "--x",
            "[1, 2, 3]",
        ],
    )
    assert res.exit_code == 0, res.output
    assert len([ln for ln in res.output.splitlines() if ln.startswith("exp")]) == 2
