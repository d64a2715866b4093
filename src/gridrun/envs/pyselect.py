"""Choosing an installed Python for code that the default one cannot run.

The evidence comes from :func:`gridrun.deps.python_evidence`: a standard-library name
the code needs that was removed (``collections.Set`` after 3.9, ``imp`` after 3.11) or
that only Python 2 has (``urllib2``, ``cPickle``). The interpreters are the ones already
on this machine: pyenv's ``~/.pyenv/versions`` and ``pythonX.Y`` on ``PATH``. Nothing is
downloaded (uv never downloads interpreters here).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

_VERSION_DIR = re.compile(r"^(\d+)\.(\d+)\.\d+$")


def installed_pythons() -> dict[tuple[int, int], Path]:
    """``(major, minor) -> interpreter`` for every Python found, newest patch per minor."""
    found: dict[tuple[int, int], tuple[int, Path]] = {}
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            match = _VERSION_DIR.match(entry.name)
            if not match:
                continue
            minor = (int(match.group(1)), int(match.group(2)))
            exe = entry / "bin" / f"python{minor[0]}.{minor[1]}"
            patch = int(entry.name.rsplit(".", 1)[1])
            if exe.is_file() and (minor not in found or found[minor][0] < patch):
                found[minor] = (patch, exe)
    for major, minors in ((2, range(7, 8)), (3, range(6, 20))):
        for m in minors:
            if (major, m) in found:
                continue
            on_path = shutil.which(f"python{major}.{m}")
            if on_path and "/shims/" not in on_path:  # a pyenv shim may point at nothing
                found[(major, m)] = (-1, Path(on_path))
    return {minor: exe for minor, (_patch, exe) in found.items()}


def choose_python(newest: tuple[int, int], oldest: tuple[int, int] = (3, 6)) -> str | None:
    """The newest installed ``X.Y`` not newer than ``newest`` (2.7 only for Python 2)."""
    pythons = installed_pythons()
    if newest[0] == 2:
        return "2.7" if (2, 7) in pythons else None
    fits = [v for v in pythons if v[0] == 3 and oldest <= v <= newest]
    if not fits:
        return None
    best = max(fits)
    return f"{best[0]}.{best[1]}"


def python_path(minor: str) -> Path | None:
    """The interpreter for ``X.Y``, if installed."""
    match = re.fullmatch(r"(\d+)\.(\d+)", minor)
    if not match:
        return None
    return installed_pythons().get((int(match.group(1)), int(match.group(2))))
