"""Julia scripts through the real ``grid`` CLI on the local backend.

Grid ran ``.jl`` scripts (``--framework julia``); gridrun runs them with ``julia SCRIPT``
and builds no Python environment for them.

Julia itself cannot be installed on this machine (no Debian package, its installers
download from julialang.org, which is unreachable). So these tests put a stand-in
``julia`` first on PATH: a bash script that prints its arguments and then runs the
``.jl`` file's lines as bash. That interpreter is the one boundary that cannot exist
here; everything around it (the CLI, the agent, the supervisor, the namespace the
experiment runs in, the logs) is real.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error

FAKE_JULIA = """#!/bin/bash
# Stand-in for Julia (see the test module's docstring).
echo "fake julia argv: $*"
script="$1"
shift
exec bash "$script" "$@"
"""


@pytest.fixture
def julia_bin(tmp_path: Path) -> Path:
    folder = tmp_path / "julia-bin"
    folder.mkdir()
    exe = folder / "julia"
    exe.write_text(FAKE_JULIA)
    exe.chmod(0o755)
    return folder


@pytest.fixture
def jl_project(tmp_path: Path) -> Path:
    p = tmp_path / "jlproj"
    p.mkdir()
    # Run as bash by the stand-in; a real Julia script would println(ARGS).
    (p / "train.jl").write_text('echo "hello from julia: $*"\n')
    # A Python helper in a Julia project is not the script's: nothing is inferred from it.
    (p / "plot.py").write_text("import matplotlib\n")
    (p / "Project.toml").write_text('[deps]\nExample = "7876af07-990d-54b4-ab0e-23690620f79a"\n')
    return p


def with_julia(grid, julia_bin: Path):
    grid.env["PATH"] = f"{julia_bin}{os.pathsep}{grid.env['PATH']}"
    return grid


def test_a_julia_sweep_runs_locally_with_its_arguments(grid, jl_project: Path, julia_bin) -> None:
    grid = with_julia(grid, julia_bin)
    proc = grid(
        "run",
        "--framework",
        "julia",
        "--name",
        "jl",
        "train.jl",
        "--lr",
        "[0.1, 0.01]",
        "--tag",
        "a b",
        cwd=jl_project,
    )
    text = " ".join(proc.stderr.split())
    assert "--framework julia: the local backend runs the script with the julia on PATH" in text
    # Grid would have instantiated the Project.toml it found; the local backend says it won't.
    assert "Project.toml: the local backend installs no Julia packages" in text
    assert "No requirements.txt" not in text and "matplotlib" not in text  # nothing inferred
    assert re.search(r"^dependencies: +none \(a Julia script\)$", proc.stdout, re.M), proc.stdout
    data = grid.wait("jl")
    assert [e["status"] for e in data["experiments"]] == ["succeeded", "succeeded"]
    for i, lr in enumerate(["0.1", "0.01"]):
        logs = grid("logs", f"jl-exp{i}").stdout
        assert f"fake julia argv: train.jl --lr {lr} --tag a b" in logs, logs
        assert f"hello from julia: --lr {lr} --tag a b" in logs, logs
        # No virtualenv: the python on PATH (if any) is the shell's, not a gridrun env.
        assert str(grid.home) not in logs
    build = grid("logs", "--show-build-logs", "jl-exp0").stdout
    assert "no Python environment to build" in build, build
    assert not any((grid.home / "envs").glob("*/bin/python"))
    status = grid("status", "jl").stdout
    assert "julia train.jl --lr 0.1 --tag 'a b'" in status, status


def test_dry_run_shows_the_julia_command(grid, jl_project: Path, julia_bin) -> None:
    grid = with_julia(grid, julia_bin)
    proc = grid("run", "--dry_run", "train.jl", "--n", "[1, 2]", cwd=jl_project)
    assert proc.stdout.splitlines() == ["exp0: julia train.jl --n 1", "exp1: julia train.jl --n 2"]


def test_no_julia_on_path_is_refused_at_submission(grid, jl_project: Path, tmp_path) -> None:
    # A PATH with bash and coreutils but no julia (the machine has none).
    assert not any(Path(d, "julia").exists() for d in grid.env["PATH"].split(os.pathsep))
    for dry in ([], ["--dry_run"]):
        proc = grid("run", *dry, "train.jl", cwd=jl_project, check=False)
        assert_one_line_error(
            proc, "train.jl is a Julia script, and there is no julia on PATH.", "julialang.org"
        )
    assert grid.json("history") == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--framework", "julia", "plot.py"], "--framework julia runs Julia (.jl) scripts"),
        (["--framework", "torch", "train.jl"], "--framework torch runs Python scripts"),
        (["--dependency_file", "plot.py", "train.jl"], "lists Python packages, and train.jl"),
        (["--dependency_file", "Project.toml", "plot.py"], "lists Julia packages, and plot.py"),
        # Grid's third dependency file: only an image can instantiate it (gridrun.deps.julia).
        (
            ["--dependency_file", "Project.toml", "train.jl"],
            "the local backend runs the julia on PATH and installs no Julia packages; "
            "pass --backend docker",
        ),
    ],
)
def test_mismatches_are_one_line_errors(
    grid, jl_project: Path, julia_bin, args: list[str], needle: str
) -> None:
    grid = with_julia(grid, julia_bin)
    for dry in ([], ["--dry_run"]):
        proc = grid("run", *dry, *args, cwd=jl_project, check=False)
        assert_one_line_error(proc, needle)
    assert grid.json("history") == []
