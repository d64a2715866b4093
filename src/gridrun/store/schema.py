"""The database schema, versioned with ``PRAGMA user_version``.

``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``; a new change is
a new step at the end, never an edit of an old one, so every existing ``grid.db``
upgrades in order on open.
"""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  REAL NOT NULL,
    backend     TEXT NOT NULL,
    status      TEXT NOT NULL,
    spec        TEXT NOT NULL,
    env_key     TEXT,
    env_ref     TEXT,
    error       TEXT,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS experiments (
    id                 INTEGER PRIMARY KEY,
    run_id             INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name               TEXT NOT NULL UNIQUE,
    idx                INTEGER NOT NULL,
    argv               TEXT NOT NULL,
    params             TEXT NOT NULL DEFAULT '{}',
    status             TEXT NOT NULL,
    exit_code          INTEGER,
    error              TEXT,
    cpus               REAL NOT NULL DEFAULT 1,
    gpus               INTEGER NOT NULL DEFAULT 0,
    memory             INTEGER,
    gpu_ids            TEXT,
    queued_at          REAL NOT NULL,
    started_at         REAL,
    finished_at        REAL,
    claim_token        TEXT,
    claimed_at         REAL,
    supervisor_pid     INTEGER,
    supervisor_started REAL,
    pid                INTEGER,
    stop_requested     INTEGER NOT NULL DEFAULT 0,
    backend_ref        TEXT
);
CREATE INDEX IF NOT EXISTS experiments_status ON experiments(status);
CREATE INDEX IF NOT EXISTS experiments_run ON experiments(run_id);
CREATE TABLE IF NOT EXISTS events (
    id            INTEGER PRIMARY KEY,
    ts            REAL NOT NULL,
    run_id        INTEGER,
    experiment_id INTEGER,
    kind          TEXT NOT NULL,
    message       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id);
"""

# Metrics (issue 11). A series is one (experiment, key); its points live in chunks
# of packed little-endian float64 triples (step, wall time, value), so reading a
# thousand points is one row and one ``array.frombytes``, not a thousand rows. The
# series row carries the summary (count, last, min, max) kept up to date on every
# append. A source is one thing read incrementally (the experiment's output.log, one
# TensorBoard or CSV file): its byte offset and parser state are committed in the
# same transaction as the points read up to it, so a reader that dies re-reads
# nothing twice and loses nothing.
METRICS = """
CREATE TABLE IF NOT EXISTS metric_series (
    id            INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    source        TEXT NOT NULL,
    count         INTEGER NOT NULL DEFAULT 0,
    last_step     REAL,
    last_wall     REAL,
    last_value    REAL,
    min_value     REAL,
    max_value     REAL,
    sorted        INTEGER NOT NULL DEFAULT 1,
    UNIQUE (experiment_id, key)
);
CREATE TABLE IF NOT EXISTS metric_chunks (
    series_id  INTEGER NOT NULL REFERENCES metric_series(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    first_step REAL NOT NULL,
    last_step  REAL NOT NULL,
    points     BLOB NOT NULL,
    PRIMARY KEY (series_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metric_sources (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    source        TEXT NOT NULL,
    offset        INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (experiment_id, source)
) WITHOUT ROWID;
"""

# Preemption told apart from failure and stop, each counted (issue 12); an index that
# serves the head of the queue in order without reading the rest of it, and one for
# the few claimed experiments.
RESTARTS = """
ALTER TABLE experiments ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE experiments ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE experiments ADD COLUMN preemptions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE experiments ADD COLUMN ending TEXT;
CREATE INDEX IF NOT EXISTS experiments_queue
    ON experiments(status, queued_at, run_id, idx);
CREATE INDEX IF NOT EXISTS experiments_claimed
    ON experiments(claim_token) WHERE claim_token IS NOT NULL;
"""

# A run's experiments by status (``grid stop run`` on 10^5 queued, the running few of
# a run): it serves every lookup by run_id as well, so it replaces the index on run_id.
RUN_STATUS = """
CREATE INDEX IF NOT EXISTS experiments_run_status ON experiments(run_id, status);
DROP INDEX IF EXISTS experiments_run;
"""

# Adaptive search (issue 25): a run's search is open until its trials are done or it
# is stopped; a trial the search stopped early keeps why.
SEARCH = """
ALTER TABLE runs ADD COLUMN search TEXT;
ALTER TABLE experiments ADD COLUMN prune_reason TEXT;
"""

# One row per attempt of an experiment (issue 26): where it ran (the backend's handle,
# the node an engine named) and how it ended, typed (gridrun.attempts.AttemptResult:
# ``reason`` is a TerminationReason). The experiment's row keeps only the last ending.
ATTEMPTS = """
CREATE TABLE IF NOT EXISTS attempts (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    handle        TEXT,
    node          TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL DEFAULT 'running',
    exit_code     INTEGER,
    reason        TEXT,
    detail        TEXT NOT NULL DEFAULT '',
    started_at    REAL NOT NULL,
    finished_at   REAL,
    PRIMARY KEY (experiment_id, attempt)
) WITHOUT ROWID;
"""

# Interactive sessions (issue 23): JupyterLab in a run's environment. A deleted
# session keeps its row (history), so a name is unique only among live ones.
SESSIONS = """
CREATE TABLE IF NOT EXISTS sessions (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    created_at    REAL NOT NULL,
    backend       TEXT NOT NULL,
    status        TEXT NOT NULL,
    spec          TEXT NOT NULL,
    env_key       TEXT,
    env_ref       TEXT,
    from_run      TEXT,
    idle_seconds  REAL,
    port          INTEGER,
    token         TEXT,
    pid           TEXT,
    started_at    REAL,
    paused_at     REAL,
    deleted_at    REAL,
    message       TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS sessions_live_name ON sessions(name)
    WHERE status != 'deleted';
"""

MIGRATIONS: list[str] = [SCHEMA, METRICS, RESTARTS, RUN_STATUS, SEARCH, ATTEMPTS, SESSIONS]
SCHEMA_VERSION = len(MIGRATIONS)
