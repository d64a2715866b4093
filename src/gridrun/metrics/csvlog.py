"""``metrics.csv`` files read incrementally: Lightning's CSVLogger and plain ones.

A header row names the columns, each later row is one logging call. Lightning leaves
a cell empty where a metric was not logged in that call, and when a new key appears
it **rewrites the whole file** with a wider header (old rows keep their values, the
new column empty). So the state kept with the byte offset is the header and the
number of data rows already taken: when the header read back differs, or the file got
shorter, the file was rewritten, and the rows already taken are skipped by count
rather than by bytes. Only that rare case reads the file from its start.

x value: the ``step`` column (else ``global_step``, ``iteration``, ``iter``,
``epoch``), else the row's index. Wall time: a ``time``, ``timestamp``,
``wall_time`` or ``created_at`` column of epoch seconds if there is one, else the
moment the row was read (close, since files are read every few seconds while the
experiment runs). Other columns are metrics; empty or non-numeric cells are skipped.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

from gridrun.metrics.stdout import STEP_KEYS
from gridrun.store.metrics import ReadBatch

WALL_KEYS = ("time", "timestamp", "wall_time", "created_at")


def _number(cell: str) -> float | None:
    cell = cell.strip()
    if not cell:
        return None
    try:
        return float(cell)
    except ValueError:
        return None


def read_csv(
    path: Path, offset: int, state: dict[str, Any], max_bytes: int, final: bool = False
) -> ReadBatch:
    header: list[str] | None = state.get("header")
    rows_taken = int(state.get("rows", 0))
    with open(path, "rb") as fh:
        first = fh.readline()
        if not first.endswith(b"\n") and not final:
            return ReadBatch(offset=offset, state=state)  # header still being written
        current = next(csv.reader([first.decode("utf-8", errors="replace")]), [])
        current = [c.strip() for c in current]
        size = fh.seek(0, io.SEEK_END)
        skip = int(state.get("skip", 0))
        if header is None or current != header or size < offset:
            # New file, or rewritten (a new column): start after its header, and skip
            # by count the rows already taken.
            offset, skip = len(first), rows_taken if header is not None else 0
            header = current
        fh.seek(offset)
        data = fh.read(max_bytes)
    cut = data.rfind(b"\n") + 1
    if final and cut < len(data) and len(data) < max_bytes:
        cut = len(data)
    more = len(data) == max_bytes
    batch = ReadBatch(
        offset=offset + cut, state={"header": header, "rows": rows_taken, "skip": skip}, more=more
    )
    if not header:
        return batch
    lowered = [h.lower() for h in header]
    x_col = next((lowered.index(k) for k in STEP_KEYS if k in lowered), None)
    wall_col = next((lowered.index(k) for k in WALL_KEYS if k in lowered), None)
    now = time.time()
    rows = csv.reader(io.StringIO(data[:cut].decode("utf-8", errors="replace")))
    for row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        if skip:
            skip -= 1
            continue
        index = rows_taken
        rows_taken += 1
        x = _number(row[x_col]) if x_col is not None and x_col < len(row) else None
        if x is None:
            x = float(index)
        wall = _number(row[wall_col]) if wall_col is not None and wall_col < len(row) else None
        for i, cell in enumerate(row[: len(header)]):
            if i in (x_col, wall_col):
                continue
            value = _number(cell)
            if value is not None:
                batch.points.setdefault(header[i], []).append((x, wall or now, value))
    batch.state["rows"] = rows_taken
    batch.state["skip"] = skip
    return batch
