"""Incremental ingestion of one experiment's metrics, from every source it has.

Where it runs, and why there: the experiment's **supervisor** calls
:func:`ingest_experiment` every second in a thread while the experiment runs, once
more after the script exits (and, for Docker, after the container's files were
copied out), before the working copy is removed. The supervisor is detached from the
agent, so the agent dying changes nothing; if the supervisor itself dies, the
reconciling agent runs a last pass over what is left (``output.log`` always is).
Each source is read from the byte offset committed with its last points (see
:mod:`gridrun.metrics.storage`), never from the start, and a pass that loses a race
with another reader writes nothing.

Sources, each named by a stable id:

``log``
    ``output.log``: ``[stdout]``/``[stderr]`` lines (:mod:`gridrun.metrics.stdout`).
``tb:<relative path>``
    TensorBoard event files (:mod:`gridrun.metrics.tfevents`).
``csv:<relative path>``
    ``metrics.csv`` files, Lightning's CSVLogger among them (:mod:`gridrun.metrics.csvlog`).

File sources are named by their path relative to the folder they were found in, so
the same file seen in the live working copy and later in the saved artifacts is one
source, read once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gridrun.metrics.stdout import Patterns, StdoutParser
from gridrun.metrics.storage import Point, SourceState, commit_batch, load_sources
from gridrun.store.db import Store

log = logging.getLogger("gridrun.metrics")

# Bytes read per commit: bounds both memory and how long a transaction holds the lock.
BATCH_BYTES = 8 << 20
# Folders never walked for metric files: environments, caches, version control.
SKIP_DIRS = {
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".venv",
    "venv",
    "node_modules",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".pytest_cache",
}
MAX_WALK_ENTRIES = 50_000


@dataclass
class IngestTarget:
    """What one experiment's metrics are read from."""

    experiment_id: int
    log_path: Path
    roots: list[Path] = field(default_factory=list)  # working copy, then saved artifacts
    skip: list[str] = field(default_factory=list)  # folders under a root not to walk (mounts)
    patterns: Patterns = field(default_factory=Patterns)


def ingest_experiment(store: Store, target: IngestTarget, final: bool = False) -> int:
    """Read every source of one experiment up to its end; returns points committed.

    ``final`` is for after the experiment ended: a last line without its newline is
    taken too, since nothing will complete it.
    """
    sources = load_sources(store, target.experiment_id)
    total = 0
    # Files first: when a key is both logged to a file and printed, the file (exact
    # steps, full precision) is the one that owns it.
    for name, path in discover_files(target):
        total += _ingest_file(store, target, name, path, sources, final)
    total += ingest_log(store, target, sources, final)
    return total


def ingest_log(
    store: Store, target: IngestTarget, sources: dict[str, SourceState], final: bool
) -> int:
    before = sources.setdefault("log", SourceState())
    total = 0
    try:
        fh = open(target.log_path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return 0
    with fh:
        while True:
            fh.seek(before.offset)
            data = fh.read(BATCH_BYTES)
            if not data:
                return total
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                if not final and len(data) < BATCH_BYTES:
                    return total  # a line still being written
                cut = len(data)
            parser = StdoutParser(target.patterns, before.state)
            points: dict[str, list[Point]] = {}
            feed = parser.feed_log_line
            for line in data[:cut].decode("utf-8", errors="replace").split("\n"):
                if line:
                    feed(line, points)
            if not commit_batch(
                store,
                target.experiment_id,
                "log",
                before,
                before.offset + cut,
                parser.state(),
                points,
            ):
                # Another reader got there first: take up from where it stopped.
                sources.clear()
                sources.update(load_sources(store, target.experiment_id))
                before = sources.setdefault("log", SourceState())
                continue
            total += sum(len(p) for p in points.values())


def discover_files(target: IngestTarget) -> Iterator[tuple[str, Path]]:
    """(source id, path) of every metric file under the target's roots, each id once."""
    seen: set[str] = set()
    for root in target.roots:
        if not root.is_dir():
            continue
        entries = 0
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
            dirnames[:] = sorted(
                d for d in dirnames if d not in SKIP_DIRS and f"{rel_dir}{d}" not in target.skip
            )
            entries += len(dirnames) + len(filenames)
            for fname in sorted(filenames):
                kind = _kind(fname)
                if kind is None:
                    continue
                sid = f"{kind}:{rel_dir}{fname}"
                if sid not in seen:
                    seen.add(sid)
                    yield sid, Path(dirpath) / fname
            if entries > MAX_WALK_ENTRIES:
                break


def _kind(fname: str) -> str | None:
    if fname.startswith("events.out.tfevents."):
        return "tb"
    if fname == "metrics.csv":
        return "csv"
    return None


def _ingest_file(
    store: Store,
    target: IngestTarget,
    name: str,
    path: Path,
    sources: dict[str, SourceState],
    final: bool,
) -> int:
    from gridrun.metrics import csvlog, tfevents

    reader = tfevents.read_events if name.startswith("tb:") else csvlog.read_csv
    before = sources.setdefault(name, SourceState())
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    if size == before.offset and before.known:
        return 0
    total = 0
    for _ in range(1000):  # bounded: a file is read in BATCH_BYTES steps
        try:
            batch = reader(path, before.offset, before.state, BATCH_BYTES, final)
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return total
        if batch.offset == before.offset and before.known:
            return total
        if not commit_batch(
            store, target.experiment_id, name, before, batch.offset, batch.state, batch.points
        ):
            fresh = load_sources(store, target.experiment_id)
            sources.update(fresh)
            before = sources.setdefault(name, SourceState())
            continue
        total += sum(len(p) for p in batch.points.values())
        if not batch.more:
            return total
    return total
