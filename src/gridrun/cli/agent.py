"""``grid agent``: inspect or control the background agent (rarely needed)."""

from __future__ import annotations

import click

from gridrun.cli.common import home_of


@click.command(short_help="Show, start or stop the background agent.")
@click.argument(
    "action", type=click.Choice(["status", "start", "stop", "foreground"]), default="status"
)
@click.pass_context
def agent(ctx: click.Context, action: str) -> None:
    """The agent starts on demand with `grid run`; this is for debugging."""
    from gridrun.agent.control import agent_pid, agent_running, ensure_agent, stop_agent

    home = home_of(ctx).ensure()
    if action == "start":
        ensure_agent(home, wait=5.0)
    elif action == "stop":
        stop_agent(home)
    elif action == "foreground":
        from gridrun.agent.daemon import run_agent

        raise SystemExit(run_agent(home))
    running = agent_running(home)
    click.echo(
        f"agent: {'running, pid ' + str(agent_pid(home)) if running else 'not running'}"
        f" (GRID_HOME {home.root}, log {home.agent_log})"
    )
