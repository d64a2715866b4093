"""``grid metrics -o json`` and ``grid logs`` stream: the same answers, a chunk at a time."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gridrun.cli.follow import Tail

SCRIPT = """\
import sys
n = int(sys.argv[1])
for s in range(n):
    print(f"step: {s} loss: {1.0 / (s + 1):.6f} acc: {s / n:.6f}")
print("step: {} loss: nan acc: inf".format(n))
print("the end, without a newline", end="")
"""


def test_metrics_json_and_logs_stream_every_point_and_line(grid: Any, tmp_path: Path) -> None:
    (tmp_path / "spam.py").write_text(SCRIPT)
    n = 10_000  # several stored chunks
    out = grid("run", "spam.py", str(n), cwd=tmp_path).stdout
    name = re.search(r"grid_name:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    status = grid.wait(name)
    assert status["experiments"][0]["status"] == "succeeded"
    exp = f"{name}-exp0"
    data = grid.json("metrics", name)
    assert isinstance(data, list) and len(data) == 1
    metrics = data[0]["metrics"]
    assert set(metrics) == {"loss", "acc"}
    loss = metrics["loss"]["series"]
    assert loss[0][0] == 0 and loss[0][2] == 1.0 and len(loss) == n + 1 == metrics["loss"]["count"]
    assert [p[0] for p in loss] == list(range(n + 1))
    assert loss[-1][2] == "nan" and metrics["acc"]["series"][-1][2] == "inf"
    assert metrics["loss"]["last"] == "nan" and data[0]["params"] == {}

    lines = grid("logs", exp).stdout.splitlines()
    assert len(lines) == n + 2 and lines[-1].endswith("the end, without a newline")
    tail = grid("logs", exp, "-l", "3").stdout.splitlines()
    assert tail == lines[-3:]
    records = grid.json("logs", exp)
    assert isinstance(records, list) and len(records) == n + 2
    assert records[0]["stream"] == "stdout" and records[0]["line"].startswith("step: 0 ")


@pytest.mark.unit
def test_a_terminal_chart_keeps_small_values_apart() -> None:
    from gridrun.cli import termchart

    rows = termchart.render(
        "lr",
        [termchart.Line("a", [0, 1, 2], [2e-4, 1.5e-4, 1e-4]), termchart.Line("b", [0, 2], [1, 1])],
        width=20,
        height=4,
    )
    text = [r.plain for r in rows]
    assert text[0] == "lr" and len(text) == 6
    labels = [t.split("┤")[0].strip() for t in text[1:5]]
    assert labels[0] != labels[-1] and "0" not in (labels[0], labels[-1]), labels
    assert all(len(t.split("┤")[1]) == 20 for t in text[1:5])
    empty = termchart.render("nan", [termchart.Line("a", [0], [float("nan")])])
    assert "no finite values" in empty[-1].plain


@pytest.mark.unit
def test_tail_reads_a_chunk_at_a_time_and_finds_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    text = "".join(f"line {i} é\n" for i in range(1000)) + "unfinished"
    log.write_bytes(text.encode())
    t = Tail(log, None)
    t.CHUNK = 7  # splits lines and the two bytes of 'é' across reads
    assert list(t.lines()) == [f"line {i} é" for i in range(1000)] and t.partial == "unfinished"
    for n in (0, 1, 2, 999, 1001, 5000):
        t = Tail(log, "x")
        t.CHUNK = 5
        count = t.skip_to_last(n)
        got = [*t.lines(), *([f"x | {t.partial}"] if t.partial else [])]
        want = [f"x | {ln}" for ln in text.split("\n")][-n:] if n else []
        assert got == want and count == len(want), n
