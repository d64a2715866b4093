"""Reading an experiment's pipes on this machine, line by line, as each line arrives."""

from __future__ import annotations

from typing import IO

from gridrun.logs import LogSink


def pump(stream: IO[bytes], name: str, sink: LogSink) -> None:
    """Copy one pipe to the sink line by line, as each line arrives."""
    for raw in iter(stream.readline, b""):
        sink.write(name, raw.decode("utf-8", errors="replace"))
    stream.close()
