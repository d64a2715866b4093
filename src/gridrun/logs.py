"""The experiment log format: ``[stream] [ISO-8601 UTC timestamp] line``.

Lines are written as they arrive by the process that owns the output (the build
thread or the experiment's supervisor), straight to a file, so nothing is lost when
the agent or the CLI dies. Readers (``grid logs``) only parse these files.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import IO


def timestamp(ts: float | None = None) -> str:
    when = datetime.fromtimestamp(ts, timezone.utc) if ts else datetime.now(timezone.utc)
    return when.isoformat()


def format_line(stream: str, text: str, ts: float | None = None) -> str:
    return f"[{stream}] [{timestamp(ts)}] {text.rstrip(chr(10)).rstrip(chr(13))}\n"


class LogSink:
    """A thread-safe, line-buffered appender for one log file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Line-buffered so a reader sees each line as soon as it is written.
        self._fh: IO[str] = open(  # noqa: SIM115 - closed by close()
            path, "a", encoding="utf-8", errors="replace", buffering=1
        )
        self._lock = threading.Lock()

    def write(self, stream: str, text: str, ts: float | None = None) -> None:
        line = format_line(stream, text, ts)
        with self._lock:
            self._fh.write(line)

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    def __enter__(self) -> LogSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_line(line: str) -> tuple[str, str, str] | None:
    """Split a formatted line into (stream, timestamp, text); None if it is not one."""
    if not line.startswith("["):
        return None
    try:
        stream, rest = line[1:].split("] [", 1)
        ts, text = rest.split("] ", 1)
    except ValueError:
        return None
    return stream, ts, text.rstrip("\n")
