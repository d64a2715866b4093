"""``grid artifacts RUN|EXPERIMENT``: copy saved artifacts into per-experiment folders."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import click

from gridrun.cli.common import find_target, home_of, open_store, output_of
from gridrun.errors import UsageError


@click.command(short_help="Download the files experiments created.")
@click.argument("name")
@click.option(
    "--download_dir",
    "--download-dir",
    "download_dir",
    default="./grid_artifacts",
    show_default=True,
    help="Where to copy them.",
)
@click.option(
    "-m",
    "--match_regex",
    "--match-regex",
    "match",
    default=None,
    help="Only artifacts whose path matches this regular expression.",
)
@click.pass_context
def artifacts(ctx: click.Context, name: str, download_dir: str, match: str | None) -> None:
    """Copy the artifacts of a run's experiments (or one experiment) to DOWNLOAD_DIR/<exp>/."""
    from gridrun.cli.output import console, emit_json

    try:
        pattern = re.compile(match) if match else None
    except re.error as exc:
        raise UsageError(f"Invalid --match_regex '{match}': {exc}.") from None
    home = home_of(ctx)
    store = open_store(ctx)
    _run, exps = find_target(store, name)
    dest_root = Path(download_dir)
    copied: dict[str, list[str]] = {}
    for e in exps:
        src = home.experiment_dir(e.name) / "artifacts"
        files: list[str] = []
        if src.is_dir():
            for dirpath, _dirs, filenames in os.walk(src):
                for fn in filenames:
                    rel = (Path(dirpath) / fn).relative_to(src).as_posix()
                    if pattern and not pattern.search(rel):
                        continue
                    target = dest_root / e.name / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(Path(dirpath) / fn, target)
                    files.append(rel)
        copied[e.name] = sorted(files)
    if output_of(ctx) == "json":
        emit_json(
            {
                exp: [str((dest_root / exp / f).absolute()) for f in files]
                for exp, files in copied.items()
            }
        )
        return
    total = sum(len(f) for f in copied.values())
    for exp, files in copied.items():
        for f in files:
            console.print(f"{exp}/{f}", markup=False)
    console.print(f"Copied {total} artifact(s) to {dest_root.absolute()}.", markup=False)
