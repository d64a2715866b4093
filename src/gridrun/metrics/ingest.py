"""Incremental ingestion of one experiment's metrics, from every source it has.

Where it runs, and why there: the experiment's **supervisor** calls
:func:`ingest_experiment` every second in a thread while the experiment runs, once
more after the script exits (and, for Docker, after the container's files were
copied out), before the working copy is removed. The supervisor is detached from the
agent, so the agent dying changes nothing; if the supervisor itself dies, the
reconciling agent runs a last pass over what is left (``output.log`` always is).
Each source is read from the byte offset committed with its last points (see
:mod:`gridrun.store.metrics`), never from the start, and a pass that loses a race
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
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridrun.metrics.shapes import LineShapes
from gridrun.metrics.stdout import Patterns, StdoutParser, load_patterns
from gridrun.store.db import Store
from gridrun.store.metrics import Columns, Point, SourceState, commit_batch, load_sources

if TYPE_CHECKING:
    from gridrun.backends.base import Job
    from gridrun.config import MachineConfig
    from gridrun.home import GridHome
    from gridrun.specs import RunSpec

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


def target_for(
    home: GridHome, job: Job, run_spec: RunSpec, machine: MachineConfig | None = None
) -> IngestTarget:
    """The sources of a job: its log, its working copy, its saved artifacts.

    Patterns come from the run's ``--config`` first, then ``GRID_HOME/config.yaml``
    (``machine``, when the caller has read it already); both were checked at
    submission, so a file broken since then only costs its patterns (with a note in
    the supervisor's log), never the experiment.
    """
    from gridrun.config import load_machine_config
    from gridrun.errors import GridError

    sections: list[tuple[Any, str]] = [(run_spec.metrics, "the run's --config")]
    try:
        machine = machine or load_machine_config(home.config_path)
        sections.append((machine.metrics, str(home.config_path)))
        patterns = load_patterns(sections)
    except GridError as exc:
        print(f"gridrun: metrics patterns ignored: {exc}", file=sys.stderr)
        patterns = Patterns()
    skip = []
    for d in job.datastores:
        mount = d.mount_dir.strip("/")
        if not d.mount_dir.startswith("/"):
            skip.append(mount)
        elif d.mount_dir.startswith(str(job.workdir) + "/"):
            skip.append(d.mount_dir[len(str(job.workdir)) + 1 :].strip("/"))
    return IngestTarget(
        experiment_id=job.experiment_id,
        log_path=job.log_path,
        roots=[job.workdir, job.artifacts_dir],
        skip=skip,
        patterns=patterns,
    )


def ingest_experiment(
    store: Store, target: IngestTarget, final: bool = False, files: bool = True
) -> int:
    """Read every source of one experiment up to its end; returns points committed.

    ``final`` is for after the experiment ended: a last line without its newline is
    taken too, since nothing will complete it. ``files=False`` reads the log only.
    """
    sources = load_sources(store, target.experiment_id)
    total = 0
    if files:
        # Files first: when a key is both logged to a file and printed, the file (exact
        # steps, full precision) is the one that owns it.
        for name, path in discover_files(target):
            total += _ingest_file(store, target, name, path, sources, final)
    total += ingest_log(store, target, sources, final)
    return total


class LiveIngest:
    """Ingests one experiment every ``interval`` seconds in a thread, while it runs.

    Owned by the experiment's supervisor. The thread has its own connection (SQLite
    connections stay in their thread) and survives any error of a pass: metrics are
    never worth failing an experiment for. Files are walked every ``file_every``
    passes, since a walk costs more than reading the end of one log.
    """

    def __init__(
        self, db_path: Path, target: IngestTarget, interval: float = 1.0, file_every: int = 3
    ) -> None:
        self.db_path = db_path
        self.target = target
        self.interval = interval
        self.file_every = file_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics", daemon=True)

    def start(self) -> LiveIngest:
        self._thread.start()
        return self

    def _loop(self) -> None:
        store: Store | None = None
        passes = 0
        while not self._stop.wait(self.interval):
            try:
                store = store or Store(self.db_path)
                ingest_experiment(store, self.target, files=passes % self.file_every == 0)
            except Exception as exc:  # reported; the next pass retries
                print(f"gridrun: metrics pass failed: {exc}", file=sys.stderr)
            passes += 1
        if store is not None:
            store.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def final_ingest(store: Store, target: IngestTarget) -> None:
    """The last pass over an experiment that ended; an error is reported, not raised."""
    try:
        ingest_experiment(store, target, final=True)
    except Exception as exc:  # the exit record comes first
        print(f"gridrun: could not read metrics: {exc}", file=sys.stderr)


def ingest_log(
    store: Store, target: IngestTarget, sources: dict[str, SourceState], final: bool
) -> int:
    before = sources.setdefault("log", SourceState())
    total = 0
    shapes = LineShapes()  # learned once for all the batches of this pass
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
            parser = StdoutParser(target.patterns, before.state, shapes)
            points: dict[str, list[Point] | Columns] = {}
            parser.feed_log(data[:cut].decode("utf-8", errors="replace"), points)
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
