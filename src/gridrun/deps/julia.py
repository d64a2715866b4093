"""A Julia project's packages: ``Project.toml``, Grid's third dependency file.

Grid's ``--dependency_file`` help names ``requirements.txt``, ``environment.yml`` and
``Project.toml``, and infers the last from the folder as it does the others. gridrun
cannot build a Julia environment with uv, and will not download Julia; what it can do
honestly depends on where the run goes:

- Docker: the image is Julia's, so the generated Dockerfile copies ``Project.toml``
  (and ``Manifest.toml`` beside it, for the exact versions) and runs
  ``Pkg.instantiate()`` in a layer of its own, cached until those files change; the
  experiment runs with ``JULIA_PROJECT`` set to it.
- Elsewhere the script runs with the ``julia`` on PATH, which gridrun does not manage:
  a ``--dependency_file Project.toml`` is refused in one line saying to use Docker or
  to instantiate the project there; a ``Project.toml`` merely found is noted, since
  the run works as before with whatever that Julia has installed.

A ``Project.toml`` given to a Python script is refused: it lists Julia packages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from gridrun.errors import UsageError

#: The names Julia reads a project from, in its own order of preference.
PROJECT_FILES = ("JuliaProject.toml", "Project.toml")


def is_julia_project_file(path: str) -> bool:
    return PurePosixPath(path).name in PROJECT_FILES


@dataclass(frozen=True)
class JuliaProject:
    """The Project.toml a run's image instantiates (a path inside the project), or
    none, and the one-line note that says what happened to it."""

    project_file: str | None
    note: str | None = None


def julia_project(
    files: list[str],
    script: str,
    dependency_file: str | None,
    *,
    julia_script: bool,
    container: bool,
    dockerfile: str | None,
    backend: str,
) -> JuliaProject:
    """Which Project.toml (if any) the run's environment instantiates.

    ``files`` are the snapshot's paths; the nearest project file from the script's
    folder up wins, as the nearest requirements.txt does for a Python script.
    """
    given = dependency_file and is_julia_project_file(dependency_file)
    if not julia_script:
        if given:
            raise UsageError(
                f"--dependency_file {dependency_file} lists Julia packages, and {script} is "
                "a Python script: give a requirements.txt, environment.yml or pyproject.toml."
            )
        return JuliaProject(None)
    if dependency_file and not given:
        raise UsageError(
            f"--dependency_file {dependency_file} lists Python packages, and {script} is a "
            "Julia script: give its Project.toml, or leave --dependency_file out."
        )
    if given:
        assert dependency_file is not None
        rel = PurePosixPath(dependency_file).as_posix()
        if rel not in files:
            raise UsageError(
                f"--dependency_file {rel} is not in the project: give a path relative to "
                "the project folder."
            )
        if not container:
            raise UsageError(
                f"--dependency_file {rel}: the {backend} backend runs the julia on PATH and "
                "installs no Julia packages; pass --backend docker (its image instantiates "
                "them), or run `julia --project -e 'using Pkg; Pkg.instantiate()'` there "
                "and leave --dependency_file out."
            )
        if dockerfile:
            raise UsageError(
                f"--dependency_file {rel} with --dockerfile: the Dockerfile is built as "
                "given; instantiate the project in it and leave --dependency_file out."
            )
        return JuliaProject(rel, f"{rel}: the image instantiates its Julia packages.")
    found = _nearest(files, script)
    if found is None:
        return JuliaProject(None)
    if not container:
        return JuliaProject(
            None,
            f"{found}: the {backend} backend installs no Julia packages; the script runs "
            "with the julia on PATH and what it has installed (--backend docker "
            "instantiates them).",
        )
    if dockerfile:
        return JuliaProject(None)  # the user's Dockerfile decides, as for Python
    return JuliaProject(found, f"{found}: the image instantiates its Julia packages.")


def _nearest(files: list[str], script: str) -> str | None:
    present = set(files)
    parts = PurePosixPath(script).parts[:-1]
    for n in range(len(parts), -1, -1):
        prefix = "/".join(parts[:n])
        for name in PROJECT_FILES:
            rel = f"{prefix}/{name}" if prefix else name
            if rel in present:
                return rel
    return None


__all__ = ["PROJECT_FILES", "JuliaProject", "is_julia_project_file", "julia_project"]
