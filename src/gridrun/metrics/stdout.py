"""Metrics scraped from what an unmodified script prints.

Anchored on Guild's output scalars and Katib's stdout collector: a metric is
``key: value`` or ``key=value``, several may share a line
(``epoch: 3 loss: 0.31 acc: 0.9``), a printed dict counts too
(``{'loss': 0.31, 'epoch': 0.5}``, as Hugging Face's Trainer prints), and values
are ints, floats, exponents, ``nan`` and ``inf``. A key named like a step
(``step``, ``global_step``, ``iteration``, ``iter``, ``epoch``) on the same line is
the x value of the others; a line holding only such a key sets the step for the
lines that follow (Guild's ``step`` scalar); otherwise each key counts its own
values (0, 1, 2, ...).

A key must start a word and a value must end one, so timestamps (``12:30:45``), URLs
(``localhost:8080/x``) and ratios do not become metrics. For a progress bar redrawn
with carriage returns, only the last drawing of the line counts (tqdm's postfix,
Lightning's bar, Keras' ``- loss: 0.43 - accuracy: 0.81``).

Precision over recall (issue 19): a printed configuration is not a metric. A call
with keyword arguments (``Namespace(lr=0.1, ...)``, a model's repr), a dict holding
anything but numbers, and a value followed by words that start no other pair (the
banner ``TPU available: False, using: 0 TPU cores``) give nothing. A label before a
colon may be several words, ``Last reward: 9  Average reward: 12`` being two series,
and a key may look like a call (``D(x): 0.5``). A line made only of pairs without
colons (``epoch 1 loss 0.5``, ``step 100 | loss 0.5 | lr 0.001``) is read too. Numbers
printed once or never changing are still read; :mod:`gridrun.metrics.constants` tells
them apart for display. ``tests/metrics/logs/`` holds real logs of the frameworks
this is measured on (``benchmarks/bench_metric_precision.py``).

Users add patterns (or turn the built-in one off) under ``metrics:`` in
``GRID_HOME/config.yaml`` or a run's ``--config``; see :func:`load_patterns`.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gridrun.errors import ConfigError
from gridrun.metrics.shapes import LineShapes, extend_points, feed_block
from gridrun.store.metrics import Point

# A key is a word, optionally with a call-like suffix (``D(x)``, ``D(G(z))``, as
# pytorch/examples' dcgan prints them). \key in a user pattern stands for this.
KEY = r"[A-Za-z_][\w.\-/]*(?:\((?:[\w.]|\([\w.]*\))*\))?"
# In the built-in pattern, possessive where Python has it (3.11): a word of a key or
# the digits of a value are never given back, since what must follow them there is
# never one of their characters; the same matches, a fifth faster, without
# backtracking through every shorter prefix. (Not in user patterns: what follows
# \key or \value there is theirs.)
_P = "+" if sys.version_info >= (3, 11) else ""
_KEY = rf"[A-Za-z_][\w.\-/]*{_P}(?:\((?:[\w.]|\([\w.]*\))*\))?"
# A label before a colon may be up to four words, so that "Last reward: 9" and
# "Average reward: 12" stay two series (not one "reward"). Only before a colon: in
# ``train step=5`` the key is ``step``, as code prints it. Such a label starts where
# no word and a space come before it (a line's start, a tab, ``- ``, a value), so
# that running text is not scanned word by word for one: half the parsing speed.
_WORD = rf"[A-Za-z_][\w.\-]*{_P}"
_LABEL = rf"(?:{_KEY}|(?<![A-Za-z] )(?:{_WORD} ){{1,3}}{_KEY}(?=[\"']?[ \t]*:))"
# Loose on purpose (``1.2.3`` matches, then fails float() and is dropped): a simpler
# pattern is measurably faster, and ingest speed is bounded by this regex.
VALUE = r"[-+]?(?:[\d.]+(?:[eE][-+]?\d+)?|[Nn]a[Nn]|[Ii]nf(?:inity)?)"
_VALUE = rf"[-+]?(?:[\d.]+{_P}(?:[eE][-+]?\d+{_P})?|[Nn]a[Nn]|[Ii]nf(?:inity)?)"
# A value ends a word, and is not followed by words that start no other pair: in
# Lightning's ``TPU available: False, using: 0 TPU cores`` the 0 counts cores, it is
# a sentence, not a metric.
_END = r"(?=$|[\s,;|)\]}])(?![ \t]+[A-Za-z]\w*(?:[ \t]+[A-Za-z]\w*)*[ \t]*(?:$|[^\w \t:=(]))"
_KV = (
    rf"(?<![\w.\-/:=@])(?P<q>[\"']?)(?P<key>{_LABEL})(?P=q)[ \t]*[:=][ \t]*"
    rf"(?P<vq>[\"']?)(?P<value>{_VALUE})(?P=vq){_END}"
)
# Configuration prints are not metrics, and scanning steps over them whole: a call
# with keyword arguments on one line (argparse's ``Namespace(lr=0.1, ...)``, a model's
# repr ``BatchNorm2d(64, eps=1e-05, momentum=0.1)``) and a dict with any value that is
# not a number (``{'model': 'resnet', 'lr': 0.1}``; Hugging Face's all-number dicts of
# metrics are read, their numbers quoted or not: ``{'loss': '0.6924', 'epoch': '0.25'}``).
_CALL = r"(?<![\w.])[A-Za-z_][\w.]*\((?=[^()\n]*=)(?:[^()\n]|\((?:[^()\n]|\([^()\n]*\))*\))*\)"
_NUM_START = r"[\"']?[-+]?(?:\.?\d|[Nn]a[Nn]|[Ii]nf)"
# A dict is closed on its line (one look ahead) before its colons are tried: an
# unclosed one with many colons would otherwise be rescanned from each colon.
_DICT = rf"\{{(?=[^{{}}\n]*\}})[^{{}}\n]*?:[ \t]*(?![ \t]|{_NUM_START})[^{{}}\n]*\}}"
_SKIP = rf"{_CALL}|{_DICT}"
# What may start a skipped print or a pair: one test, so that most positions of a
# line (digits, spaces, punctuation) fail once rather than once per alternative.
_START = r"(?=[A-Za-z_{\"'])"
DEFAULT_PATTERN = re.compile(rf"{_START}(?:{_SKIP}|{_KV})")
VALUE_RE = re.compile(VALUE)
_FINDALL = DEFAULT_PATTERN.findall
_FINDITER = DEFAULT_PATTERN.finditer
# Lines of pairs without a colon or an equals sign: ``epoch 1 loss 0.5``,
# ``step 100 | loss 0.5 | lr 0.001``. Read only when the whole line is two or more
# such pairs (a sentence like ``using 4 GPUs`` or ``Epoch 1 of 10`` is not), and
# never keyed by a small word of prose.
_SP_KEY = (
    r"(?!(?i:of|in|at|on|to|for|and|or|from|by|with|after|over|out|per|is|was)\b)[A-Za-z_][\w.\-/]*"
)
_SP_SEP = r"(?:[ \t]*[|,;][ \t]*|[ \t]+)"
_SP_PAIR = rf"{_SP_KEY}[ \t]+{VALUE}"
_SPACED = rf"[ \t]*{_SP_PAIR}(?:{_SP_SEP}{_SP_PAIR})+[ \t]*[|,;]?[ \t]*"
_SPACED_LINE = re.compile(rf"{_SPACED}$")
_SPACED_PAIRS = re.compile(rf"({_SP_KEY})[ \t]+({VALUE})").findall
# Bytes of a block read line by line, learning its shapes, before the rest of it goes
# the block path of shapes.py (or, no shape repeating, the token path below).
_HEAD_BYTES = 16 << 10
# The general path a block at a time, for logs no template fits: one token per line
# start (its header, or nothing for a line without one, whose pairs are then not
# read, as feed_log_line does; a whole line of spaced pairs with its header), then
# the configuration prints skipped and the pairs on it, all in one C call.
_LOG_TOKENS = re.compile(
    rf"^(?:\[(\w+)\] \[([^\]\n]*)\] (gridrun: )?(?:(?P<spaced>{_SPACED})$)?|(?P<bare>))"
    rf"|{_START}(?:(?P<skip>{_SKIP})|{_KV})",
    re.M,
)
# In precedence order: the first present on a line is its x value.
STEP_KEYS = ("step", "global_step", "iteration", "iter", "epoch")
_STREAM_PREFIXES = ("[stdout] [", "[stderr] [")


@dataclass
class Patterns:
    """The regular expressions one experiment's output is read with."""

    user: list[tuple[re.Pattern[str], str | None]] = field(default_factory=list)
    defaults: bool = True
    step_keys: tuple[str, ...] = STEP_KEYS

    def fingerprint(self) -> list[Any]:
        return [[p.pattern, k] for p, k in self.user] + [self.defaults, list(self.step_keys)]


def _compile(raw: str, fixed_key: str | None, where: str) -> re.Pattern[str]:
    text = raw.replace(r"\key", f"(?P<key>{KEY})").replace(r"\value", f"(?P<value>{VALUE})")
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise ConfigError(f"Invalid metrics pattern {raw!r} in {where}: {exc}.") from exc
    groups = set(pattern.groupindex)
    if fixed_key is None and not ({"key", "value"} <= groups or pattern.groups == 2):
        raise ConfigError(
            f"Metrics pattern {raw!r} in {where} must capture a key and a value.",
            hint=r"Use two groups, named groups (?P<key>...) (?P<value>...), or \key and \value.",
        )
    if fixed_key is not None and not ("value" in groups or pattern.groups == 1):
        raise ConfigError(
            f"Metrics pattern {raw!r} for '{fixed_key}' in {where} must capture one value.",
            hint=r"Use one group, (?P<value>...), or \value.",
        )
    return pattern


def load_patterns(configs: Iterable[tuple[Mapping[str, Any] | None, str]]) -> Patterns:
    """Patterns from ``metrics:`` sections, most specific (the run's ``--config``) first.

    Each section may hold ``patterns`` (a list of regexes capturing a key and a value,
    or a mapping ``key: regex`` capturing a value; ``\\key`` and ``\\value`` stand for
    the built-in forms), ``default_patterns: false`` to use only those, and
    ``step_keys`` to say which keys are x values. User patterns are tried before the
    built-in one, and a key they found on a line is not read again from that line.
    """
    out = Patterns()
    seen_defaults = seen_steps = False
    for section, where in configs:
        if not section:
            continue
        if not isinstance(section, Mapping):
            raise ConfigError(f"'metrics' in {where} must be a mapping.")
        unknown = set(section) - {"patterns", "default_patterns", "step_keys"}
        if unknown:
            raise ConfigError(
                f"Unknown key(s) {', '.join(sorted(unknown))} in {where} metrics.",
                hint="Valid keys: default_patterns, patterns, step_keys.",
            )
        raw = section.get("patterns") or []
        items: list[tuple[str, str | None]] = []
        if isinstance(raw, Mapping):
            items = [(str(v), str(k)) for k, v in raw.items()]
        elif isinstance(raw, list):
            for item in raw:
                if isinstance(item, str):
                    items.append((item, None))
                elif isinstance(item, Mapping):
                    items += [(str(v), str(k)) for k, v in item.items()]
                else:
                    raise ConfigError(f"A metrics pattern in {where} must be a string.")
        else:
            raise ConfigError(f"'metrics.patterns' in {where} must be a list or a mapping.")
        out.user += [(_compile(p, k, where), k) for p, k in items]
        if "default_patterns" in section and not seen_defaults:
            out.defaults, seen_defaults = bool(section["default_patterns"]), True
        if "step_keys" in section and not seen_steps:
            steps = section["step_keys"]
            if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
                raise ConfigError(f"'metrics.step_keys' in {where} must be a list of names.")
            out.step_keys, seen_steps = tuple(s.lower() for s in steps), True
    return out


def _spaced_pairs(text: str, found: dict[str, float]) -> None:
    """The pairs of a line of spaced pairs (``epoch 1 loss 0.5``) into ``found``."""
    for key, raw in _SPACED_PAIRS(text):
        if key not in found:
            try:
                found[key] = float(raw)
            except ValueError:
                continue


def _number(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


class StdoutParser:
    """Turns ``output.log`` lines into points; its state survives in the store.

    ``state`` holds the per-key counters and the current (Guild-style) step, and is
    committed with the byte offset it belongs to.
    """

    def __init__(
        self,
        patterns: Patterns,
        state: dict[str, Any] | None = None,
        shapes: LineShapes | None = None,
    ) -> None:
        self.patterns = patterns
        # Learned line shapes outlive one parser: ingest passes one per log it reads.
        self.shapes = shapes if shapes is not None else LineShapes()
        state = state or {}
        self.counters: dict[str, int] = dict(state.get("n", {}))
        self.step: float | None = state.get("step")
        self._rank = {k: i for i, k in enumerate(patterns.step_keys)}
        self._quick = patterns.defaults and not patterns.user
        self._ts_cache: tuple[str, float] = ("", 0.0)

    def state(self) -> dict[str, Any]:
        return {"n": self.counters, "step": self.step}

    def pairs(self, text: str) -> dict[str, float]:
        """The (key, value) pairs on one line of script output, in order, first wins."""
        if "\r" in text:
            parts = [p for p in text.split("\r") if p.strip()]
            text = parts[-1] if parts else ""
        found: dict[str, float] = {}
        for pattern, fixed in self.patterns.user:
            for m in pattern.finditer(text):
                groups = m.groupdict()
                if fixed is not None:
                    key, raw = fixed, groups.get("value") or m.group(1)
                elif "key" in groups:
                    key, raw = groups["key"], groups["value"]
                else:
                    key, raw = m.group(1), m.group(2)
                value = _number(raw or "")
                if key and value is not None and key not in found:
                    found[key] = value
        if self.patterns.defaults:
            if ":" in text or "=" in text:
                for _quote, key, _vq, raw in _FINDALL(text):
                    if key and key not in found:
                        try:
                            found[key] = float(raw)
                        except ValueError:
                            continue
            elif _SPACED_LINE.match(text):
                _spaced_pairs(text, found)
        return found

    def feed(
        self, text: str, wall: float, out: dict[str, list[tuple[float, float, float]]]
    ) -> None:
        """Parse one line of script output written at ``wall``, appending to ``out``."""
        found = self.pairs(text)
        if found:
            self._emit(found, wall, out)

    def _emit(
        self, found: dict[str, float], wall: float, out: dict[str, list[tuple[float, float, float]]]
    ) -> None:
        """Points of one line's pairs: pick its x value, or count."""
        rank = self._rank
        x_key: str | None = None
        x_rank = len(rank)
        only_steps = True
        for key, value in found.items():
            r = rank.get(key.lower())
            if r is None and " " in key:  # "Train Epoch: 1" (pytorch/examples' mnist)
                r = rank.get(key.rpartition(" ")[2].lower())
            if r is None:
                only_steps = False
            elif r < x_rank and value == value and abs(value) != math.inf:
                x_key, x_rank = key, r
        if x_key is not None:
            x: float | None = found.pop(x_key)
            if only_steps:
                self.step = x  # a step line: it sets the step of later lines
                return
        else:
            x = self.step
        if x is None:
            counters = self.counters
            for key, value in found.items():
                n = counters.get(key, 0)
                counters[key] = n + 1
                pts = out.get(key)
                if pts is None:
                    pts = out[key] = []
                pts.append((float(n), wall, value))
        else:
            for key, value in found.items():
                pts = out.get(key)
                if pts is None:
                    pts = out[key] = []
                pts.append((x, wall, value))

    def wall_time(self, ts: str) -> float | None:
        """Seconds since the epoch of a log timestamp; parsed once per second of log."""
        if len(ts) == 32 and ts[19] == ".":  # what LogSink writes: ...T10:00:00.123456+00:00
            key = ts[:19] + ts[26:]
            cached, base = self._ts_cache
            if key != cached:
                try:
                    base = datetime.fromisoformat(key).timestamp()
                except ValueError:
                    return None
                self._ts_cache = (key, base)
            try:
                return base + int(ts[20:26]) * 1e-6
            except ValueError:
                return None
        try:
            return datetime.fromisoformat(ts).timestamp()
        except ValueError:
            return None

    def feed_log(self, block: str, out: dict[str, Any]) -> None:
        """Every complete line of a block of ``output.log``.

        ``out`` gets a list of points or a :class:`~gridrun.store.metrics.Columns`
        per key. With the built-in pattern only, lines of a shape seen before are read
        a block at a time (:mod:`gridrun.metrics.shapes`), with the same result.
        """
        if not self._quick or "\r" in block:
            for line in block.split("\n"):  # user patterns, or progress bars: line by line
                self.feed_log_line(line, out)
            return
        pos = 0
        if not self.shapes.ready():
            pos = block.find("\n", _HEAD_BYTES) + 1 or len(block)
            head: dict[str, list[Point]] = {}
            for line in block[:pos].split("\n"):
                self.feed_quick_line(line, head)
            for key, pts in head.items():
                extend_points(out, key, pts)
        if pos >= len(block):
            return
        rest: dict[str, Any] = {}
        if self.shapes.ready():
            feed_block(self, self.shapes, block[pos:], rest)
        else:
            self._feed_tokens(block[pos:], rest)
        for key, more in rest.items():
            extend_points(out, key, more)

    def _feed_tokens(self, block: str, out: dict[str, list[Point]]) -> None:
        """Every line of a block the general way, with one regex pass over it."""
        wall_time, emit = self.wall_time, self._emit
        found: dict[str, float] | None = None
        wall: float | None = 0.0
        for token in _LOG_TOKENS.findall(block):
            stream, ts, note, spaced, _bare, skip, _quote, key, _vq, raw = token
            if skip:
                continue
            if not key:  # a line starts
                if found and wall is not None:
                    emit(found, wall, out)
                ours = stream in ("stdout", "stderr") and not note
                found = {} if ours else None
                wall = wall_time(ts) if ours else None
                if spaced and found is not None:
                    _spaced_pairs(spaced, found)
            elif found is not None and key not in found:
                try:
                    found[key] = float(raw)
                except ValueError:
                    continue
        if found and wall is not None:
            emit(found, wall, out)

    def feed_quick_line(self, line: str, out: dict[str, Any]) -> None:
        """:meth:`feed_log_line` for the built-in pattern alone, learning line shapes."""
        if not line.startswith(_STREAM_PREFIXES):
            return
        end = line.find("] ", 10)
        if end < 0 or line.startswith("gridrun: ", end + 2):  # gridrun's own notes
            return
        text = line[end + 2 :]
        if ":" not in text and "=" not in text:
            if _SPACED_LINE.match(text):  # never a template: read the general way
                self.feed_log_line(line, out)
            return
        wall = self.wall_time(line[10:end])
        if wall is None:
            return
        matches = [m for m in _FINDITER(text) if m.group("key")]
        found: dict[str, float] = {}
        whole = True
        for m in matches:
            key, raw = m.group("key", "value")
            if key not in found:
                try:
                    found[key] = float(raw)
                except ValueError:
                    whole = False
        if not found:
            return
        if whole:
            self.shapes.observe(text, matches, self._rank)
        self._emit(found, wall, out)

    def feed_log_line(self, line: str, out: dict[str, list[tuple[float, float, float]]]) -> None:
        """One line of ``output.log`` (``[stdout] [timestamp] text``); others are ignored."""
        if not line.startswith(_STREAM_PREFIXES):
            return
        end = line.find("] ", 10)
        if end < 0 or line.startswith("gridrun: ", end + 2):  # gridrun's own notes
            return
        text = line[end + 2 :]
        if self._quick and ":" not in text and "=" not in text and not _SPACED_LINE.match(text):
            return
        wall = self.wall_time(line[10:end])
        if wall is not None:
            self.feed(text, wall, out)
