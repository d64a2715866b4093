"""The search's Optuna journal file, written without a disk flush per operation.

Optuna's ``JournalFileBackend`` takes a lock file (a symlink made and removed) and
calls ``fsync`` for every operation it appends: asking for a trial of three
parameters is four of each, telling it one more. A search running one short trial at
a time spent most of its agent's time between two trials there (about 1 ms a flush
on an idle disk, 4 ms on a busy one), on the path from one trial's end to the next
one's start.

This backend writes the same file, line for line, so Optuna's own backend (and any
Optuna tool) reads it; only its writes differ:

- one ``write`` of the whole batch on a file opened for appending, under ``flock``:
  a killed process either wrote its lines or did not, and its lock goes with it;
- no flush per operation. The data is in the kernel once ``write`` returns, which is
  what a killed agent needs to resume. Against a power loss, :meth:`sync` flushes
  the file; the search calls it before the store names a trial the journal holds
  (see ``SearchDriver``), once a pass rather than once an operation, so the journal
  is never behind the store on disk.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optuna.storages.journal import BaseJournalBackend


class SearchJournal(BaseJournalBackend):
    """An Optuna journal backend over one file (module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch(exist_ok=True)
        # Byte offset of each log number read so far: every storage call reads the
        # file from where the last one stopped, not from its start.
        self._offsets: dict[int, int] = {0: 0}
        self._dirty = False

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        # Optuna asks from the number after the last it read, known here; anything
        # else is read from the start.
        start = log_number_from if log_number_from in self._offsets else 0
        with open(self.path, "rb") as f:
            f.seek(self._offsets[start])
            number = start
            for line in f:
                if not line.endswith(b"\n"):
                    break  # being written: read it whole on the next call
                self._offsets[number + 1] = self._offsets[number] + len(line)
                if number >= log_number_from:
                    yield json.loads(line)
                number += 1

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data.encode())
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)  # and the lock with it
        self._dirty = True

    def sync(self) -> None:
        """Flush what was appended since the last call to the disk."""
        if not self._dirty:
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._dirty = False
