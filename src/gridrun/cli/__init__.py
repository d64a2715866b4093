"""The ``grid`` command line.

Every command is a thin layer: it parses options, calls into the pipeline
(:mod:`gridrun.submission`) or reads the store, and prints. ``GridError`` is caught
here, once, and printed as one line with a non-zero exit; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from gridrun import __version__
from gridrun.errors import GridError

COMMANDS = {
    "run": "gridrun.cli.run:run",
    "status": "gridrun.cli.status:status",
    "history": "gridrun.cli.status:history",
    "logs": "gridrun.cli.logs:logs",
    "metrics": "gridrun.cli.metrics:metrics",
    "stop": "gridrun.cli.control:stop",
    "delete": "gridrun.cli.control:delete",
    "artifacts": "gridrun.cli.artifacts:artifacts",
    "sync-env": "gridrun.cli.syncenv:sync_env",
    "datastore": "gridrun.cli.datastore:datastore",
    "images": "gridrun.cli.images:images",
    "agent": "gridrun.cli.agent:agent",
}


class GridGroup(click.Group):
    """Loads each command's module only when it is used, so ``grid run`` starts fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        import importlib

        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("gridrun"):
                return None
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GridError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            from gridrun.cli.output import error

            error(str(exc))
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            from gridrun.cli.output import error

            error("Interrupted.")
            sys.exit(130)


@click.group(cls=GridGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-o",
    "--output",
    type=click.Choice(["console", "json"]),
    default="console",
    help="Print listings as tables (console) or JSON.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="gridrun")
@click.pass_context
def cli(ctx: click.Context, output: str, debug: bool) -> None:
    """Run any script on local or Docker compute, with zero modifications."""
    from gridrun.home import GridHome

    ctx.obj = {"output": output, "debug": debug, "home": GridHome.from_env()}


def main() -> None:
    cli(prog_name="grid")


__all__ = ["cli", "main"]
