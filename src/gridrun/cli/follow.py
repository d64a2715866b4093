"""Streaming experiment logs as they are written (``--follow``).

Following ends with a summary, so a user who walked away from a long sweep sees at a
glance how it went and where its files are::

    Run spiffy-sunfish-821 ended: 3 succeeded, 0 failed, 0 stopped in 0d-00:12:41.
    Artifacts: `grid artifacts spiffy-sunfish-821`

(the pointer on a line of its own, so that both fit 80 columns). A failed run's
last line points to the log of its first failed experiment (``Why:
`grid logs NAME-exp3```), after a ``Hint:`` for each failed experiment whose log
shows a common cause (:mod:`gridrun.hints`).

Lines show the time of day only (``[stdout] 01:10:54 loss 0.3``; ``grid logs``
without ``--follow`` keeps the full timestamp). gridrun's own lines (the build's,
hints, the summary) are wrapped to 80 columns under their text; the script's are
wrapped so on a terminal, and left whole in a pipe or file.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from gridrun.agent.builder import build_log_path
from gridrun.cli.common import heal
from gridrun.home import GridHome
from gridrun.store.db import Store
from gridrun.store.models import Experiment, Status

POLL = 0.05
HEAL_SECONDS = 2.0


# ``[stdout] [2026-12-05T01:10:54.679428+00:00] text``: a log line (gridrun.logs).
_LOG_LINE = re.compile(r"^\[(\w+)\] \[\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)[^\]]*\] ?(.*)$", re.S)
WIDTH = 80
MIN_ROOM = 20  # columns of text a line keeps however long its label


def compact_line(line: str, label: str | None = None, width: int | None = WIDTH) -> list[str]:
    """A log line as ``--follow`` shows it: ``[stdout] 01:10:54 text`` (after
    ``label | ``), wrapped to ``width`` columns under its text (None: not wrapped).
    ``grid logs`` keeps the full timestamp; a line not in the log format is only
    wrapped."""
    found = _LOG_LINE.match(line)
    head = f"{label} | " if label else ""
    if found:
        head += f"[{found.group(1)}] {found.group(2)} "
        text = found.group(3)
    else:
        text = line
    return fit(head, text, width) if width else [head + text]


def fit(head: str, text: str, width: int = WIDTH) -> list[str]:
    """``head + text`` in lines of ``width`` columns, the rest indented under the text.

    Breaks at the last space that fits (a word longer than the room is cut), and
    keeps the text's own leading spaces (a traceback's indentation) on its first line.
    """
    room = max(width - len(head), MIN_ROOM)
    indent = " " * len(head)
    out: list[str] = []
    while len(text) > room:
        lead = len(text) - len(text.lstrip(" "))
        cut = text.rfind(" ", lead + 1, room + 1)
        if cut <= lead:
            cut = room
        out.append((indent if out else head) + text[:cut].rstrip(" "))
        text = text[cut:].lstrip(" ")
    if text or not out:
        out.append(((indent if out else head) + text).rstrip(" ") or head.rstrip())
    return out


class Tail:
    """Reads the lines appended to a file since the last call (whole lines only).

    A read takes at most ``CHUNK`` bytes, so a 300 MB log is printed a megabyte at a
    time rather than held whole (with its lines) in memory. ``compact``: lines shown
    short and wrapped to 80 columns (:func:`compact_line`), as ``--follow`` does.
    """

    CHUNK = 1 << 20

    def __init__(
        self, path: Path, label: str | None, compact: bool = False, width: int | None = WIDTH
    ) -> None:
        self.path = path
        self.label = label
        self.compact = compact
        self.width = width  # of compact lines; None: not wrapped
        self.offset = 0  # bytes of the file consumed, the partial line included
        self._rest = b""  # an unfinished last line (possibly a split UTF-8 character)

    @property
    def partial(self) -> str:
        return self._rest.decode("utf-8", errors="replace")

    def read(self) -> list[str]:
        """Whole lines from the next chunk of the file (empty at its current end)."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read(self.CHUNK)
        except FileNotFoundError:
            return []
        if not data:
            return []
        self.offset += len(data)
        parts = (self._rest + data).split(b"\n")
        self._rest = parts.pop()
        text = [ln.decode("utf-8", errors="replace") for ln in parts]
        if self.compact:
            return [short for ln in text for short in compact_line(ln, self.label, self.width)]
        return [f"{self.label} | {ln}" if self.label else ln for ln in text]

    def lines(self) -> Iterator[str]:
        """Every whole line up to the file's current end, a chunk at a time."""
        while True:
            batch = self.read()
            if not batch and not self._more():
                return
            yield from batch

    def _more(self) -> bool:
        try:
            return self.path.stat().st_size > self.offset
        except FileNotFoundError:
            return False

    def skip_to_last(self, n: int) -> int:
        """Start at the last ``n`` lines, found by reading backwards from the end; returns
        how many lines there are from there (fewer than ``n`` in a shorter file)."""
        try:
            with open(self.path, "rb") as fh:
                end = fh.seek(0, 2)
                if n <= 0:
                    self.offset = end
                    return 0
                pos, found = end, 0
                # A final line without its newline still counts as one.
                if end and (fh.seek(end - 1), fh.read(1))[1] != b"\n":
                    found = 1
                while pos > 0 and found <= n:
                    step = min(self.CHUNK, pos)
                    pos -= step
                    fh.seek(pos)
                    block = fh.read(step)
                    cut = len(block)
                    while found <= n:
                        cut = block.rfind(b"\n", 0, cut)
                        if cut < 0:
                            break
                        found += 1
                        if found > n:
                            self.offset = pos + cut + 1
                            return n
                self.offset = 0
                return found
        except FileNotFoundError:
            return 0


def exit_code_of(exps: list[Experiment]) -> int:
    """0 when every experiment succeeded, else the first failure's exit code."""
    for e in exps:
        if e.status not in (Status.SUCCEEDED, Status.PRUNED):  # pruned: its search's call
            code = e.exit_code
            if code is None or code == 0:
                return 1
            return 128 - code if code < 0 else code
    return 0


def follow_run(
    home: GridHome,
    name: str,
    show_build: bool = True,
    prefix: bool | None = None,
    only: list[str] | None = None,
    tail_lines: int | None = None,
) -> int:
    """Print logs until every followed experiment has finished; return the exit code."""
    store = Store(home.db_path)
    run = store.get_run(name)
    exps = [e for e in run.experiments if only is None or e.name in only]
    # An adaptive search adds its trials as it goes: followed as they come, to its end.
    search = run.spec.search is not None and only is None
    labelled = prefix if prefix is not None else (len(exps) > 1 or search)
    tails: list[Tail] = []
    if show_build:
        build = Tail(build_log_path(home, run.name), "build" if labelled else None, True)
        tails.append(build)
    out = sys.stdout
    # gridrun's own lines (the build's, hints, the summary) fit 80 columns. The
    # script's lines are the script's: wrapped to the terminal under their short
    # prefix, and left whole in a pipe or file, where a JSON line or a URL must stay
    # one line to be parsed, grepped or copied.
    width = min(shutil.get_terminal_size((WIDTH, 24)).columns, WIDTH) if out.isatty() else None
    tails += [
        Tail(home.experiment(e.name).output_log, e.name if labelled else None, True, width)
        for e in exps
    ]
    if tail_lines is not None:
        _skip_to_last(tails, tail_lines)
    healed = time.monotonic()
    try:
        while True:
            if time.monotonic() - healed > HEAL_SECONDS:
                heal(home, store)  # the agent died while we follow: bring it back
                healed = time.monotonic()
            now_run = store.get_run(name)
            names = {e.name for e in exps}
            if search:
                for e in now_run.experiments:
                    if e.name not in names:
                        exps.append(e)
                        log = home.experiment(e.name).output_log
                        tails.append(Tail(log, e.name if labelled else None, True, width))
                names = {e.name for e in exps}
            current = [e for e in now_run.experiments if e.name in names]
            done = all(e.status.finished for e in current) and not (
                search and (now_run.search_open or not current)
            )
            for t in tails:
                for line in t.lines():
                    out.write(line + "\n")
            out.flush()
            if done:
                for t in tails:  # the supervisor wrote its last lines before finishing
                    for line in t.lines():
                        out.write(line + "\n")
                    if t.partial:
                        for line in compact_line(t.partial, t.label, t.width):
                            out.write(line + "\n")
                for line in hint_lines(home, current, labelled):
                    out.write(line + "\n")
                for line in summary_lines(name, current, only):
                    out.write(line + "\n")
                out.flush()
                return exit_code_of(current)
            time.sleep(POLL)
    except KeyboardInterrupt:
        out.write(f"Stopped following; the run goes on. `grid stop run {name}` stops it.\n")
        return 130
    finally:
        store.close()


def summary_lines(
    run_name: str, exps: list[Experiment], only: list[str] | None = None
) -> list[str]:
    """:func:`summary_line` in 80 columns: the counts, then the pointer (``Why: `grid
    logs NAME```) on the last line, of its own (the two rarely fit one line)."""
    line = summary_line(run_name, exps, only)
    counts, _, where = line.rpartition(". ")
    return [*fit("", counts + ".", WIDTH), *fit("", where, WIDTH)]


def summary_line(run_name: str, exps: list[Experiment], only: list[str] | None = None) -> str:
    """``Run NAME ended: 3 succeeded, 1 failed, 0 stopped in 0d-00:12:41. Artifacts: ...``."""
    from gridrun.cli.output import duration

    succeeded = sum(e.status == Status.SUCCEEDED for e in exps)
    failed = sum(e.status == Status.FAILED for e in exps)
    stopped = sum(e.status == Status.STOPPED for e in exps)
    starts = [e.queued_at for e in exps if e.queued_at]
    ends = [e.finished_at for e in exps if e.finished_at]
    took = duration(max(ends) - min(starts)) if starts and ends else "-"
    target = exps[0].name if only is not None and len(exps) == 1 else run_name
    what = f"Experiment {target}" if target != run_name else f"Run {run_name}"
    first_failed = next((e.name for e in exps if e.status == Status.FAILED), None)
    # A failed run's last line points to the log that explains it, not to its files.
    where = (
        f"Why: `grid logs {first_failed}`"
        if first_failed
        else f"Artifacts: `grid artifacts {target}`"
    )
    counts = f"{succeeded} succeeded, {failed} failed, {stopped} stopped"
    pruned = sum(e.status == Status.PRUNED for e in exps)
    if pruned:
        counts += f", {pruned} pruned"
    return f"{what} ended: {counts} in {took}. {where}"


def hint_lines(home: GridHome, exps: list[Experiment], labelled: bool) -> list[str]:
    """``Hint: ...`` for each failed experiment whose log shows why, wrapped to 80 columns."""
    import textwrap

    from gridrun.hints import experiment_hint

    out: list[str] = []
    for e in exps:
        if e.status != Status.FAILED:
            continue
        hint = experiment_hint(home.experiment_dir(e.name), e.exit_code, e.memory)
        if hint:
            text = f"Hint: {e.name}: {hint}" if labelled else f"Hint: {hint}"
            out += textwrap.wrap(text, 80, subsequent_indent="  ", break_on_hyphens=False)
    return out


def _skip_to_last(tails: list[Tail], n: int) -> None:
    for t in tails:
        t.skip_to_last(n)
