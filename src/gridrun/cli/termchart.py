"""Small line charts in the terminal, drawn with braille dots (``grid metrics``).

Each character cell holds a 2 x 4 grid of dots (U+2800 + a bit per dot), so a chart of
60 x 8 cells has 120 x 32 points of resolution: enough to see a loss fall or a run
diverge without leaving the shell. One line per experiment, in its own colour; where
lines cross, the cell takes the colour of the last one drawn. Own code rather than a
plotting library: the one maintained library for this (plotext) rewrote its API in
6.0, and what is needed here is a hundred lines with no dependency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

# Bit of each dot in a braille cell, by (column, row) inside the 2 x 4 cell.
_DOT = {(0, 0): 0x01, (0, 1): 0x02, (0, 2): 0x04, (1, 0): 0x08, (1, 1): 0x10, (1, 2): 0x20}
_DOT.update({(0, 3): 0x40, (1, 3): 0x80})
COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta")


@dataclass(frozen=True)
class Line:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]


def _finite(line: Line) -> list[tuple[float, float]]:
    return [(x, y) for x, y in zip(line.xs, line.ys, strict=True) if math.isfinite(y)]


def tick_label(value: float, span: float) -> str:
    """A value with the digits its axis' span needs: 0.0002 and 0.00025 stay apart."""
    if value == 0:
        return "0"
    mag = abs(value)
    places = max(0, 2 - math.floor(math.log10(span))) if span > 0 else 3
    if mag < 1e-3 or mag >= 1e6:
        digits = max(1, math.floor(math.log10(mag)) - math.floor(math.log10(span or mag)) + 2)
        return f"{value:.{min(digits, 6)}e}"
    return f"{value:.{min(places, 8)}f}"


def _x_label(value: float, span: float) -> str:
    return str(int(value)) if float(value).is_integer() else tick_label(value, span)


def render(title: str, lines: Sequence[Line], width: int = 60, height: int = 8) -> list[Text]:
    """The chart as rich Text rows: a title, the plot with y labels, the x range."""
    points = [_finite(line) for line in lines]
    every = [p for pts in points for p in pts]
    rows = [Text(title, style="bold")]
    if not every:
        return [*rows, Text("  (no finite values)", style="dim")]
    x0, x1 = min(p[0] for p in every), max(p[0] for p in every)
    y0, y1 = min(p[1] for p in every), max(p[1] for p in every)
    if y0 == y1:
        y0, y1 = y0 - 0.5 * (abs(y0) or 1), y1 + 0.5 * (abs(y1) or 1)
    dots_w, dots_h = 2 * width, 4 * height
    cells: dict[tuple[int, int], int] = {}
    colour: dict[tuple[int, int], str] = {}

    def dot(px: int, py: int, style: str) -> None:
        cell = (px // 2, py // 4)
        cells[cell] = cells.get(cell, 0) | _DOT[(px % 2, py % 4)]
        colour[cell] = style

    for i, pts in enumerate(points):
        style = COLOURS[i % len(COLOURS)]
        prev: tuple[int, int] | None = None
        for x, y in pts:
            px = round((x - x0) / (x1 - x0) * (dots_w - 1)) if x1 > x0 else 0
            py = round((y1 - y) / (y1 - y0) * (dots_h - 1))
            if prev is None:
                dot(px, py, style)
            else:  # join to the previous point, so a line reads as a line
                steps = max(abs(px - prev[0]), abs(py - prev[1]), 1)
                for s in range(1, steps + 1):
                    dot(
                        prev[0] + round((px - prev[0]) * s / steps),
                        prev[1] + round((py - prev[1]) * s / steps),
                        style,
                    )
            prev = (px, py)
    span = y1 - y0
    labels = [tick_label(y1, span), tick_label((y0 + y1) / 2, span), tick_label(y0, span)]
    pad = max(len(label) for label in labels)
    for r in range(height):
        label = labels[0] if r == 0 else labels[2] if r == height - 1 else ""
        if r == height // 2 and height > 2:
            label = labels[1]
        row = Text(f"{label:>{pad}} ┤", style="dim")
        for c in range(width):
            bits = cells.get((c, r), 0)
            row.append(chr(0x2800 + bits), style=colour.get((c, r), ""))
        rows.append(row)
    x_axis = _x_label(x0, x1 - x0)
    right = _x_label(x1, x1 - x0) if x1 > x0 else ""
    rows.append(Text(" " * (pad + 2) + x_axis + right.rjust(width - len(x_axis)), style="dim"))
    return rows


def legend(labels: Sequence[str]) -> Text:
    """Which colour is which line."""
    out = Text()
    for i, label in enumerate(labels):
        if i:
            out.append("  ")
        out.append("━━ ", style=COLOURS[i % len(COLOURS)])
        out.append(label)
    return out
