"""Fetching an ``http(s)://`` archive: streamed to disk, resumable, with progress.

The download goes into the version's own folder as ``download.part`` and is renamed
to ``download`` only once complete, so an interrupted fetch is visible as such. A
resume asks for the rest with an HTTP ``Range`` header and starts over when the
server ignores it (answers 200 instead of 206).
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from gridrun import __version__
from gridrun.datastores.progress import Progress
from gridrun.errors import DatastoreError

CHUNK = 1 << 20


class DownloadRefused(DatastoreError):
    """The server refused for good (HTTP 4xx): there is nothing to resume."""


TIMEOUT = 60


def download(url: str, dest: Path, progress: Progress) -> Path:
    """Fetch ``url`` into ``dest`` (resuming ``dest.part``); return ``dest``."""
    if dest.exists():
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"gridrun/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
            if have and resp.status != 206:
                have = 0  # the server sends everything again
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            progress.phase(f"Downloading {Path(url.split('?')[0]).name}", total, None)
            progress.advance(have)
            with open(part, "ab" if have else "wb") as out:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    progress.advance(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            if total is not None and part.stat().st_size != total:
                raise DatastoreError(
                    f"Download of {url} ended early ({part.stat().st_size} of {total} bytes).",
                    hint="`grid datastore resume --name NAME` continues it.",
                )
    except urllib.error.HTTPError as exc:
        cls = DownloadRefused if 400 <= exc.code < 500 else DatastoreError
        raise cls(
            f"Downloading {url} failed: HTTP {exc.code} {exc.reason}.",
            hint="Check the URL; it must point to a .zip, .tar or .tar.gz archive.",
        ) from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise DatastoreError(
            f"Downloading {url} failed: {reason}.",
            hint="`grid datastore resume --name NAME` continues it once the server answers.",
        ) from exc
    os.replace(part, dest)
    return dest
