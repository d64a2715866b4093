"""The database schema, versioned with ``PRAGMA user_version``."""

from __future__ import annotations

SCHEMA_VERSION = 1

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
