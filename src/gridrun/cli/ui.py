"""``grid ui``: serve the web dashboard for this GRID_HOME and print its URL."""

from __future__ import annotations

import click

from gridrun.cli.common import home_of


@click.command(short_help="Serve the web dashboard (runs, metrics, logs, new runs).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0: any free).")
@click.option(
    "--token",
    envvar="GRID_UI_TOKEN",
    help="Access token; generated when binding beyond localhost (also GRID_UI_TOKEN).",
)
@click.pass_context
def ui(ctx: click.Context, host: str, port: int, token: str | None) -> None:
    """Serve the dashboard until Ctrl-C.

    On localhost it needs no token. Bound to any other address it requires one,
    printed in the URL as Jupyter does; every action that changes state is a POST
    checked against cross-site requests.
    """
    from gridrun.cli.output import console
    from gridrun.ui.server import choose_token, serve

    home = home_of(ctx).ensure()
    chosen = choose_token(host, token)

    def announce(url: str) -> None:
        console.print(f"gridrun dashboard: {url}", markup=False, soft_wrap=True)
        console.print("Press Ctrl-C to stop.", markup=False)
        console.file.flush()

    try:
        serve(home, host, port, chosen, announce)
    except KeyboardInterrupt:
        pass
