"""Helpers shared by the datastore tests (importable: pytest puts this folder on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from gridrun.cli.datastore import datastore
from gridrun.errors import GridError
from gridrun.home import GridHome


def make_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                out[str(p.relative_to(root))] = p.read_bytes()
    return out


@click.group()
@click.option("-o", "--output", type=click.Choice(["console", "json"]), default="console")
@click.pass_context
def cli(ctx: click.Context, output: str) -> None:
    """Stands in for the lead's top-level group: sets ctx.obj, prints GridErrors."""
    ctx.obj = {"output": output, "home": GridHome.from_env()}


cli.add_command(datastore)


def invoke(*args: str) -> tuple[int, str]:
    """Run the tiny CLI in-process; GridErrors become exit 1 and a line on stderr."""
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, list(args))
    if isinstance(result.exception, GridError):
        return 1, f"Error: {result.exception}"
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output
