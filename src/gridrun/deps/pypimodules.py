"""Which PyPI distributions provide an import: pigar's database of ~650,000 of them.

gridrun's own table (:mod:`gridrun.deps.mapping`) knows the famous mismatches
(``cv2``, ``sklearn``); the long tail (``Levenshtein``, ``wx``, ``serial``) needs data
about the whole index. The ``pigar`` project publishes exactly that: a SQLite file in
its wheel (BSD-3-Clause, ``pigar/.db.sqlite3``) listing each distribution's top-level
modules. It is read here as data; pigar itself is never run or imported.

pigar's file has no index on module names (a lookup scans 887,000 rows, ~120 ms), so
it is turned once into a small derived database, ``modules(module, dist, modules,
version)`` indexed by module, kept in the user's cache folder (it is public data that
depends only on the pigar release, so every GRID_HOME shares it). A project's lookups
then cost a fraction of a millisecond each and nothing is loaded into memory.

Where the file comes from, first match wins: ``GRID_PIGAR_DB`` (a path to pigar's
file), a ``pigar`` package installed next to gridrun, else the pinned wheel fetched
once with uv from the index pip is configured for (``--no-deps``: only the data).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

PIGAR_VERSION = "2.2.0"
_DERIVED_VERSION = 1
RETRY_SECONDS = 24 * 3600
_LOCK = threading.Lock()
_CONNECTIONS: dict[str, sqlite3.Connection | None] = {}
_PLACEHOLDER = re.compile(r"^0(\.0)*(\.[01])?$")  # 0, 0.0.0, 0.0.1, 0.1: reserved names


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gridrun"


def is_placeholder(version: str) -> bool:
    """A version like ``0.0.0`` or ``0.1``: a name reserved on the index, not a project."""
    return bool(_PLACEHOLDER.match(version or "0"))


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def choose(
    module: str, candidates: list[tuple[str, int, str]], context: Iterable[str] = ()
) -> str | None:
    """The distribution to install for ``module`` among ``(name, modules, version)``.

    Deterministic, from the evidence the database holds (no popularity figures).
    First a plug-in of a framework the code also imports (``context``: its other
    top-level imports): with ``django`` imported, ``haystack`` is ``django-haystack``,
    not the unrelated ``haystack``. Then a distribution named like the module, then one
    named by a binding convention
    (``python-X``, ``pyX``, ``py-X``, ``X-python``, ``X-py``), then one whose name
    contains the module's; within each, a released version before a reserved
    placeholder (``0.0.0``), fewer top-level modules (a focused package, not a bundle
    that vendors a copy), the shorter name, then alphabetical order.
    """
    if not candidates:
        return None
    key = _canonical(module)
    conventions = [
        f"python-{key}",
        f"py{key}",
        f"py-{key}",
        f"{key}-python",
        f"{key}python",
        f"{key}-py",
    ]
    flat = _norm(module)
    plugins = sorted(
        {f"{_canonical(c)}-{key}" for c in context if _canonical(c) != key}
        | {f"{_canonical(c)}{key}" for c in context if _canonical(c) != key}
    )

    def rank(item: tuple[str, int, str]) -> tuple[int, int, int, int, int, str]:
        name, modules, version = item
        canonical = _canonical(name)
        placeholder = 1 if is_placeholder(version) else 0
        if canonical in plugins and not placeholder:
            kind, order = -1, plugins.index(canonical)
        elif canonical == key and not placeholder:
            kind, order = 0, 0
        elif canonical in conventions:
            kind, order = 1, conventions.index(canonical)
        elif flat and flat in _norm(name):
            kind, order = 2, 0
        else:
            kind, order = 3, 0
        return (kind, placeholder, order, modules, len(name), name.lower())

    return min(candidates, key=rank)[0]


def choose_fallback(
    module: str, candidates: list[tuple[str, int, str]], context: Iterable[str] = ()
) -> str | None:
    """The next distribution to try for ``module`` once the first choice failed to install.

    Only candidates named after the module qualify (``graphql-core`` for ``graphql``),
    never a bundle that merely ships a module of that name. Among them: a plug-in of a
    framework the code imports (``django-registration-redux`` when ``django`` is
    imported), then a released 1.0 or later before a 0.x experiment, then the highest
    version (a project maintained through more releases), then the fewest modules and
    the shortest name. Deterministic, like :func:`choose`.
    """
    key = _canonical(module)
    flat = _norm(module)
    frameworks = {_canonical(c) for c in context} - {key}
    rows = [r for r in candidates if flat and flat in _norm(r[0]) and not is_placeholder(r[2])]

    def rank(item: tuple[str, int, str]) -> tuple[int, int, tuple[int, ...], int, int, str]:
        name, modules, version = item
        canonical = _canonical(name)
        plugin = 0 if any(canonical.startswith(f"{f}-") for f in frameworks) else 1
        numbers = [int(n) for n in re.findall(r"\d+", version)[:3]] or [0]
        mature = 0 if numbers[0] >= 1 else 1
        return (plugin, mature, tuple(-n for n in numbers), modules, len(name), name.lower())

    return min(rows, key=rank)[0] if rows else None


class ModuleIndex:
    """Lookups in the derived database; ``None`` where it cannot be had (offline)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    def candidates(self, module: str) -> list[tuple[str, int, str]]:
        rows = self.conn.execute(
            "SELECT dist, modules, version FROM modules WHERE module = ?", (module,)
        ).fetchall()
        return [(str(d), int(n), str(v or "")) for d, n, v in rows]

    def distribution(self, module: str, context: Iterable[str] = ()) -> str | None:
        return choose(module, self.candidates(module), context)


def module_index(note: list[str] | None = None) -> ModuleIndex | None:
    """The shared index, built on first use; None (with a note) when it cannot be."""
    with _LOCK:
        derived = cache_root() / f"pypi-modules-pigar-{PIGAR_VERSION}-v{_DERIVED_VERSION}.sqlite"
        key = str(derived)
        if key in _CONNECTIONS:
            conn = _CONNECTIONS[key]
            return None if conn is None else _wrap(derived, conn)
        failed = derived.with_name(derived.name + ".failed")
        try:
            if not derived.is_file():
                # Offline: one try a day, not a network timeout on every `grid run`.
                if failed.is_file() and time.time() - failed.stat().st_mtime < RETRY_SECONDS:
                    raise OSError(failed.read_text(encoding="utf-8").strip() or "fetch failed")
                _build(derived)
            index = ModuleIndex(derived)
        except (OSError, sqlite3.Error, subprocess.SubprocessError) as exc:
            with contextlib.suppress(OSError):
                if not failed.is_file():
                    failed.write_text(str(exc), encoding="utf-8")
            if note is not None:
                note.append(
                    "Could not read pigar's database of PyPI modules "
                    f"({exc}); import names are mapped by gridrun's own table only."
                )
            _CONNECTIONS[key] = None
            return None
        with contextlib.suppress(OSError):
            failed.unlink(missing_ok=True)
        _CONNECTIONS[key] = index.conn
        return index


def _wrap(path: Path, conn: sqlite3.Connection) -> ModuleIndex:
    index = ModuleIndex.__new__(ModuleIndex)
    index.path = path
    index.conn = conn
    return index


def _source_db(workdir: Path) -> Path:
    """pigar's own file: named, installed, or fetched into ``workdir``."""
    named = os.environ.get("GRID_PIGAR_DB")
    if named:
        return Path(named)
    with contextlib.suppress(ImportError, ValueError):
        spec = importlib.util.find_spec("pigar")
        if spec is not None and spec.origin:
            found = Path(spec.origin).parent / ".db.sqlite3"
            if found.is_file():
                return found
    from uv import find_uv_bin

    from gridrun.envs.pipconf import load_pip_config

    pip = load_pip_config()
    env = dict(os.environ, **pip.uv_env(), UV_NO_PROGRESS="1", NO_COLOR="1")
    target = workdir / "pigar"
    proc = subprocess.run(
        [
            find_uv_bin(),
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            *pip.uv_args(),
            f"pigar=={PIGAR_VERSION}",
        ],
        env=env,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    found = target / "pigar" / ".db.sqlite3"
    if proc.returncode != 0 or not found.is_file():
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise OSError(f"fetching pigar=={PIGAR_VERSION} failed: {lines[-1] if lines else '?'}")
    return found


def _build(derived: Path) -> None:
    """Derive the indexed database atomically, one builder at a time per machine."""
    derived.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(f"{derived}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if derived.is_file():
            return  # another process built it while we waited
        workdir = Path(tempfile.mkdtemp(prefix=".pigar-", dir=derived.parent))
        try:
            source = _source_db(workdir)
            tmp = workdir / "derived.sqlite"
            conn = sqlite3.connect(tmp)
            try:
                conn.execute("ATTACH DATABASE ? AS p", (str(source),))
                conn.executescript(
                    """
                    CREATE TEMP TABLE counts AS
                      SELECT distribution_id AS id, count(*) AS n
                      FROM p.top_level_module_names GROUP BY distribution_id;
                    CREATE INDEX temp.counts_id ON counts(id);
                    CREATE TABLE modules AS
                      SELECT m.name AS module, d.name AS dist, c.n AS modules,
                             d.version AS version
                      FROM p.top_level_module_names m
                      JOIN p.distributions d ON d.id = m.distribution_id
                      JOIN counts c ON c.id = d.id;
                    CREATE INDEX modules_module ON modules(module);
                    """
                )
                conn.commit()
                conn.execute("DETACH DATABASE p")
            finally:
                conn.close()
            os.replace(tmp, derived)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        os.close(lock)
