"""The ``grid`` command line.

Every command is a thin layer: it parses options, calls into the pipeline
(:mod:`gridrun.submission`) or reads the store, and prints. ``GridError`` is caught
here, once, and printed as one line with a non-zero exit; ``--debug`` shows the
traceback instead. Click's own usage errors (an unknown option, a value of the wrong
type) are printed the same way, in Grid's wording: ``Error: No such option '--cpu'.
Did you mean '--cpus'?``, without click's multi-line usage banner.
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
    "preempt": "gridrun.cli.control:preempt",
    "delete": "gridrun.cli.control:delete",
    "gc": "gridrun.cli.control:gc",
    "artifacts": "gridrun.cli.artifacts:artifacts",
    "sync-env": "gridrun.cli.syncenv:sync_env",
    "datastore": "gridrun.cli.datastore:datastore",
    "images": "gridrun.cli.images:images",
    "agent": "gridrun.cli.agent:agent",
    "ui": "gridrun.cli.ui:ui",
    "view": "gridrun.cli.gridref:view",
    "version": "gridrun.cli.gridref:version",
    "docs": "gridrun.cli.gridref:docs",
    "login": "gridrun.cli.gridref:login",
    "user": "gridrun.cli.gridref:user",
    "team": "gridrun.cli.gridref:team",
    "credentials": "gridrun.cli.gridref:credentials",
    "edit": "gridrun.cli.gridref:edit",
    "clusters": "gridrun.cli.clusters:clusters",
    "instance-types": "gridrun.cli.clusters:instance_types",
    "session": "gridrun.cli.session:session",
    "ssh-keys": "gridrun.cli.gridref:ssh_keys",
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

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """An unknown command names the nearest one: `grid runn` -> `grid run`."""
        name = click.utils.make_str(args[0])
        if self.get_command(ctx, name) is None and not name.startswith("-"):
            import difflib

            near = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.6)
            hint = f" Did you mean '{near[0]}'?" if near else " `grid --help` lists them."
            raise click.UsageError(f"No such command '{name}'.{hint}", ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GridError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            from gridrun.cli.output import error

            error(str(exc))
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _usage_error(exc)
        except KeyboardInterrupt:
            from gridrun.cli.output import error

            error("Interrupted.")
            sys.exit(130)
        except Exception as exc:
            # A full or read-only disk can strike anywhere: always one actionable line.
            line = _disk_error(exc)
            if line is None or (ctx.obj and ctx.obj.get("debug")):
                raise
            from gridrun.cli.output import error

            error(line)
            sys.exit(1)


def _disk_error(exc: BaseException) -> str | None:
    import errno
    import sqlite3

    from gridrun.errors import out_of_space

    cause = exc.__cause__ or exc
    err = getattr(exc, "errno", None) or getattr(cause, "errno", None)
    text = str(exc).lower()
    where = getattr(exc, "filename", None) or getattr(cause, "filename", None)
    at = f" (writing {where})" if where else ""
    if out_of_space(exc):
        return (
            f"No space left on device{at}. Free some space (`grid delete run NAME`, "
            "`grid datastore delete`, or elsewhere on that disk) and retry."
        )
    if err == errno.EROFS or (isinstance(exc, sqlite3.OperationalError) and "readonly" in text):
        return (
            f"GRID_HOME is on a read-only filesystem{at}. Read-only commands (status, "
            "history, logs) still work; remount it read-write or set GRID_HOME elsewhere."
        )
    return None


@click.group(cls=GridGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-o",
    "--output",
    type=click.Choice(["console", "json"]),
    default="console",
    help="Print listings as tables (console) or JSON.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="gridrun", message="%(prog)s, version %(version)s")
@click.pass_context
def cli(ctx: click.Context, output: str, debug: bool) -> None:
    """Run any script on local or Docker compute, with zero modifications."""
    from gridrun.home import GridHome

    ctx.obj = {"output": output, "debug": debug, "home": GridHome.from_env()}


def usage_message(exc: click.UsageError) -> str:
    """One line for a click usage error; unknown options get Grid's wording."""
    if isinstance(exc, click.NoSuchOption):
        message = f"No such option '{exc.option_name}'."
        if exc.possibilities:
            message += " Did you mean " + " or ".join(f"'{p}'" for p in exc.possibilities) + "?"
        else:
            command = exc.ctx.command_path if exc.ctx else "grid"
            message += f" `{command} --help` lists the options."
        return message
    return " ".join(exc.format_message().split())


def _usage_error(exc: click.UsageError) -> None:
    from gridrun.cli.output import error

    error(usage_message(exc))
    sys.exit(exc.exit_code)


def main() -> None:
    try:
        code = cli.main(prog_name="grid", standalone_mode=False)
    except click.UsageError as exc:  # raised before any command runs: `grid --verson`
        _usage_error(exc)
    except click.Abort:
        from gridrun.cli.output import error

        error("Aborted.")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["cli", "main"]
