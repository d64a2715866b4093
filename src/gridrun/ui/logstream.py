"""Live logs for the experiment page as server-sent events.

The supervisor appends ``[stream] [timestamp] text`` lines to the experiment's
``output.log`` (and the builder to the run's ``build.log``); this only tails those
files, the way ``grid logs -f`` does. Each event's id is the byte offset after it,
so a reconnecting EventSource (``Last-Event-ID``) resumes without repeats or gaps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

from gridrun.logs import parse_line

POLL_SECONDS = 0.2
BACKLOG_BYTES = 2_000_000  # a first connection starts at most this far from the end


def read_new(path: Path, offset: int) -> tuple[list[str], int]:
    """Whole lines appended since ``offset``, and the offset after the last of them."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    chunk = data[: end + 1]
    return chunk.decode("utf-8", errors="replace").splitlines(), offset + len(chunk)


def start_offset(path: Path, resume: str | None, source: str) -> int:
    """Where a stream starts: after the client's last event, else near the end."""
    if resume:
        for part in resume.split(","):
            name, _, value = part.partition(":")
            if name == source and value.isdigit():
                return int(value)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size <= BACKLOG_BYTES:
        return 0
    with open(path, "rb") as fh:  # start on a line boundary
        fh.seek(size - BACKLOG_BYTES)
        fh.readline()
        return fh.tell()


def event(lines: list[dict[str, str]], last_id: str) -> str:
    return f"id: {last_id}\nevent: lines\ndata: {json.dumps(lines)}\n\n"


async def stream_logs(
    sources: dict[str, Path],
    finished: object,
    resume: str | None = None,
    is_disconnected: object = None,
) -> AsyncIterator[str]:
    """Events of new lines from each source until ``finished()`` and all are drained.

    ``finished`` and ``is_disconnected`` are awaitable callables (the store is read
    in a thread, the request's state by Starlette).
    """
    offsets = {name: start_offset(p, resume, name) for name, p in sources.items()}
    yield "retry: 1000\n\n"
    while True:
        done = await finished()  # type: ignore[operator]
        batch: list[dict[str, str]] = []
        for name, path in sources.items():
            lines, offsets[name] = read_new(path, offsets[name])
            for ln in lines:
                parsed = parse_line(ln)
                if parsed is None:
                    batch.append({"stream": "stdout", "ts": "", "text": ln})
                else:
                    stream, ts, text = parsed
                    batch.append({"stream": stream, "ts": ts, "text": text})
        if batch:
            yield event(batch, ",".join(f"{n}:{o}" for n, o in offsets.items()))
        if done:
            yield "event: end\ndata: {}\n\n"
            return
        if is_disconnected is not None and await is_disconnected():  # type: ignore[operator]
            return
        await asyncio.sleep(POLL_SECONDS)
