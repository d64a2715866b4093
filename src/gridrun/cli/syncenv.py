"""``grid sync-env``: write the dependencies gridrun infers to ``requirements.txt``."""

from __future__ import annotations

from pathlib import Path

import click

from gridrun.cli.common import home_of


@click.command("sync-env", short_help="Write inferred, pinned dependencies to requirements.txt.")
@click.option(
    "-l",
    "--localdir",
    type=click.Path(file_okay=False),
    default=".",
    help="Project folder (the current directory).",
)
@click.option("--script", default=None, help="Entry script whose folder counts as the project's.")
@click.option("-y", "--yes", is_flag=True, help="Overwrite an existing requirements.txt.")
@click.option(
    "--dependency_file",
    help="The requirements file to write, in the project (requirements.txt).",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help="A Grid-style YAML: its compute.train.dependency_file is the file to write.",
)
@click.pass_context
def sync_env(
    ctx: click.Context,
    localdir: str,
    script: str | None,
    yes: bool,
    dependency_file: str | None,
    config: str | None,
) -> None:
    """Scan the project's imports and write the pinned list to requirements.txt."""
    from gridrun.cli.output import console
    from gridrun.deps import infer_requirements, write_requirements
    from gridrun.errors import ProjectError, UsageError
    from gridrun.project import take_snapshot

    root = Path(localdir).absolute()
    if not root.is_dir():
        raise ProjectError(f"Project folder {root} does not exist.")
    if config and not dependency_file:
        from gridrun.config import load_run_config

        dependency_file = load_run_config(Path(config)).train.get("dependency_file")
    name = dependency_file or "requirements.txt"
    if Path(name).name.lower().endswith((".yml", ".yaml", ".toml")):
        raise UsageError(
            f"sync-env writes a pip requirements file, and {name} is not one: give a "
            ".txt path (environment.yml, pyproject.toml and Project.toml are yours to edit)."
        )
    home = home_of(ctx).ensure()
    snapshot = take_snapshot(root, home)
    reqs = infer_requirements(root, snapshot.paths(), script or "", cache_dir=home.cache)
    target = root / name
    if (
        target.exists()
        and not yes
        and not click.confirm(f"{target} exists. Overwrite it?", default=False)
    ):
        console.print(f"Left {name} unchanged.", markup=False)
        return
    write_requirements(target, reqs)
    console.print(f"Wrote {len(reqs)} requirement(s) to {target}:", markup=False)
    for r in reqs:
        console.print(f"  {r}", markup=False)
