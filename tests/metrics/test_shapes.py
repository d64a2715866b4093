"""The block path over repeated line shapes gives exactly what line-by-line parsing gives."""

from __future__ import annotations

import math
import random
import re

import pytest

from gridrun.logs import format_line
from gridrun.metrics.shapes import LineShapes
from gridrun.metrics.stdout import Patterns, StdoutParser
from gridrun.store.metrics import Columns

pytestmark = pytest.mark.unit

VALUES = [
    *("0", "1", "-2", "+3.5", "0.25", ".5", "5.", "1e-05", "2E+3", "nan", "NaN", "inf"),
    *("-inf", "Infinity", "NAN", "1.2.3", "1_000", "١٢", "0x10", "1e", "-", "12%", "3,"),
]
# {s}: a step key's value, {v}: a metric's.
SHAPES = [
    "step: {s} loss: {v} acc: {v}",
    "step={s} loss={v} lr={v}",  # loss again, from another shape
    "epoch: {s} step: {s} val_loss: {v}",
    "{{'loss': {v}, 'epoch': {s}}}",
    "iteration {v} loss: {v}",  # no step key written as key: value: counters
    "loss: {v} loss: {v} step: {s}",  # a key twice: the first counts
    "step: {s}",  # a step line: sets the step of later lines
    "Step: {s} Loss: {v} step: {s}",
    "[{v}] train step={s} loss={v}",
    "step: {s} x: {v} Last reward: {v}\tAverage reward: {v}",  # labels of several words
    "{{'loss': '{v}', 'epoch': '{s}'}}",  # Hugging Face's quoted numbers
    "Namespace(lr={v}, seed={v}) step: {s} loss: {v}",  # a configuration print: skipped
    "{{'lr': {v}, 'model': 'resnet'}} step: {s} acc: {v}",
    "BatchNorm2d(64, eps={v}, momentum={v})",
    "step {s} | loss {v} | lr {v}",  # pairs without colons
    "TPU available: False, using: {v} TPU cores",
    "Train Epoch: {s} [{v}/60000]\tLoss: {v}",  # a label ending in a step key
]


def _value(rng: random.Random, step: bool = False) -> str:
    r, x = rng.random(), rng.random()
    if r < 0.0003:  # rare: the block path gives up on such a block
        return rng.choice(VALUES)
    if r < 0.03 and not step:
        return rng.choice(["nan", "-inf", "Infinity", "NaN"])
    if step:
        return str(rng.randint(0, 100_000)) if x < 0.8 else f"{x:.4f}"
    return rng.choice([str(rng.randint(0, 10_000)), f"{x:.6f}", f"{x:.3e}", f"-{x:.2f}"])


def _line(rng: random.Random, i: int, varied: bool = False) -> str:
    r = rng.random()
    ts = 1796119200 + i * 0.000137
    if r < 0.01:
        return format_line("stderr", "gridrun: step: 3 loss: 1 (a note)", ts)
    if r < 0.02:
        return format_line("build", "step: 1 loss: 2", ts)
    if r < 0.025:
        return "no header step: 1 loss: 2\n"
    if r < 0.027:
        return f"[stdout] [2026-13-01T10:00:00.000001+00:00] step: 1 loss: {i}\n"
    if r < 0.03:
        return format_line("stdout", f"step: {i} loss: 1", float(int(ts)))  # no microseconds
    if r < 0.1:
        return format_line("stderr", "a line without metrics", ts)
    shape = SHAPES[0] if r < 0.6 else SHAPES[1] if r < 0.8 else rng.choice(SHAPES)
    text = re.sub(r"\{([sv])\}", lambda m: _value(rng, m.group(1) == "s"), shape)
    text = text.replace("{{", "{").replace("}}", "}")
    if varied:  # a clock on each line, as logging's %(asctime)s prints: no shape repeats
        text = f"10:00:{i % 60:02d},{i:06d} {text}"
    return format_line(rng.choice(["stdout", "stderr"]), text, ts)


def _columns(out: dict[str, object]) -> dict[str, list[tuple[float, float, float]]]:
    got = {}
    for k, v in out.items():
        pts = list(zip(v.steps, v.walls, v.values, strict=True)) if isinstance(v, Columns) else v
        got[k] = [tuple("nan" if math.isnan(x) else x for x in p) for p in pts]  # type: ignore[attr-defined]
    return got


@pytest.mark.parametrize("varied", [False, True], ids=["repeated", "varied"])
@pytest.mark.parametrize("seed", range(8))
def test_block_path_equals_line_by_line(seed: int, varied: bool) -> None:
    rng = random.Random(seed)
    lines = [_line(rng, i, varied) for i in range(4000)]
    reference, slow = StdoutParser(Patterns()), {}
    for line in lines:
        reference.feed_log_line(line.rstrip("\n"), slow)
    shapes = LineShapes()
    fast: dict[str, object] = {}
    parser = StdoutParser(Patterns(), None, shapes)
    pos = 0
    while pos < len(lines):  # blocks of varying size, as ingest reads them
        n = rng.choice([1, 7, 60, 300, 600])
        block = "".join(lines[pos : pos + n])
        parser.feed_log(block if rng.random() < 0.5 else block.rstrip("\n"), fast)
        parser = StdoutParser(Patterns(), parser.state(), shapes)  # a new batch, like ingest
        pos += n
    if varied:
        # Nearly no shape repeats: the token path read the blocks.
        assert shapes.lines_by_template < len(lines) / 20
    else:
        assert shapes.lines_by_template > len(lines) / 4, "the block path was taken"
    assert _columns(fast) == _columns(slow)
    assert parser.state() == reference.state()


def test_a_template_needs_a_step_key_and_a_metric() -> None:
    parser = StdoutParser(Patterns())
    block = "".join(format_line("stdout", f"loss: {i} acc: {i}", 1.5 + i) for i in range(20))
    block += "".join(format_line("stdout", f"step: {i}", 1.5 + i) for i in range(20))
    parser.feed_log(block, {})
    assert not parser.shapes.templates
    parser.feed_log("".join(format_line("stdout", f"step: {i} x: 1", 2.5) for i in range(5)), {})
    (t,) = parser.shapes.templates.values()
    assert t.keys == ("step", "x") and t.x_slot == 0 and t.points == (("x", 1),)


def _both(lines: list[str]) -> tuple[dict[str, object], dict[str, object], LineShapes]:
    reference, slow = StdoutParser(Patterns()), {}
    for line in lines:
        reference.feed_log_line(line.rstrip("\n"), slow)
    parser, fast = StdoutParser(Patterns()), {}
    parser.feed_log("".join(lines[:5]), fast)  # learns the shape
    parser.feed_log("".join(lines[5:]), fast)
    return _columns(fast), _columns(slow), parser.shapes


@pytest.mark.parametrize("where", ["step: {} loss: 3", "step: 12 loss: {}"])
@pytest.mark.parametrize(
    "odd", ["NAN", "INF", "nAn", "1.2.3", "0x10", "1e", "-", "+-1", "1e5", "nan", "-Infinity"]
)
def test_a_slot_the_general_regex_reads_otherwise(odd: str, where: str) -> None:
    lines = [format_line("stdout", f"step: {i} loss: {i / 7}", 5.5 + i) for i in range(20)]
    lines[12] = format_line("stdout", where.format(odd), 20.5)
    fast, slow, shapes = _both(lines)
    assert shapes.templates and fast == slow


@pytest.mark.parametrize("odd", ["nan", "inf", "1"])
def test_a_label_right_after_a_value_is_never_a_template(odd: str) -> None:
    """A label of words starts only where no word and a space come before it, so
    ``x: nan Last reward: 3`` has ``reward`` where ``x: 1 Last reward: 3`` has ``Last
    reward``: the value decides, and a template would not see it."""
    lines = [format_line("stdout", f"step: {i} x: {i} Last reward: 3", 5.5 + i) for i in range(20)]
    lines[12] = format_line("stdout", f"step: 12 x: {odd} Last reward: 3", 20.5)
    fast, slow, _ = _both(lines)
    assert fast == slow
    assert ("Last reward" in slow) and (("reward" in slow) == (odd != "1"))
