"""metrics.csv files: Lightning's CSVLogger rewriting its header, empty cells, plain files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gridrun.metrics.csvlog import read_csv

pytestmark = pytest.mark.unit


def read_all(path: Path, offset: int = 0, state: dict | None = None, final: bool = False):  # type: ignore[no-untyped-def]
    b = read_csv(path, offset, state or {}, 1 << 20, final)
    return b, {k: [(s, v) for s, _w, v in pts] for k, pts in b.points.items()}


def test_lightning_csv_with_empty_cells(tmp_path: Path) -> None:
    p = tmp_path / "metrics.csv"
    p.write_text("epoch,step,train_loss,val_loss\n0,9,0.9,\n0,9,,0.8\n1,19,0.7,\n")
    _b, got = read_all(p)
    assert got == {
        "train_loss": [(9, 0.9), (19, 0.7)],
        "val_loss": [(9, 0.8)],
        "epoch": [(9, 0), (9, 0), (19, 1)],
    }


def test_header_rewritten_mid_file_reads_only_new_rows(tmp_path: Path) -> None:
    p = tmp_path / "metrics.csv"
    p.write_text("epoch,step,train_loss\n0,9,0.9\n0,19,0.8\n")
    b1, got1 = read_all(p)
    assert got1["train_loss"] == [(9, 0.9), (19, 0.8)]
    # Lightning saw a new key: it rewrites the file with a wider header.
    p.write_text("epoch,step,train_loss,val_acc\n0,9,0.9,\n0,19,0.8,\n0,19,,0.5\n1,29,0.7,\n")
    b2, got2 = read_all(p, b1.offset, b1.state)
    assert got2 == {"val_acc": [(19, 0.5)], "train_loss": [(29, 0.7)], "epoch": [(19, 0), (29, 1)]}
    assert b2.offset == p.stat().st_size
    p.write_text(p.read_text() + "1,39,0.6,\n")
    _b3, got3 = read_all(p, b2.offset, b2.state)
    assert got3 == {"train_loss": [(39, 0.6)], "epoch": [(39, 1)]}


def test_partial_last_row_waits_unless_final(tmp_path: Path) -> None:
    p = tmp_path / "metrics.csv"
    p.write_text("step,loss\n1,0.5\n2,0.4")
    b, got = read_all(p)
    assert got == {"loss": [(1, 0.5)]}
    b2, got2 = read_all(p, b.offset, b.state)
    assert got2 == {} and b2.offset == b.offset
    _b3, got3 = read_all(p, b.offset, b.state, final=True)
    assert got3 == {"loss": [(2, 0.4)]}
    p.write_text("step,lo")  # a header still being written
    b4, got4 = read_all(tmp_path / "metrics.csv")
    assert got4 == {} and b4.offset == 0


def test_plain_csv_without_step_uses_row_index_and_time_column(tmp_path: Path) -> None:
    p = tmp_path / "metrics.csv"
    p.write_text("time,accuracy,name\n1700000000.5,0.5,a\n1700000001.5,nan,b\n,inf,c\n")
    b, got = read_all(p)
    assert [s for s, _ in got["accuracy"]] == [0, 1, 2]
    vals = [v for _, v in got["accuracy"]]
    assert vals[0] == 0.5 and math.isnan(vals[1]) and vals[2] == math.inf
    assert "name" not in got  # not numbers
    assert b.points["accuracy"][0][1] == 1700000000.5


def test_malformed_rows_are_skipped(tmp_path: Path) -> None:
    p = tmp_path / "metrics.csv"
    p.write_text('step,loss\n1,0.5,extra,cells\n"unclosed,0.3\n\n,,\nabc,0.2\n3,x\n')
    _b, got = read_all(p, final=True)
    assert got["loss"][0] == (1, 0.5)
    assert all(isinstance(v, float) for _, v in got["loss"])


def test_truncated_file_starts_over_after_the_rows_taken(tmp_path: Path) -> None:
    p = tmp_path / "metrics.csv"
    p.write_text("step,loss\n1,0.5\n2,0.4\n3,0.3\n")
    b, _ = read_all(p)
    p.write_text("step,loss\n1,0.5\n2,0.4\n3,0.3\n")  # rewritten, same header, same size
    p.write_text("step,loss\n1,0.5\n")  # shorter: rewritten with fewer rows
    b2, got2 = read_all(p, b.offset, b.state)
    assert got2 == {} and b2.state["rows"] == 3
