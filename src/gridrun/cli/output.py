"""Printing: rich tables in Grid's style (heavy head), JSON for scripts, one-line errors."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

STATUS_STYLE = {
    "building": "cyan",
    "pending": "yellow",
    "running": "blue",
    "succeeded": "green",
    "failed": "red",
    "stopped": "magenta",
}


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> Table:
    t = Table(box=box.HEAVY_HEAD, title=title, show_lines=False)
    for i, col in enumerate(columns):
        # Names are what users copy into the next command: never cut or wrap them.
        t.add_column(col, no_wrap=i == 0, overflow="fold" if i else "ellipsis")
    for row in rows:
        t.add_row(*[str(c) if not hasattr(c, "__rich__") else c for c in row])
    return t


def status_text(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def duration(seconds: float | None) -> str:
    """Grid's duration format: ``0d-00:02:12``."""
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{days}d-{hours:02d}:{minutes:02d}:{secs:02d}"


def span(start: float | None, end: float | None) -> float | None:
    if start is None:
        return None
    return (end or time.time()) - start


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def warn(message: str) -> None:
    err_console.print(f"[yellow]WARNING[/yellow] {message}", soft_wrap=True)


def error(message: str) -> None:
    err_console.print(f"[red]Error:[/red] {message}", soft_wrap=True)
