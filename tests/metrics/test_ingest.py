"""Incremental ingestion: offsets, restarts, racing readers, files found in the workdir."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboardX import SummaryWriter

from gridrun.logs import LogSink
from gridrun.metrics.ingest import IngestTarget, discover_files, ingest_experiment, ingest_log
from gridrun.store import metric_query as query
from gridrun.store.db import Store
from gridrun.store.metrics import load_sources


def target(tmp_path: Path, exp_id: int, **kw) -> IngestTarget:  # type: ignore[no-untyped-def]
    return IngestTarget(experiment_id=exp_id, log_path=tmp_path / "output.log", **kw)


def steps(store: Store, exp_id: int, key: str) -> list[float]:
    return [p[0] for p in query.series(store, [exp_id])[exp_id].get(key, [])]


@pytest.mark.unit
def test_log_is_read_incrementally_and_never_twice(
    store: Store, exp_ids: list[int], tmp_path: Path
) -> None:
    a = exp_ids[0]
    t = target(tmp_path, a)
    with LogSink(t.log_path) as sink:
        for i in range(5):
            sink.write("stdout", f"loss: {i}")
        assert ingest_experiment(store, t) == 5
        assert ingest_experiment(store, t) == 0
        sink.write("stderr", "epoch: 9 loss: 0.5")
        sink.write("stdout", "no metric here")
    assert ingest_experiment(store, t) == 1
    # A new process (a restarted agent) with a new connection reads nothing again.
    assert ingest_experiment(Store(store.path), t) == 0
    assert steps(store, a, "loss") == [0, 1, 2, 3, 4, 9]
    assert load_sources(store, a)["log"].offset == t.log_path.stat().st_size


@pytest.mark.unit
def test_a_line_being_written_waits_for_its_newline(
    store: Store, exp_ids: list[int], tmp_path: Path
) -> None:
    a = exp_ids[0]
    t = target(tmp_path, a)
    t.log_path.write_text("[stdout] [2026-12-01T10:00:00+00:00] loss: 1\n[stdout] [2026-12-01T1")
    assert ingest_experiment(store, t) == 1
    with open(t.log_path, "a") as fh:
        fh.write("0:00:01+00:00] loss: 2\n[stdout] [2026-12-01T10:00:02+00:00] loss: 3")
    assert ingest_experiment(store, t) == 1
    assert ingest_experiment(store, t, final=True) == 1
    assert steps(store, a, "loss") == [0, 1, 2]


@pytest.mark.unit
def test_a_reader_with_stale_offsets_loses_the_race_and_catches_up(
    store: Store, exp_ids: list[int], tmp_path: Path
) -> None:
    a = exp_ids[0]
    t = target(tmp_path, a)
    with LogSink(t.log_path) as sink:
        for i in range(3):
            sink.write("stdout", f"loss: {i}")
    stale = load_sources(store, a)  # read before the other reader commits
    assert ingest_experiment(Store(store.path), t) == 3
    with LogSink(t.log_path) as sink:
        sink.write("stdout", "loss: 3")
    assert ingest_log(store, t, stale, final=False) == 1
    assert steps(store, a, "loss") == [0, 1, 2, 3]


KILLED_READER = """
import os
import signal
import sys
from pathlib import Path
from gridrun.metrics.ingest import IngestTarget, ingest_experiment
from gridrun.store.db import Store
import gridrun.metrics.ingest as ingest
import gridrun.store.metrics as store_metrics
ingest.BATCH_BYTES = 64 << 10  # many small commits, so kills land between and inside them
where, nth = sys.argv[4], int(sys.argv[5])


def dies_at(module, name, after):
    real, calls = getattr(module, name), [0]

    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if calls[0] == nth and after:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(module, name, wrapped)


if where == "before-commit":
    dies_at(ingest, "commit_batch", after=False)
elif where == "after-commit":
    dies_at(ingest, "commit_batch", after=True)
elif where == "inside-commit":  # the source's offset moved, its points half written
    dies_at(store_metrics, "_append", after=True)
store = Store(Path(sys.argv[1]))
ingest_experiment(store, IngestTarget(int(sys.argv[2]), Path(sys.argv[3])), final=True)
print("done", flush=True)
"""


def test_killed_readers_lose_nothing_and_count_nothing_twice(
    store: Store, exp_ids: list[int], tmp_path: Path
) -> None:
    """Readers killed before, inside and after a commit, at chosen commits (not after
    a sleep: on a fast machine the reader could finish first), then one that ends."""
    a = exp_ids[0]
    t = target(tmp_path, a)
    n = 60_000
    with open(t.log_path, "w") as fh:
        for i in range(n):
            fh.write(f"[stdout] [2026-12-01T10:00:00.{i % 1000000:06d}+00:00] step={i} loss={i}\n")
    script = tmp_path / "reader.py"
    script.write_text(KILLED_READER)
    kills = [
        ("inside-commit", 2),
        ("after-commit", 3),
        ("before-commit", 2),
        ("inside-commit", 1),
        ("after-commit", 1),
    ]
    for where, nth in [*kills, ("none", 0)]:
        proc = subprocess.run(
            [
                sys.executable,
                str(script),
                str(store.path),
                str(a),
                str(t.log_path),
                where,
                str(nth),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if where == "none":
            assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr
        else:
            assert proc.returncode == -signal.SIGKILL, (where, nth, proc.stderr)
    got = steps(store, a, "loss")
    assert got == [float(i) for i in range(n)]


@pytest.mark.unit
def test_metric_files_are_found_once_across_workdir_and_artifacts(
    store: Store, exp_ids: list[int], tmp_path: Path
) -> None:
    a = exp_ids[0]
    work, arts = tmp_path / "work", tmp_path / "artifacts"
    for root in (work, arts):
        w = SummaryWriter(str(root / "runs" / "exp"), filename_suffix=".x")
        for s in range(3):
            w.add_scalar("tb_loss", 1 / (s + 1), s)
        w.close()
    (work / "runs" / "exp").rename(work / "runs" / "same")
    (arts / "runs" / "exp").rename(arts / "runs" / "same")
    for root in (work, arts):
        (root / "lightning_logs" / "version_0").mkdir(parents=True)
        (root / "lightning_logs" / "version_0" / "metrics.csv").write_text(
            "epoch,step,val_acc\n0,10,0.5\n1,20,0.6\n"
        )
    (work / "data").mkdir()
    (work / "data" / "metrics.csv").write_text("step,ignored\n1,1\n")  # a datastore mount
    (work / ".venv").mkdir()
    (work / ".venv" / "metrics.csv").write_text("step,ignored\n1,1\n")
    t = target(tmp_path, a, roots=[work, arts], skip=["data"])
    found = [name for name, _ in discover_files(t)]
    assert sorted(found) == ["csv:lightning_logs/version_0/metrics.csv", f"tb:{_tb_name(work)}"]
    ingest_experiment(store, t)
    ingest_experiment(store, t, final=True)
    got = query.series(store, [a])[a]
    assert [p[0] for p in got["tb_loss"]] == [0, 1, 2]
    assert [(p[0], p[2]) for p in got["val_acc"]] == [(10, 0.5), (20, 0.6)]
    assert "ignored" not in got


def _tb_name(work: Path) -> str:
    (path,) = (work / "runs" / "same").glob("events.out.tfevents.*")
    return f"runs/same/{path.name}"


@pytest.mark.unit
def test_a_key_written_to_a_file_and_printed_is_one_series(
    store: Store, exp_ids: list[int], tmp_path: Path
) -> None:
    a = exp_ids[0]
    work = tmp_path / "work"
    w = SummaryWriter(str(work), flush_secs=3600)
    w.add_scalar("loss", 0.5, 100)
    w.close()
    with LogSink(tmp_path / "output.log") as sink:
        sink.write("stdout", "step: 100 loss: 0.5")
        sink.write("stdout", "acc: 0.5")
    ingest_experiment(store, target(tmp_path, a, roots=[work]))
    got = query.series(store, [a])[a]
    assert len(got["loss"]) == 1 and len(got["acc"]) == 1


@pytest.mark.unit
def test_a_tensorboard_file_written_while_ingesting(
    store: Store, exp_ids: list[int], tmp_path: Path
) -> None:
    a = exp_ids[0]
    work = tmp_path / "work"
    w = SummaryWriter(str(work), flush_secs=3600)
    t = target(tmp_path, a, roots=[work])
    for s in range(20):
        w.add_scalar("loss", float(s), s)
        w.flush()
        if s % 3 == 0:
            ingest_experiment(store, t)
    w.close()
    ingest_experiment(store, t, final=True)
    assert steps(store, a, "loss") == [float(s) for s in range(20)]
