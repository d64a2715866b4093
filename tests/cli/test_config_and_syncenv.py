"""``--config`` YAML runs, large-sweep confirmation and ``grid sync-env`` through the CLI."""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    (p / "hello.py").write_text("import sys\nprint(sys.argv[1:])\n")
    return p


def test_config_yaml_sets_compute_and_hyper_params(grid, project: Path) -> None:
    (project / "grid.yml").write_text(
        "compute:\n  train:\n    cpus: 1\n"
        "hyper_params:\n  settings:\n    strategy: random_search\n"
        "    strategy_options:\n      num_trials: 2\n      seed: 3\n"
        "  params:\n    lr: '[0.1, 0.2, 0.3]'\n    depth: '[1, 2]'\n"
    )
    out = grid(
        "run",
        "--name",
        "cfg",
        "--config",
        "grid.yml",
        "--follow",
        "hello.py",
        "--fixed",
        "7",
        cwd=project,
    )
    assert "Neither a CPU or GPU" not in out.stderr  # cpus came from the config
    exps = grid.json("status", "cfg")["experiments"]
    assert len(exps) == 2
    for e in exps:
        assert e["argv"][:2] == ["--fixed", "7"] and "--lr" in e["argv"]
    # CLI flags override the YAML.
    out = grid(
        "run",
        "--config",
        "grid.yml",
        "--strategy",
        "grid_search",
        "--dry_run",
        "hello.py",
        cwd=project,
    )
    assert len(out.stdout.strip().splitlines()) == 6


def test_more_than_a_thousand_experiments_asks_first(grid, project: Path) -> None:
    proc = grid("run", "hello.py", "--i", "range(1001)", cwd=project, check=False, input="n\n")
    assert proc.returncode != 0 and "1001 experiments" in proc.stdout + proc.stderr
    assert grid.json("history") == []


def test_sync_env_writes_pinned_requirements(grid, project: Path) -> None:
    (project / "model.py").write_text("import yaml\nimport click\nfrom helpers import f\n")
    (project / "helpers.py").write_text("import os\ndef f(): pass\n")
    out = grid("sync-env", cwd=project)
    text = (project / "requirements.txt").read_text()
    assert f"PyYAML=={md.version('PyYAML')}" in text
    assert f"click=={md.version('click')}" in text
    assert "helpers" not in text and "os" not in text.split()
    assert "Wrote 2 requirement(s)" in out.stdout
    (project / "requirements.txt").write_text("keep-me\n")
    grid("sync-env", cwd=project, input="n\n")
    assert (project / "requirements.txt").read_text() == "keep-me\n"
    grid("sync-env", "-y", cwd=project)
    assert "PyYAML" in (project / "requirements.txt").read_text()


def test_requirements_file_missing_imports_is_warned(grid, project: Path) -> None:
    (project / "requirements.txt").write_text("six\nsys\n")
    (project / "uses.py").write_text("import six, yaml\n")
    out = grid("run", "--name", "warned", "--follow", "uses.py", cwd=project, check=False)
    err = " ".join(out.stderr.split())
    assert "standard-library modules" in err and "sys" in err
    assert "does not list packages your code imports: PyYAML" in err
    # The warning was right: the file as given cannot run the code.
    assert out.returncode == 1 and "No module named 'yaml'" in out.stdout
    assert grid.json("status", "warned")["experiments"][0]["status"] == "failed"
