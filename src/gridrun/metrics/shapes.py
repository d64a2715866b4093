"""Repeated line shapes of ``output.log``, parsed a block at a time in C.

A training script prints the same line over and over with new numbers
(``step: 812 loss: 0.3127 acc: 0.91``). Read one line at a time, each costs several
Python calls and a run of the general regex; a million lines take many seconds. So
once a shape has been seen a few times it becomes a *template*: the line's text with
each value replaced by a slot (``step: ⟨⟩ loss: ⟨⟩ acc: ⟨⟩``), and every template
goes into one regex that classifies a whole block of lines in one C call. A line that
fits a template yields its values as columns (``array``), converted with ``map``; no
Python code runs per line. Every other line is parsed as before, in order.

Why a template gives exactly what the general parser gives: its literal parts are a
real line's text around its values, and a value slot takes only characters of a
number (``[-+.0-9A-Za-z]+``), none of which ends a value for the general regex. That
regex sees the same characters except inside the slots, and only slots that are
numbers as it reads them (checked: ``float`` parses them, NaN and infinity spelled
its way) are taken; so it would find the same keys with the same values. Anything
else (a value ``float`` refuses, a non-finite step) makes the whole piece go through
the general parser line by line: slower, never different. One thing around a value
depends on the value itself: a label of several words (``Last reward:``) starts only
where no word and a space come before it, so after ``x: nan `` it does not and after
``x: 1 `` it does; a shape with a word and a space right after a value (where such a
label could start) is never a template. A key printed both by
template lines and by other lines is merged back in line order. The tests hold the
two paths equal on generated logs.

Only lines with a step key (``step: 3 loss: 0.1``) become templates: their x value is
on the line, so they neither read nor change the parser's state (the current step
and the per-key counters) and may be taken out of order. Lines with counters stay
in the general path.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import compress, repeat
from operator import add, itemgetter, mul, not_
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridrun.metrics.stdout import StdoutParser

from gridrun.store.metrics import Columns

# A value slot: the characters of a number, nan or inf in ASCII. None ends a value
# for the general regex, and a value written otherwise (1_000, unicode digits) fits no
# template, so its line is read the general way.
SLOT = r"([-+.0-9A-Za-z]+)"
# LogSink's header, its timestamp in the three parts StdoutParser.wall_time uses
# (2026-12-01T10:00:00 . 123456 +00:00); a line stamped otherwise fits no template.
_D2 = "[0-9][0-9]"
HEADER = (
    rf"\[std(?:out|err)\] \[([0-9]{{4}}-{_D2}-{_D2}T{_D2}:{_D2}:{_D2})"
    rf"\.([0-9]{{6}})([+-]{_D2}:{_D2})\] "
)
_STAMP_GROUPS = 3
SEEN_BEFORE_TEMPLATE = 3  # a shape printed this often is worth a compiled template
MAX_TEMPLATES = 8  # in one regex, most printed first
MAX_SHAPES = 4096  # shapes counted before the count is reset (ever-changing lines)
# After a value: a space, a word and a space, where a label of several words may start.
_WORD_AFTER = re.compile(r" [A-Za-z_][\w.\-]* ")


@dataclass
class Template:
    """One line shape: its literal parts and what each slot is."""

    literals: tuple[str, ...]  # len(keys) + 1 parts around the slots
    keys: tuple[str, ...]
    x_slot: int  # the slot holding the x value (a step key)
    points: tuple[tuple[str, int], ...]  # (key, slot): each key once, its first slot

    def pattern(self) -> str:
        return SLOT.join(re.escape(lit) for lit in self.literals)


def step_rank(rank: dict[str, int], key: str) -> int | None:
    """Where ``key`` stands among the step keys (``StdoutParser._emit`` inlines this):
    a label of words ranks as its last word, ``Train Epoch`` as ``epoch``."""
    r = rank.get(key.lower())
    if r is None and " " in key:
        r = rank.get(key.rpartition(" ")[2].lower())
    return r


def plan(keys: Sequence[str], rank: dict[str, int]) -> tuple[int, list[tuple[str, int]]] | None:
    """(x slot, [(key, slot)]) as ``StdoutParser._emit`` would read such a line, or
    None when the line has no step key or nothing but step keys."""
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    x_key, x_rank = None, len(rank)
    for k in first:
        r = step_rank(rank, k)
        if r is not None and r < x_rank:
            x_key, x_rank = k, r
    if x_key is None:
        return None
    points = [(k, i) for k, i in first.items() if k != x_key]
    if all(step_rank(rank, k) is not None for k, _ in points):
        return None
    return first[x_key], points


class LineShapes:
    """The templates learned from one experiment's log, and the regex holding them."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, ...], int] = {}
        self.templates: dict[tuple[str, ...], Template] = {}
        self._compiled: tuple[tuple[tuple[str, ...], ...], re.Pattern[str]] | None = None
        self.lines_by_template = 0  # lines read the fast way (what the tests and bench see)

    def observe(self, text: str, matches: Sequence[re.Match[str]], rank: dict[str, int]) -> None:
        """Count the shape of a line whose pairs all parsed (``matches`` of the general
        regex on ``text``, value in group 3); a shape seen often enough is kept."""
        if not matches or len(self.templates) >= MAX_TEMPLATES:
            return
        parts, pos = [], 0
        for m in matches:
            parts.append(text[pos : m.start("value")])
            pos = m.end("value")
            if _WORD_AFTER.match(text, pos):
                return
        parts.append(text[pos:])
        literals = tuple(parts)
        if literals in self.templates:
            return
        n = self._counts.get(literals, 0) + 1
        if n < SEEN_BEFORE_TEMPLATE:
            if len(self._counts) >= MAX_SHAPES:
                self._counts.clear()
            self._counts[literals] = n
            return
        self._counts.pop(literals, None)
        keys = tuple(m.group("key") for m in matches)
        found = plan(keys, rank)
        if found is not None:
            x_slot, points = found
            self.templates[literals] = Template(literals, keys, x_slot, tuple(points))

    def ready(self) -> bool:
        return bool(self.templates)

    def regex(self) -> tuple[list[Template], re.Pattern[str]]:
        """One regex for a block: per line, a template's slots or else the whole line."""
        order = tuple(self.templates)
        if self._compiled is None or self._compiled[0] != order:
            alts = "|".join(self.templates[k].pattern() for k in order)
            rx = re.compile(rf"\n(?:{HEADER}(?:{alts})(?=\n)|([^\n]*))")
            self._compiled = (order, rx)
        return [self.templates[k] for k in order], self._compiled[1]


class _Fallback(Exception):
    """This piece must be parsed line by line."""


class _Rows(list):  # type: ignore[type-arg]
    """A key's points from the other lines, each with the row it came from, so they
    can be put back in line order with the same key's points from templates."""

    def __init__(self, row: list[int]) -> None:
        super().__init__()
        self.row = row  # the row being parsed: a one-item list the loop updates
        self.rows: list[int] = []

    def append(self, point: Any) -> None:
        super().append(point)
        self.rows.append(self.row[0])


def feed_block(parser: StdoutParser, shapes: LineShapes, block: str, out: dict[str, Any]) -> None:
    """Parse complete lines of ``output.log`` (quick patterns, no carriage returns)."""
    templates, rx = shapes.regex()
    rows = rx.findall("\n" + block if block.endswith("\n") else "\n" + block + "\n")
    before = (dict(parser.counters), parser.step)
    # The other lines first, in order: they alone read and move the parser's state.
    # Points of keys that templates print too remember their rows, to be merged.
    current = [0]
    general: dict[str, Any] = {k: _Rows(current) for t in templates for k, _ in t.points}
    lines = map(itemgetter(-1), rows)
    try:
        for current[0], line in compress(enumerate(lines), map(itemgetter(-1), rows)):
            parser.feed_quick_line(line, general)
        by_key, taken = _template_points(templates, rows)
    except _Fallback:
        parser.counters, parser.step = before
        general, by_key, taken = {}, {}, 0
        for line in block.split("\n"):
            parser.feed_quick_line(line, general)
    shapes.lines_by_template += taken
    for key, pts in general.items():
        if not pts:
            continue
        if key in by_key:
            by_key[key].append((pts.rows, Columns.of(pts)))
        else:
            extend_points(out, key, list(pts))
    for key, parts in by_key.items():
        extend_points(out, key, parts[0][1] if len(parts) == 1 else _merge(parts))


def _template_points(
    templates: list[Template], rows: list[tuple[str, ...]]
) -> tuple[dict[str, list[tuple[list[int], Columns]]], int]:
    """Each key's points from the rows that fit each template, with their rows; and
    how many rows that was."""
    by_key: dict[str, list[tuple[list[int], Columns]]] = {}
    taken = 0
    slot = _STAMP_GROUPS  # a row starts with the timestamp's groups
    index = range(len(rows))
    for t in templates:
        first = itemgetter(slot)
        picked = list(compress(rows, map(first, rows)))
        where = list(compress(index, map(first, rows)))
        bad = _bad_dates(picked)
        if bad:  # the general parser skips such a line: so do we
            keep = [r[0] + r[2] not in bad for r in picked]
            picked, where = list(compress(picked, keep)), list(compress(where, keep))
        if picked:
            taken += len(picked)
            walls = _walls(*(list(map(itemgetter(i), picked)) for i in range(3)))
            values = [_numbers(list(map(itemgetter(slot + i), picked))) for i in range(len(t.keys))]
            xs = values[t.x_slot]
            if not _all_finite(xs):
                raise _Fallback  # the general parser would look for another x
            for key, i in t.points:
                by_key.setdefault(key, []).append((where, Columns(xs, walls, values[i])))
        slot += len(t.keys)
    return by_key, taken


def _merge(parts: list[tuple[list[int], Columns]]) -> Columns:
    """One key printed by several templates: their points back in line order."""
    where = [w for ws, _ in parts for w in ws]
    order = sorted(range(len(where)), key=where.__getitem__)
    take = itemgetter(*order) if len(order) > 1 else (lambda c: (c[order[0]],))

    def column(get: Callable[[Columns], array[float]]) -> array[float]:
        joined = array("d")
        for _, c in parts:
            joined.extend(get(c))
        return array("d", take(joined))

    return Columns(column(lambda c: c.steps), column(lambda c: c.walls), column(lambda c: c.values))


def _numbers(raw: list[str]) -> array[float]:
    """A slot's column as floats, or _Fallback where the general regex would differ."""
    try:
        values = array("d", map(float, raw))
    except ValueError:
        raise _Fallback from None
    if not _all_finite(values):
        from gridrun.metrics.stdout import VALUE_RE

        odd = compress(raw, map(not_, map(math.isfinite, values)))
        if not all(VALUE_RE.fullmatch(s) for s in odd):  # float() takes "NAN" too
            raise _Fallback
    return values


def _all_finite(values: array[float]) -> bool:
    """No NaN or infinity: one sum in C, checked one by one only when it is not finite
    (a NaN or infinity is in there, or finite values overflowed)."""
    return math.isfinite(sum(values)) or all(map(math.isfinite, values))


def _bad_dates(rows: list[tuple[str, ...]]) -> set[str]:
    """Date and zone (as keyed by :func:`_walls`) of the rows whose date is no date."""
    bad = set()
    for k in set(map(add, map(itemgetter(0), rows), map(itemgetter(2), rows))):
        try:
            datetime.fromisoformat(k)
        except ValueError:
            bad.add(k)
    return bad


def _walls(dates: list[str], micros: list[str], zones: list[str]) -> array[float]:
    """Seconds since the epoch of LogSink timestamps, as ``StdoutParser.wall_time``
    computes them: each second parsed once, the microseconds added."""
    keys = list(map(add, dates, zones))
    base = {k: datetime.fromisoformat(k).timestamp() for k in set(keys)}
    fraction = map(mul, map(int, micros), repeat(1e-6))
    return array("d", map(add, map(base.__getitem__, keys), fraction))


def extend_points(
    out: dict[str, Any], key: str, pts: list[tuple[float, float, float]] | Columns
) -> None:
    """Append ``pts`` to ``out[key]``, a list of points or columns, keeping order."""
    have = out.get(key)
    if have is None:
        out[key] = pts
    elif isinstance(have, list) and isinstance(pts, list):
        have.extend(pts)
    else:
        joined = Columns.of(have).copy()  # columns may share arrays (a template's x)
        joined.extend(Columns.of(pts))
        out[key] = joined
