"""Bad input: one line naming the problem, non-zero exit, no traceback, nothing recorded."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    (p / "ok.py").write_text("print('ok')\n")
    return p


def nothing_recorded(grid) -> None:
    assert grid.json("history") == []


def test_missing_script(grid, project: Path) -> None:
    assert_one_line_error(grid("run", "nope.py", cwd=project, check=False), "nope.py", "not found")
    nothing_recorded(grid)


def test_directory_as_script(grid, project: Path) -> None:
    (project / "sub").mkdir()
    assert_one_line_error(grid("run", "sub", cwd=project, check=False), "is a directory")
    nothing_recorded(grid)


def test_not_a_script(grid, project: Path) -> None:
    (project / "data.csv").write_text("a,b\n")
    assert_one_line_error(grid("run", "data.csv", cwd=project, check=False), ".py", ".sh")


def test_syntax_error_in_script(grid, project: Path) -> None:
    (project / "broken.py").write_text("x = 1\ndef f(:\n  pass\n")
    proc = grid("run", "broken.py", cwd=project, check=False)
    assert_one_line_error(proc, "broken.py", "2")
    nothing_recorded(grid)


def test_unknown_command(grid) -> None:
    proc = grid("frobnicate", check=False)
    assert proc.returncode != 0 and "No such command" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("status", "ghost-run-1"),
        ("logs", "ghost-run-1"),
        ("stop", "run", "ghost-run-1"),
        ("artifacts", "ghost-run-1"),
    ],
)
def test_unknown_run_name(grid, args) -> None:
    assert_one_line_error(grid(*args, check=False), "ghost-run-1")


def test_malformed_config(grid, project: Path) -> None:
    (project / "grid.yml").write_text("compute:\n  train:\n    cpus: [1\n")
    assert_one_line_error(
        grid("run", "--config", "grid.yml", "ok.py", cwd=project, check=False), "grid.yml", "YAML"
    )
    (project / "typo.yml").write_text("compute:\n  train:\n    cpuz: 1\n")
    assert_one_line_error(
        grid("run", "--config", "typo.yml", "ok.py", cwd=project, check=False), "cpuz", "Valid keys"
    )
    nothing_recorded(grid)


def test_bad_sweep_value(grid, project: Path) -> None:
    proc = grid("run", "ok.py", "--lr", "[1, 2", cwd=project, check=False)
    assert_one_line_error(proc, "--lr")
    nothing_recorded(grid)


def test_invalid_name_and_unknown_backend(grid, project: Path) -> None:
    assert_one_line_error(
        grid("run", "--name", "Bad_Name", "ok.py", cwd=project, check=False), "Bad_Name"
    )
    assert_one_line_error(
        grid("run", "--name", "run-exp1", "ok.py", cwd=project, check=False), "exp"
    )
    assert_one_line_error(
        grid("run", "--backend", "kubernetes", "ok.py", cwd=project, check=False),
        "kubernetes",
        "local",
        "docker",
    )
    # A backend that exists, with no cluster to reach: one line saying how to name one.
    env = {k: v for k, v in grid.env.items() if k != "SLURM_CONF"}
    proc = subprocess.run(
        [sys.executable, "-m", "gridrun", "run", "--backend", "slurm", "ok.py"],
        cwd=project, env={**env, "SLURM_CONF": str(project / "no-slurm.conf")},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert_one_line_error(proc, "SLURM_CONF")
    nothing_recorded(grid)


def test_too_many_cpus(grid, project: Path) -> None:
    assert_one_line_error(grid("run", "--cpus", "4096", "ok.py", cwd=project, check=False), "4096")
    nothing_recorded(grid)


def test_unresolvable_package_fails_the_build_naming_it(grid, project: Path) -> None:
    (project / "requirements.txt").write_text("gridrun-no-such-package-xyz==1.0\n")
    proc = grid("run", "--name", "badpkg", "--follow", "ok.py", cwd=project, check=False)
    assert proc.returncode != 0
    data = grid.json("status", "badpkg")
    assert data["status"] == "failed"
    assert "gridrun-no-such-package-xyz" in data["error"]
    assert "gridrun-no-such-package-xyz" in grid("status", "badpkg").stdout
    assert "[build]" in grid("logs", "badpkg").stdout


def test_broken_requirements_file(grid, project: Path) -> None:
    (project / "requirements.txt").write_text("numpy===>1\n")
    assert_one_line_error(grid("run", "ok.py", cwd=project, check=False), "requirements.txt")
    nothing_recorded(grid)


def test_unwritable_grid_home_dir(grid, project: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = "/proc/1/gridrun-home"  # not even root can create folders in /proc
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        target = str(ro / "home")
    grid.env["GRID_HOME"] = target
    assert_one_line_error(grid("status", check=False), "GRID_HOME", "not writable")
    assert_one_line_error(grid("run", "ok.py", cwd=project, check=False), "not writable")


def test_grid_home_that_is_a_file(grid, project: Path, tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    grid.env["GRID_HOME"] = str(f)
    assert_one_line_error(grid("run", "ok.py", cwd=project, check=False), "GRID_HOME")


def _wait_until_unused(db: Path, timeout: float = 60) -> None:
    """Wait until no process has ``db`` (or its WAL) open."""
    deadline = time.monotonic() + timeout
    while True:
        holders = []
        for fd in Path("/proc").glob("[0-9]*/fd/*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith(str(db)):
                holders.append(fd.parts[2])
        if not holders:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"processes {holders} still hold {db}")
        time.sleep(0.1)


def test_corrupt_database_is_never_recreated(grid, project: Path) -> None:
    grid("run", "--name", "keep", "--follow", "ok.py", cwd=project)
    grid("agent", "stop")
    db = grid.home / "grid.db"
    # The agent, its launcher and the run's supervisor close their connections a moment
    # after `--follow` and `agent stop` return (later still on a loaded machine), and a
    # closing connection checkpoints its WAL into grid.db: that would overwrite the
    # garbage below. The scenario is a database corrupted while nothing uses it.
    _wait_until_unused(db)
    for extra in ("grid.db-wal", "grid.db-shm"):
        (grid.home / extra).unlink(missing_ok=True)
    garbage = b"this is not sqlite" * 100
    db.write_bytes(garbage)
    proc = grid("status", check=False)
    assert_one_line_error(proc, "grid.db", "corrupt", "mv")
    assert db.read_bytes() == garbage
    proc = grid("run", "ok.py", cwd=project, check=False)
    assert_one_line_error(proc, "corrupt")
    assert db.read_bytes() == garbage


def test_debug_shows_traceback(grid, project: Path) -> None:
    proc = grid("--debug", "status", "ghost-run-1", check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_database_is_wal(grid, project: Path) -> None:
    grid("run", "--name", "walrun", "--follow", "ok.py", cwd=project)
    conn = sqlite3.connect(grid.home / "grid.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
