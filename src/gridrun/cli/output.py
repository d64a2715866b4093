"""Printing: rich tables in Grid's style (heavy head), JSON for scripts, one-line errors.

Tables follow Grid's: names left-aligned and never cut, numbers right-aligned, times
in UTC with ``+0000``. A header is never split inside a word: every column is at least
as wide as its header's longest word, and a command that has a narrower layout for
small terminals (``grid status``) checks with :func:`fits` before choosing one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gridrun.cli.jsonout import emit_json as emit_json  # one way to print JSON: re-exported

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

STATUS_STYLE = {
    "building": "cyan",
    "pending": "yellow",
    "queued": "yellow",  # an engine holds it until a node has room
    "running": "blue",
    "succeeded": "green",
    "failed": "red",
    "stopped": "magenta",
    "pruned": "dark_orange",
    "tampered": "bold red",
}


@dataclass(frozen=True)
class Col:
    """One table column. ``justify=None`` right-aligns a column whose cells are all numbers."""

    header: str
    justify: Literal["left", "right"] | None = None
    keep: bool = False  # cells never wrap (a status, a duration); the header still may


def _col(c: str | Col) -> Col:
    return c if isinstance(c, Col) else Col(c)


def _plain(cell: Any) -> str:
    return Text.from_markup(cell).plain if isinstance(cell, str) else str(cell)


def _is_number(cell: Any) -> bool:
    """Counts, and swept values such as ``0.01``, are right-aligned like Grid's numbers."""
    if isinstance(cell, bool):
        return False
    if isinstance(cell, (int, float)):
        return True
    if isinstance(cell, str) and cell.strip():
        try:
            float(cell)
        except ValueError:
            return False
        return True
    return False


def _longest_word(text: str) -> int:
    return max((len(w) for line in text.splitlines() for w in line.split()), default=0)


def _widest_line(cells: Sequence[str]) -> int:
    return max((len(line) for c in cells for line in c.splitlines()), default=0)


def fits(columns: Sequence[str | Col], rows: Sequence[Sequence[Any]], width: int) -> bool:
    """Whether the table fits ``width`` with no header and no name split inside a word."""
    needed = 1  # the left border
    for i, col in enumerate(map(_col, columns)):
        cells = [_plain(row[i]) for row in rows]
        if i == 0 or col.keep:  # the name column is never wrapped
            cell_min = _widest_line(cells)
        else:
            cell_min = max((_longest_word(c) for c in cells), default=0)
        needed += max(_longest_word(col.header), cell_min) + 3  # padding and border
    return needed <= width


def table(
    columns: Sequence[str | Col], rows: Sequence[Sequence[Any]], title: str | None = None
) -> Table:
    t = Table(box=box.HEAVY_HEAD, title=title, show_lines=False)
    for i, col in enumerate(map(_col, columns)):
        justify = col.justify
        if justify is None:
            numeric = bool(rows) and all(_is_number(r[i]) or r[i] in ("", "-") for r in rows)
            justify = "right" if numeric and any(_is_number(r[i]) for r in rows) else "left"
        t.add_column(
            col.header,
            justify=justify,
            # Names are what users copy into the next command: never cut or wrap them.
            no_wrap=i == 0,
            overflow="fold" if i else "ellipsis",
            min_width=max(
                _longest_word(col.header),
                _widest_line([_plain(r[i]) for r in rows]) if col.keep else 0,
            ),
        )
    for row in rows:
        t.add_row(*[str(c) if not hasattr(c, "__rich__") else c for c in row])
    return t


def status_text(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def duration(seconds: float | None) -> str:
    """Grid's duration format: ``0d-00:02:12``."""
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{days}d-{hours:02d}:{minutes:02d}:{secs:02d}"


def span(start: float | None, end: float | None, now: float | None = None) -> float | None:
    if start is None:
        return None
    return (end or now or time.time()) - start


def when(ts: float | None) -> str:
    """Grid's timestamp: ``2021-06-12 17:13:54+0000`` (UTC, so every machine agrees)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S%z")


def warn(message: str) -> None:
    err_console.print(f"[yellow]WARNING[/yellow] {escape(message)}", soft_wrap=True)


def note(message: str) -> None:
    """What a flag means here (Grid's --use_spot on local compute): informative, not a warning."""
    err_console.print(f"[cyan]NOTE[/cyan] {escape(message)}", soft_wrap=True)


def error(message: str) -> None:
    # Messages quote user input ("[a] [b]", '\\[x]'): never read it as rich markup.
    err_console.print(f"[red]Error:[/red] {escape(message)}", soft_wrap=True)
