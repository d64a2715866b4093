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
    help="Access token (default: this GRID_HOME's own, kept in GRID_HOME/ui/token).",
)
@click.option(
    "--print-url",
    is_flag=True,
    help="Print the URL (with its token) of the dashboards already serving, and exit.",
)
@click.pass_context
def ui(ctx: click.Context, host: str, port: int, token: str | None, print_url: bool) -> None:
    """Serve the dashboard until Ctrl-C.

    Every address needs the token, localhost included, as Jupyter does: open the URL
    printed here (it ends in ?token=...), which trades the token for a session cookie.
    Scripts send `Authorization: token TOKEN`. `grid ui --print-url` shows the URL
    again. Every action that changes state is a POST checked against cross-site
    requests.
    """
    from gridrun.cli.output import console
    from gridrun.ui.server import choose_token, print_url_or_fail, serve

    if print_url:
        for url in print_url_or_fail(home_of(ctx)):
            console.print(url, markup=False, soft_wrap=True)
        return
    home = home_of(ctx).ensure()
    chosen = choose_token(home, token)

    def announce(url: str) -> None:
        console.print(f"gridrun dashboard: {url}", markup=False, soft_wrap=True)
        console.print("Press Ctrl-C to stop.", markup=False)
        console.file.flush()

    try:
        serve(home, host, port, chosen, announce)
    except KeyboardInterrupt:
        pass
