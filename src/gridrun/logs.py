"""The experiment log format: ``[stream] [ISO-8601 UTC timestamp] line``.

Lines are written as they arrive by the process that owns the output (the build
thread or the experiment's supervisor), straight to a file, so nothing is lost when
the agent or the CLI dies. Readers (``grid logs``) only parse these files.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone
from pathlib import Path


def timestamp(ts: float | None = None) -> str:
    when = datetime.fromtimestamp(ts, timezone.utc) if ts else datetime.now(timezone.utc)
    return when.isoformat()


def format_line(stream: str, text: str, ts: float | None = None) -> str:
    return f"[{stream}] [{timestamp(ts)}] {text.rstrip(chr(10)).rstrip(chr(13))}\n"


class LogSink:
    """A thread-safe appender for one log file: one ``write(2)`` per line.

    Why raw appends: on a full disk a buffered file raises on some later line and the
    pump thread reading the experiment's pipe dies with it, so the experiment blocks on
    a full pipe forever. Here a line that cannot be written is counted and dropped, the
    experiment keeps running, and a note says how many lines were lost once a write
    succeeds again.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._lock = threading.Lock()
        self.lost = 0
        self.lost_reason = ""

    def write(self, stream: str, text: str, ts: float | None = None) -> None:
        line = format_line(stream, text, ts).encode("utf-8", errors="replace")
        with self._lock:
            if self._fd < 0:
                return
            try:
                if self.lost:
                    note = f"gridrun: {self.lost} log line(s) lost: {self.lost_reason}"
                    os.write(self._fd, format_line("stderr", note).encode())
                    self.lost = 0
                os.write(self._fd, line)
            except OSError as exc:
                self.lost += 1
                self.lost_reason = exc.strerror or str(exc)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

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
