"""Grid's commands that a self-hosted gridrun answers in a line or two.

Grid users type what Grid's CLI reference taught them. Each command here either does
the local equivalent (``version``, ``view``, ``user``) or says in one line why a
self-hosted gridrun has no such thing and what to use instead, and exits 0 where
nothing was asked that could fail (``login``: there is nothing to log in to).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import click

from gridrun import __version__
from gridrun.cli.common import find_target, home_of, open_store
from gridrun.errors import UsageError


@click.command(short_help="Print gridrun's version.")
def version() -> None:
    """Print the CLI's version, as `grid version` did."""
    click.echo(f"gridrun {__version__}")


@click.command(short_help="Where gridrun's documentation is.")
def docs() -> None:
    """Say where the documentation is (`grid --help` and `grid COMMAND --help` too)."""
    from pathlib import Path

    import gridrun

    source = Path(gridrun.__file__).resolve().parents[2]
    readme = source / "README.md"
    where = (
        f"{readme} and {source / 'docs'}"
        if readme.is_file()
        else "the README and docs/ of gridrun's source"
    )
    click.echo(f"gridrun's documentation: {where}. Every command has --help.")


@click.command(short_help="Not needed: gridrun runs on your own machines.")
@click.option("--username", help="Ignored: gridrun has no accounts.")
@click.option("--key", help="Ignored: gridrun has no API keys.")
@click.pass_context
def login(ctx: click.Context, username: str | None, key: str | None) -> None:
    """gridrun needs no login: runs are kept in GRID_HOME on this machine."""
    click.echo(
        f"gridrun needs no login: it runs on your own machines, and keeps runs in "
        f"{home_of(ctx).root} (GRID_HOME)."
    )


@click.group(invoke_without_command=True, short_help="Show the local user and defaults.")
@click.pass_context
def user(ctx: click.Context) -> None:
    """Show who runs gridrun here, where its state is, and where runs go by default."""
    if ctx.invoked_subcommand is not None:
        return
    import getpass

    from gridrun.cli.common import output_of
    from gridrun.cli.output import emit_json
    from gridrun.config import load_machine_config

    home = home_of(ctx)
    from gridrun import clusters

    info = {
        "user": getpass.getuser(),
        "grid_home": str(home.root),
        "default_cluster": clusters.load(home).default or "-",
        "default_backend": load_machine_config(home.config_path).default_backend,
        "version": __version__,
    }
    if output_of(ctx) == "json":
        emit_json(info)
        return
    for key, value in info.items():
        click.echo(f"{key + ':':18}{value}")


@user.command("set-default-cluster", short_help="Where a plain `grid run` goes.")
@click.argument("name")
@click.pass_context
def set_default_cluster(ctx: click.Context, name: str) -> None:
    """Make NAME (see `grid clusters`) the cluster a `grid run` without --cluster or
    --backend goes to."""
    from gridrun import clusters

    target = clusters.set_default(home_of(ctx), name)
    click.echo(f"Default cluster: {target.name} ({target.backend}).")


user.add_command(set_default_cluster, "set-cluster-context")  # Grid's older name


def refusal(name: str, line: str, short_help: str | None = None) -> click.Command:
    """A Grid command (or subcommand) with no self-hosted counterpart: whatever
    arguments and options Grid gave it, it answers ``line`` and exits 2."""

    @click.command(
        name=name,
        short_help=short_help or "Not in a self-hosted gridrun (says what to use instead).",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def command() -> None:
        raise UsageError(line)

    command.help = line
    return command


def _not_here(what: str, instead: str) -> click.Command:
    return refusal(what, f"A self-hosted gridrun has no `grid {what}`: {instead}")


team = _not_here("team", "it has no teams; share GRID_HOME's runs with `grid ui --host`.")
credentials = _not_here(
    "credentials",
    "it uses no cloud credentials; engines use their own (RAY_ADDRESS, DOCKER_HOST).",
)
edit = _not_here("edit", "it creates no clusters; configure the engine itself (Ray, Docker).")

#: Why `grid ssh-keys` has nothing to manage: what sessions use instead of a key.
NO_SSH_KEYS = (
    "gridrun's sessions use no SSH keys: `grid session ssh NAME` opens a shell on this "
    "machine directly (no sshd), and each session's JupyterLab has its own token "
    "(`grid session create` and `resume` print it)."
)


@click.group("ssh-keys", short_help="None needed: sessions use no SSH keys (says why).")
def ssh_keys() -> None:
    """Grid's SSH keys reached its sessions' nodes; gridrun's sessions need none."""


@ssh_keys.command("list", short_help="Says why there are none.")
@click.option("--limit", type=int, help="Accepted, as Grid's; there is nothing to limit.")
@click.pass_context
def ssh_keys_list(ctx: click.Context, limit: int | None) -> None:
    """There are none to list: says what sessions use instead (exit 0); ``-o json``
    prints the empty list, and the line goes to stderr."""
    from gridrun.cli.common import output_of

    if output_of(ctx) == "json":
        from gridrun.cli.output import emit_json

        emit_json([])
        click.echo(NO_SSH_KEYS, err=True)
        return
    click.echo(NO_SSH_KEYS)


ssh_keys.add_command(ssh_keys_list, "authorized_keys")
ssh_keys.add_command(
    refusal("add", f"Nothing to add: {NO_SSH_KEYS}", "Refused: sessions use no SSH keys.")
)
ssh_keys.add_command(
    refusal("rm", f"Nothing to remove: {NO_SSH_KEYS}", "Refused: sessions use no SSH keys.")
)


@click.command(short_help="Open the dashboard's page of a run or experiment.")
@click.argument("name", metavar="RUN_OR_EXPERIMENT")
@click.option("--no-browser", is_flag=True, help="Only print the URL.")
@click.pass_context
def view(ctx: click.Context, name: str, no_browser: bool) -> None:
    """Print (and, with a desktop, open) the dashboard's URL for RUN_OR_EXPERIMENT,
    with its token, starting the dashboard in the background when none is running."""
    from urllib.parse import quote

    from gridrun.ui.server import running_urls

    home = home_of(ctx)
    store = open_store(ctx, read_only=True)
    run, exps = find_target(store, name)
    path = f"runs/{quote(run.name)}" if run.name == name else f"experiments/{quote(exps[0].name)}"
    urls = running_urls(home)
    if not urls:
        urls = _start_dashboard(ctx)
    base, _, token = urls[0].partition("?")
    url = f"{base}{path}?{token}" if token else f"{base}{path}"
    click.echo(url)
    if not no_browser and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        import webbrowser

        webbrowser.open(url)


def _start_dashboard(ctx: click.Context) -> list[str]:
    """``grid ui`` on a free port, detached (it outlives this command), until it
    has written its URL."""
    from gridrun.ui.server import running_urls

    home = home_of(ctx).ensure()
    log = open(home.root / "ui.log", "ab")  # noqa: SIM115 (the child keeps it)
    subprocess.Popen(
        [sys.executable, "-m", "gridrun", "ui", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        env=dict(os.environ, GRID_HOME=str(home.root)),
    )
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        urls = running_urls(home)
        if urls:
            return urls
        time.sleep(0.1)
    raise UsageError(
        "The dashboard did not start within 60 s.", hint=f"See {home.root / 'ui.log'}."
    )
