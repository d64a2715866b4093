"""Where datastore versions live on disk, and how their status is read.

Layout (all under ``GRID_HOME/datastores``; names cannot start with ``.``, so the
dot folders never collide with a datastore)::

    .objects/ab/cdef...      content-addressed files (sha256), mode 0444, shared by
                             every version of every datastore (not by snapshots: a
                             snapshot object is never garbage-collected from here)
    <name>/<version>/
      state.json             source, created_at, pid of the creating process, error
      .lock                  flock held by the creating process for its whole life
      journal.jsonl          one line per stored file: what a resume can skip
      download(.part)        an http(s) source while it is fetched
      tmp/                   files being hashed before they become objects
      files/                 the version's tree: hard links to objects, dirs 0555
      manifest.json          every entry, written once all files are stored
      COMPLETE               the completion marker (with the totals), written last
      TAMPERED               what a check found changed since completion (see verify.py)

Status is derived, never stored: ``succeeded`` if COMPLETE exists, ``processing``
if the creator still holds ``.lock`` (the kernel drops an flock when its process
dies, even on ``kill -9``, so there is no pid-reuse guesswork), else ``failed``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gridrun.errors import DatastoreError, NotFoundError
from gridrun.home import GridHome

PROCESSING, SUCCEEDED, FAILED = "processing", "succeeded", "failed"
TAMPERED = "tampered"  # completed, then altered: never mounted again
TAMPERED_FILE = "TAMPERED"


@dataclass
class DatastoreVersion:
    name: str
    version: int
    status: str
    size: int | None  # bytes of regular files (logical, before dedup)
    files: int | None
    created_at: float
    source: str
    path: Path  # the version folder
    error: str | None = None
    pid: int | None = None

    @property
    def tree(self) -> Path:
        return self.path / "files"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["tree"] = str(self.tree)
        return data


def root(home: GridHome) -> Path:
    return home.datastores


def objects_dir(home: GridHome) -> Path:
    return home.datastores / ".objects"


def version_dir(home: GridHome, name: str, version: int) -> Path:
    return home.datastores / name / str(version)


def atomic_write(path: Path, text: str) -> None:
    """Write via a temp file, fsync and ``os.replace``: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_state(vdir: Path, state: dict[str, Any]) -> None:
    atomic_write(vdir / "state.json", json.dumps(state, indent=1))


@contextlib.contextmanager
def creator_lock(vdir: Path, wait: float = 1.0) -> Iterator[None]:
    """Hold the version's lock: proof to every other process that it is being worked on."""
    fd = os.open(vdir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # A concurrent `list` may hold a shared probe for an instant: retry briefly.
                if time.monotonic() >= deadline:
                    state = read_json(vdir / "state.json") or {}
                    raise DatastoreError(
                        f"Datastore {vdir.parent.name} version {vdir.name} is being created "
                        f"by another process (pid {state.get('pid', '?')}).",
                        hint="Wait for it to finish; `grid datastore list` shows its status.",
                    )
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _locked_by_other(vdir: Path) -> bool:
    try:
        fd = os.open(vdir / ".lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def load_version(vdir: Path) -> DatastoreVersion | None:
    """Read one version folder; None for something that is not one (a stray folder)."""
    state = read_json(vdir / "state.json")
    if state is None or not vdir.name.isdigit():
        return None
    complete = read_json(vdir / "COMPLETE")
    if complete is not None:
        status, size, files = SUCCEEDED, complete.get("bytes"), complete.get("files")
    else:
        status = PROCESSING if _locked_by_other(vdir) else FAILED
        size, files = state.get("bytes"), state.get("files")
    error = state.get("error")
    if status == FAILED and not error:
        error = "interrupted: the creating process ended before it finished"
    tampered = read_json(vdir / TAMPERED_FILE) if status == SUCCEEDED else None
    if tampered is not None:
        problems = [str(p) for p in tampered.get("problems", [])]
        status = TAMPERED
        error = "altered since it was created: " + "; ".join(problems[:3])
        if len(problems) > 3:
            error += f"; and {len(problems) - 3} more"
    return DatastoreVersion(
        name=vdir.parent.name,
        version=int(vdir.name),
        status=status,
        size=size,
        files=files,
        created_at=float(state.get("created_at", 0.0)),
        source=str(state.get("source", {}).get("display", "")),
        path=vdir,
        error=error if status != SUCCEEDED else None,
        pid=state.get("pid"),
    )


def list_datastores(home: GridHome, name: str | None = None) -> list[DatastoreVersion]:
    """Every version of every datastore (or of ``name``), sorted by name then version."""
    base = root(home)
    if not base.is_dir():
        return []
    out: list[DatastoreVersion] = []
    for ndir in sorted(base.iterdir()):
        if ndir.name.startswith(".") or not ndir.is_dir() or (name and ndir.name != name):
            continue
        versions = [p for p in ndir.iterdir() if p.name.isdigit() and p.is_dir()]
        for vdir in sorted(versions, key=lambda p: int(p.name)):
            v = load_version(vdir)
            if v is not None:
                out.append(v)
    return out


def get_version(home: GridHome, name: str, version: int | None) -> DatastoreVersion:
    """One version, or a one-line NotFoundError listing what exists.

    ``version=None`` means the latest *succeeded* version: a newer version that is
    still processing or has failed cannot be mounted, and the last good one is what
    a user who did not pin a version expects to get.
    """
    everything = list_datastores(home)
    mine = [v for v in everything if v.name == name]
    if not mine:
        known = sorted({v.name for v in everything})
        raise NotFoundError(
            f"No datastore named '{name}' (known: {', '.join(known) or 'none'}).",
            hint="`grid datastore list` shows them; `grid datastore create` makes one.",
        )
    if version is None:
        # A tampered latest version is returned too: resolve refuses it by name, rather
        # than an older version being mounted without a word.
        good = [v for v in mine if v.status in (SUCCEEDED, TAMPERED)]
        if not good:
            latest = mine[-1]
            raise DatastoreError(
                f"Datastore '{name}' has no usable version yet (latest, version "
                f"{latest.version}, is {latest.status}).",
                hint=f"`grid datastore resume --name {name}` finishes a failed one.",
            )
        return good[-1]
    for v in mine:
        if v.version == version:
            return v
    raise NotFoundError(
        f"Datastore '{name}' has no version {version} "
        f"(versions: {', '.join(str(v.version) for v in mine)}).",
        hint="`grid datastore list` shows them.",
    )


def make_writable(path: Path) -> None:
    """Give the owner write access to every folder again, so the tree can be removed."""
    if not path.exists():
        return
    for dirpath, dirnames, _files in os.walk(path):
        for d in [dirpath, *(os.path.join(dirpath, n) for n in dirnames)]:
            try:
                st = os.lstat(d)
                if stat.S_ISDIR(st.st_mode):
                    os.chmod(d, st.st_mode | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
            except OSError:
                pass


def remove_tree(path: Path) -> None:
    make_writable(path)
    shutil.rmtree(path, ignore_errors=True)
