"""TensorBoard event files read incrementally, without TensorFlow or protobuf.

Why our own reader: the only maintained readers are TensorBoard's (``tensorboard``
pulls grpcio, numpy, protobuf, werkzeug, markdown and a Rust data server into the
supervisor, over 100 MB) and ``tbparse`` (TensorBoard plus pandas), and neither
exposes a byte offset to resume from, which is what lets a dying reader lose nothing
and a live one never re-read. What we need is small and frozen by a decade of files
on disk: the TFRecord framing and five protobuf messages, of which we read a handful
of fields.

TFRecord framing, per record::

    uint64 length | uint32 masked crc32c(length) | bytes data[length] | uint32 masked crc32c(data)

A record is taken only once all of it is on disk, so a file still being written is
read up to its last complete record and continued from there on the next pass. The
length's checksum is verified (it guards the one field whose corruption would make us
skip garbage); the data's is not, since a torn write is already caught by the length.

From each ``Event`` (wall_time = 1, step = 2, summary = 5) we read every
``Summary.Value`` (tag = 1) holding a scalar: ``simple_value`` (= 2, what PyTorch's
SummaryWriter and tensorboardX write) or a rank-0 numeric ``tensor`` (= 8, what TF2's
``tf.summary.scalar`` writes), skipping tensors of other plugins (histograms, images,
text) when the value's metadata (= 9) names one.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any

from gridrun.store.metrics import ReadBatch

log = logging.getLogger("gridrun.metrics")


# --------------------------------------------------------------------- crc32c
def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ------------------------------------------------------------------- protobuf
class Malformed(ValueError):
    """A record that is not a well-formed protobuf message."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise Malformed("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of a message; lengths are bytes, fixed are raw."""
    out: list[tuple[int, int, Any]] = []
    pos, end = 0, len(buf)
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:  # one-byte varints (almost every tag and length): no call
            pos += 1
        else:
            tag, pos = _varint(buf, pos)
        num, wire = tag >> 3, tag & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            n = buf[pos] if pos < end else 0x80
            if n < 0x80:
                pos += 1
            else:
                n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise Malformed(f"unsupported wire type {wire}")
        if pos > end:
            raise Malformed("field runs past the end of its message")
        out.append((num, wire, value))
    return out


# TensorFlow DataType values -> struct format of one element in tensor_content.
_DTYPES = {1: "f", 2: "d", 3: "i", 4: "B", 5: "h", 6: "b", 9: "q", 10: "?", 19: "e"}


def _packed_floats(wire: int, raw: bytes, fmt: str) -> list[float]:
    size = struct.calcsize(fmt)
    if wire == 2:
        return [v for (v,) in struct.iter_unpack("<" + fmt, raw[: len(raw) - len(raw) % size])]
    return [struct.unpack("<" + fmt, raw)[0]]


def _packed_ints(wire: int, raw: Any) -> list[int]:
    if wire == 0:
        return [raw]
    out, pos = [], 0
    while pos < len(raw):
        v, pos = _varint(raw, pos)
        out.append(v)
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def tensor_scalar(buf: bytes) -> float | None:
    """The value of a rank-0 numeric TensorProto, or None when it is something else."""
    dtype = 0
    content = b""
    values: list[float] = []
    for num, wire, value in fields(buf):
        if num == 1 and wire == 0:
            dtype = value
        elif num == 2 and wire == 2:
            if any(n == 2 for n, _, _ in fields(value)):  # has a dimension: not a scalar
                return None
        elif num == 4 and wire == 2:
            content = value
        elif num == 5:
            values += _packed_floats(wire, value, "f")
        elif num == 6:
            values += _packed_floats(wire, value, "d")
        elif num in (7, 10, 11) and wire in (0, 2):
            values += [float(_signed(v)) for v in _packed_ints(wire, value)]
        elif num == 13 and wire in (0, 2):  # half_val: the 16 bits in an int32
            values += [
                struct.unpack("<e", struct.pack("<H", v & 0xFFFF))[0]
                for v in _packed_ints(wire, value)
            ]
    fmt = _DTYPES.get(dtype)
    if fmt is None:  # strings, complex numbers, resources: not a scalar metric
        return None
    if content:
        if len(content) != struct.calcsize(fmt):
            return None
        return float(struct.unpack("<" + fmt, content)[0])
    return float(values[0]) if len(values) == 1 else None


def _plugin_name(metadata: bytes) -> str | None:
    for num, wire, value in fields(metadata):
        if num == 1 and wire == 2:
            for n2, w2, v2 in fields(value):
                if n2 == 1 and w2 == 2:
                    return bytes(v2).decode("utf-8", errors="replace")
    return None


def event_scalars(record: bytes) -> tuple[float, float, list[tuple[str, float]]]:
    """(wall time, step, [(tag, value)]) of one serialized Event."""
    wall = 0.0
    step = 0
    summary: list[bytes] = []
    for num, wire, value in fields(record):
        if num == 1 and wire == 1:
            wall = struct.unpack("<d", value)[0]
        elif num == 2 and wire == 0:
            step = _signed(value)
        elif num == 5 and wire == 2:
            summary.append(value)
    scalars: list[tuple[str, float]] = []
    for s in summary:
        for num, wire, value in fields(s):
            if num != 1 or wire != 2:
                continue
            tag, simple, tensor, plugin = "", None, None, None
            for n2, w2, v2 in fields(value):
                if n2 == 1 and w2 == 2:
                    tag = bytes(v2).decode("utf-8", errors="replace")
                elif n2 == 2 and w2 == 5:
                    simple = struct.unpack("<f", v2)[0]
                elif n2 == 8 and w2 == 2:
                    tensor = v2
                elif n2 == 9 and w2 == 2:
                    plugin = _plugin_name(v2)
            if not tag:
                continue
            if simple is not None:
                scalars.append((tag, float(simple)))
            elif tensor is not None and plugin in (None, "scalars"):
                v = tensor_scalar(tensor)
                if v is not None:
                    scalars.append((tag, v))
    return wall, float(step), scalars


# ------------------------------------------------------------------ the reader
def read_events(
    path: Path, offset: int, state: dict[str, Any], max_bytes: int, final: bool = False
) -> ReadBatch:
    """Scalars of the complete records from ``offset``, up to about ``max_bytes``."""
    batch = ReadBatch(offset=offset, state=dict(state))
    with open(path, "rb") as fh:
        fh.seek(offset)
        pos = offset
        while pos - offset < max_bytes:
            header = fh.read(12)
            if len(header) < 12:
                break  # the end, or a header still being written
            (length,) = struct.unpack("<Q", header[:8])
            (crc,) = struct.unpack("<I", header[8:])
            if masked_crc32c(header[:8]) != crc:
                if not batch.state.get("corrupt"):
                    log.warning("%s: corrupt record header at byte %d; stopped there", path, pos)
                batch.state["corrupt"] = pos
                break
            body = fh.read(length + 4)
            if len(body) < length + 4:
                break  # a record still being written: take it up on the next pass
            pos += 12 + length + 4
            batch.offset = pos
            try:
                wall, step, scalars = event_scalars(body[:length])
            except (Malformed, struct.error, IndexError):
                batch.state["malformed"] = batch.state.get("malformed", 0) + 1
                continue
            for tag, value in scalars:
                batch.points.setdefault(tag, []).append((step, wall, value))
        else:
            batch.more = True
    return batch
