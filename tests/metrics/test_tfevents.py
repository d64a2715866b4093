"""TensorBoard event files: real writers' output, TF2 tensor scalars, files being written."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
from tensorboardX import SummaryWriter
from tensorboardX.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
from tensorboardX.record_writer import RecordWriter

from gridrun.metrics.tfevents import crc32c, masked_crc32c, read_events

pytestmark = pytest.mark.unit


def event_file(logdir: Path) -> Path:
    (path,) = logdir.glob("events.out.tfevents.*")
    return path


def values(batch, tag: str) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    return [(s, v) for s, _w, v in batch.points.get(tag, [])]


def test_crc32c_known_vectors() -> None:
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283
    from tensorboardX.record_writer import masked_crc32c as reference

    for data in (b"", b"abc", b"\x00" * 8, bytes(range(256))):
        assert masked_crc32c(data) == reference(data)


def test_pytorch_style_simple_values(tmp_path: Path) -> None:
    import numpy as np

    w = SummaryWriter(str(tmp_path), flush_secs=3600)
    for step in range(5):
        w.add_scalar("train/loss", 1.0 / (step + 1), step * 10)
        w.add_scalar("acc", step / 10, step * 10)
    w.add_histogram("weights", np.arange(10.0), 0)
    w.add_text("note", "hello", 0)
    w.add_scalar("loss_nan", float("nan"), 0)
    w.add_scalar("loss_inf", float("inf"), 1)
    w.close()
    batch = read_events(event_file(tmp_path), 0, {}, 1 << 20)
    assert set(batch.points) == {"train/loss", "acc", "loss_nan", "loss_inf"}
    assert values(batch, "train/loss") == [(s * 10, pytest.approx(1.0 / (s + 1))) for s in range(5)]
    assert math.isnan(values(batch, "loss_nan")[0][1])
    assert values(batch, "loss_inf") == [(1, math.inf)]
    wall = batch.points["acc"][0][1]
    assert wall > 1.7e9  # real wall times from the writer
    assert not batch.more and batch.offset == event_file(tmp_path).stat().st_size


def tf2_scalar(tag: str, step: int, value: float, how: str) -> bytes:
    """An Event the way TF2's tf.summary.scalar writes it: a rank-0 tensor."""
    if how == "float_val":
        tensor = tensor_pb2.TensorProto(
            dtype=1, tensor_shape=tensor_shape_pb2.TensorShapeProto(), float_val=[value]
        )
    elif how == "double_content":
        tensor = tensor_pb2.TensorProto(
            dtype=2,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(),
            tensor_content=struct.pack("<d", value),
        )
    else:  # int64_val
        tensor = tensor_pb2.TensorProto(
            dtype=9, tensor_shape=tensor_shape_pb2.TensorShapeProto(), int64_val=[int(value)]
        )
    meta = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    )
    summary = summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=meta)]
    )
    return event_pb2.Event(wall_time=1234.5, step=step, summary=summary).SerializeToString()


def non_scalar_tensor() -> bytes:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=3)])
    tensor = tensor_pb2.TensorProto(dtype=1, tensor_shape=shape, float_val=[1, 2, 3])
    meta = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="histograms")
    )
    string = tensor_pb2.TensorProto(dtype=7, string_val=[b"text"])
    summary = summary_pb2.Summary(
        value=[
            summary_pb2.Summary.Value(tag="hist", tensor=tensor, metadata=meta),
            summary_pb2.Summary.Value(tag="txt", tensor=string),
            summary_pb2.Summary.Value(tag="vec", tensor=tensor),
        ]
    )
    return event_pb2.Event(wall_time=1.0, step=0, summary=summary).SerializeToString()


def write_records(path: Path, records: list[bytes]) -> None:
    w = RecordWriter(str(path))
    for r in records:
        w.write(r)
    w.close()


def test_tf2_tensor_scalars(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    version = event_pb2.Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString()
    write_records(
        path,
        [
            version,
            tf2_scalar("loss", 1, 0.5, "float_val"),
            tf2_scalar("loss", 2, 0.25, "double_content"),
            tf2_scalar("count", 3, 7, "int64_val"),
            non_scalar_tensor(),
        ],
    )
    batch = read_events(path, 0, {}, 1 << 20)
    assert batch.points == {
        "loss": [(1.0, 1234.5, 0.5), (2.0, 1234.5, 0.25)],
        "count": [(3.0, 1234.5, 7.0)],
    }


def test_a_file_still_being_written_is_read_to_its_last_whole_record(tmp_path: Path) -> None:
    full = tmp_path / "full" / "events.out.tfevents.1.host"
    full.parent.mkdir()
    write_records(full, [tf2_scalar("loss", i, i / 10, "float_val") for i in range(6)])
    data = full.read_bytes()
    ends, pos = [], 0
    while pos < len(data):
        pos += 16 + struct.unpack("<Q", data[pos : pos + 8])[0]
        ends.append(pos)
    live = tmp_path / "events.out.tfevents.2.host"
    for cut in range(0, len(data) + 1, 3):
        live.write_bytes(data[:cut])
        first = read_events(live, 0, {}, 1 << 20)
        whole = [e for e in ends if e <= cut]
        assert len(first.points.get("loss", [])) == len(whole)
        assert first.offset == (whole[-1] if whole else 0)
        live.write_bytes(data)  # the writer goes on
        rest = read_events(live, first.offset, first.state, 1 << 20)
        steps = [p[0] for p in first.points.get("loss", []) + rest.points.get("loss", [])]
        assert steps == [0, 1, 2, 3, 4, 5]


def test_size_limit_resumes_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    write_records(path, [tf2_scalar("loss", i, i, "float_val") for i in range(100)])
    offset, state, steps = 0, {}, []
    for _ in range(200):
        b = read_events(path, offset, state, 300)
        steps += [p[0] for p in b.points.get("loss", [])]
        offset, state = b.offset, b.state
        if not b.more:
            break
    assert steps == [float(i) for i in range(100)]


def test_corrupt_header_stops_and_garbage_body_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    good = tf2_scalar("loss", 1, 1.0, "float_val")
    write_records(path, [good, b"\xff\xff\xff garbage", good])
    b = read_events(path, 0, {}, 1 << 20)
    assert [p[0] for p in b.points["loss"]] == [1.0, 1.0] and b.state["malformed"] == 1
    data = bytearray(path.read_bytes())
    data[8] ^= 0xFF  # the first record's length checksum
    path.write_bytes(bytes(data))
    b = read_events(path, 0, {}, 1 << 20)
    assert b.points == {} and b.offset == 0 and b.state["corrupt"] == 0
