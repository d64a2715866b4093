"""The image's best-effort installer, run for real by a venv's pip, without an engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gridrun.backends.base import BuildRequest
from gridrun.backends.docker.besteffort import INSTALLER, InstallWatcher, uvoutput_source
from gridrun.backends.docker.image import container_pip, dependency_hash
from gridrun.envs.pipconf import PipConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "envs"))
from envhelpers import make_wheel


@pytest.mark.slow
@pytest.mark.parametrize("with_parser", [True, False], ids=["named-by-pip", "one-by-one"])
def test_installer_drops_what_cannot_be_installed(tmp_path: Path, with_parser: bool) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "gridinsok", "1.0")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "install.py").write_text(INSTALLER)
    if with_parser:  # without it (a Python too old to import it) each line goes alone
        (stage / "uvoutput.py").write_text(uvoutput_source())
    (stage / "requirements.txt").write_text("gridinsok==1.0\ngridins-missing==1.0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels))
    proc = subprocess.run(
        [str(venv / "bin" / "python"), str(stage / "install.py"),
         str(stage / "requirements.txt"), "closed"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    logged: list[str] = []
    watcher = InstallWatcher(logged.append, closed=True)
    for line in proc.stdout.splitlines():
        watcher.feed(line)
    assert watcher.ran
    assert watcher.warnings == [
        "Warning: inferred requirement dropped gridins-missing from the image "
        "(gridins-missing==1.0 installs on this machine, not there): "
        "not found in the package index."
    ], proc.stdout
    assert logged == watcher.warnings
    check = [str(venv / "bin" / "python"), "-c", "import gridinsok; print(gridinsok.VERSION)"]
    assert subprocess.run(check, capture_output=True, text=True).stdout.strip() == "1.0"
    attempts = proc.stdout.count("gridrun: installing ")
    assert attempts == (2 if with_parser else 2 + 1), proc.stdout


def _request(**kw: object) -> BuildRequest:
    fields: dict = {
        "run_name": "r", "project_name": "p", "python": "3.11", "requirements": ["six"],
        "snapshot_hash": "abc", "snapshot_manifest": Path("/nowhere"), "objects_dir": Path("/"),
    }  # fmt: skip
    fields.update(kw)
    return BuildRequest(**fields)


@pytest.mark.unit
def test_the_dependency_hash_of_inferred_requirements_covers_their_resolution(
    tmp_path: Path,
) -> None:
    cpip = container_pip(PipConfig())
    strict = dependency_hash(_request(), cpip)
    inferred = dependency_hash(_request(best_effort=True, checks=["six"]), cpip)
    assert strict != inferred  # dropped or repaired, not installed as given
    # Declared requirements ignore what the code imports; inferred ones depend on it.
    assert dependency_hash(_request(checks=["six.moves"]), cpip) == strict
    assert dependency_hash(_request(best_effort=True, checks=["six.moves"]), cpip) != inferred
    make_wheel(tmp_path, "gridhashonly", "1.0")
    other_host = container_pip(PipConfig(find_links=(str(tmp_path),)))
    assert other_host.conf_text == cpip.conf_text  # the image sees the same pip config...
    # ...but what resolved on this machine came from another index.
    assert dependency_hash(_request(best_effort=True, checks=["six"]), other_host) != inferred
    assert dependency_hash(_request(), other_host) == strict


def test_without_the_runs_python_here_the_image_gets_the_lines_unresolved(
    tmp_path: Path,
) -> None:
    from gridrun.backends.docker.besteffort import resolve_inferred

    logged: list[str] = []
    req = _request(python="3.19", best_effort=True, checks=["six"])  # not installed
    wanted = resolve_inferred(req, PipConfig(), tmp_path, logged.append)
    assert (wanted.lines, wanted.best_effort, wanted.closed) == (["six"], True, False)
    assert wanted.warnings == [
        "Warning: Python 3.19 is not installed on this machine: the inferred requirements go "
        "to the image unresolved, without version repair (any that cannot be installed "
        "there is still dropped)"
    ]
    assert logged[-1] == wanted.warnings[0]
