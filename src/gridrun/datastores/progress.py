"""How creation reports progress, without knowing how it is shown.

The CLI passes a rich progress bar; library callers and tests pass nothing (or a
recorder). Phases are: downloading, hashing and storing files.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def phase(self, description: str, total_bytes: int | None, total_files: int | None) -> None:
        """A new phase begins; totals are None when unknown."""

    def advance(self, nbytes: int = 0, nfiles: int = 0) -> None:
        """``nbytes`` more bytes and ``nfiles`` more files are done."""


class NullProgress:
    def phase(self, description: str, total_bytes: int | None, total_files: int | None) -> None:
        pass

    def advance(self, nbytes: int = 0, nfiles: int = 0) -> None:
        pass
