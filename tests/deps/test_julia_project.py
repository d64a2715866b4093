"""Which Project.toml a Julia script's image instantiates, and what is refused where
(gridrun.deps.julia): a pure function of the snapshot's paths and the backend."""

from __future__ import annotations

from typing import Any

import pytest

from gridrun.deps.julia import JuliaProject, julia_project
from gridrun.errors import UsageError

pytestmark = pytest.mark.unit

FILES = ["Project.toml", "Manifest.toml", "sim/train.jl", "sim/Project.toml", "plot.py"]


def ask(
    script: str = "sim/train.jl", dependency_file: str | None = None, **kw: Any
) -> JuliaProject:
    args: dict[str, Any] = {
        "julia_script": script.endswith(".jl"),
        "container": True,
        "dockerfile": None,
        "backend": "docker",
    }
    files = kw.pop("files", FILES)
    args.update(kw)
    return julia_project(files, script, dependency_file, **args)


def test_on_docker_the_nearest_project_file_is_instantiated() -> None:
    found = ask()
    assert found == JuliaProject(
        "sim/Project.toml", "sim/Project.toml: the image instantiates its Julia packages."
    )
    assert ask(dependency_file="Project.toml").project_file == "Project.toml"
    assert ask(files=["train.jl"], script="train.jl") == JuliaProject(None)


def test_elsewhere_a_found_one_is_noted_and_a_given_one_refused() -> None:
    found = ask(container=False, backend="ray")
    assert found.project_file is None
    assert found.note is not None and "the ray backend installs no Julia packages" in found.note
    with pytest.raises(
        UsageError, match=r"the local backend runs the julia on PATH.*--backend docker"
    ):
        ask(dependency_file="Project.toml", container=False, backend="local")


def test_mismatched_or_missing_files_are_refused() -> None:
    with pytest.raises(UsageError, match=r"lists Julia packages, and plot\.py is a Python script"):
        ask(script="plot.py", dependency_file="Project.toml")
    with pytest.raises(UsageError, match=r"lists Python packages, and sim/train\.jl is a Julia"):
        ask(dependency_file="requirements.txt")
    with pytest.raises(UsageError, match="not in the project"):
        ask(dependency_file="other/Project.toml")
    with pytest.raises(UsageError, match="the Dockerfile is built as given"):
        ask(dependency_file="Project.toml", dockerfile="Dockerfile")
    assert ask(dockerfile="Dockerfile") == JuliaProject(None)  # found: the Dockerfile decides
    assert ask(script="plot.py") == JuliaProject(None)  # a Python script: not its business
