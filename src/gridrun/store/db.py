"""The store: every state change is one transaction on one SQLite file.

Why SQLite in WAL mode: the CLI reads (``grid status``) while the agent and the
supervisors write, from separate processes, with nothing to install. Writers take
``BEGIN IMMEDIATE`` so that check-then-set transitions (claim a pending experiment,
record an exit) are atomic across processes; conditional ``UPDATE ... WHERE status=?``
statements make every transition idempotent, which is what lets a restarted agent
reconcile without running anything twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gridrun.attempts import AttemptResult, TerminationReason
from gridrun.errors import NotFoundError, StateError
from gridrun.specs import ExperimentSpec, RunSpec
from gridrun.store.endings import Decision, Ending
from gridrun.store.models import ACTIVE, AttemptRecord, Experiment, Run, SessionStatus, Status
from gridrun.store.schema import MIGRATIONS, SCHEMA_VERSION
from gridrun.store.transitions import EventKind, allowed_from, check

OPEN_TIMEOUT = 30.0  # seconds a busy database is retried on open


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


_EXP_SELECT = (
    "SELECT e.*, r.name AS run_name, r.backend AS backend"
    " FROM experiments e JOIN runs r ON r.id = e.run_id"
)


class Store:
    """A connection to ``GRID_HOME/grid.db`` with the queries gridrun needs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Two processes opening a brand-new database at once (two `grid run`s, or a
        # run and the agent it starts) race to switch it to WAL and create the schema.
        # SQLite answers the loser's journal-mode change with SQLITE_BUSY without
        # calling the busy handler, so the open is retried: a locked database is busy,
        # never corrupt.
        deadline = time.monotonic() + OPEN_TIMEOUT
        while True:
            try:
                self._open(path)
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise self._unreadable(exc) from exc
                if getattr(self, "conn", None) is not None:
                    self.conn.close()
                time.sleep(0.05)
            except sqlite3.DatabaseError as exc:
                raise self._unreadable(exc) from exc

    readonly = False

    @classmethod
    def reader(cls, path: Path) -> Store:
        """A connection for commands that only read (status, history, logs).

        Opening for writing needs the ``-shm`` file and, on an old schema, a migration:
        both fail on a full or read-only disk, where a user most needs to see what ran.
        Then the file is opened read-only (``mode=ro``), and failing that as immutable,
        which skips the ``-shm`` file (on a disk that nothing can write, nothing changes).
        """
        try:
            store = cls(path)
            store.conn.execute("SELECT count(*) FROM runs").fetchone()
            return store
        except (StateError, sqlite3.DatabaseError) as exc:
            first = exc
        from urllib.parse import quote

        for query in ("mode=ro", "immutable=1"):
            store = cls.__new__(cls)
            store.path = path
            try:
                uri = f"file:{quote(str(path.absolute()))}?{query}"
                store.conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
                store.conn.row_factory = sqlite3.Row
                store.conn.execute("SELECT count(*) FROM runs").fetchone()
            except sqlite3.DatabaseError:
                continue
            store.readonly = True
            return store
        if isinstance(first, StateError):
            raise first
        raise store._unreadable(first)

    def _open(self, path: Path) -> None:
        existed = path.exists() and path.stat().st_size > 0
        self.conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA busy_timeout = 30000")
        # WAL so that status can read while the agent and supervisors write.
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if existed:
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if version > SCHEMA_VERSION:
                self.conn.close()
                raise StateError(
                    f"The state database {path} was written by a newer gridrun (schema {version}).",
                    hint="Upgrade gridrun, or point GRID_HOME elsewhere.",
                )
        if version < SCHEMA_VERSION:
            with self.transaction():
                # Re-read under the write lock: another process may have just done it.
                # A step (an ALTER TABLE) must never run twice.
                version = self.conn.execute("PRAGMA user_version").fetchone()[0]
                for step in MIGRATIONS[version:]:
                    for stmt in step.split(";"):
                        if stmt.strip():
                            self.conn.execute(stmt)
                self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _unreadable(self, exc: sqlite3.DatabaseError) -> StateError:
        path = self.path
        return StateError(
            f"The state database {path} is unreadable or corrupt ({exc}).",
            hint=f"It was left untouched: move it aside (mv '{path}' '{path}.bak') "
            "to start with an empty history.",
        )

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: one atomic state change."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    # ----------------------------------------------------------------- writes
    def create_run(
        self,
        *,
        name: str,
        backend: str,
        spec: RunSpec,
        env_key: str | None,
        experiments: Sequence[ExperimentSpec],
        status: Status = Status.BUILDING,
        search: bool = False,
    ) -> Run:
        """Record a run and all its experiments at once, or nothing.

        ``search``: an adaptive search, whose experiments are added one trial at a
        time (``add_trial``) while it is open.
        """
        now = time.time()
        try:
            with self.transaction() as c:
                cur = c.execute(
                    "INSERT INTO runs (name, created_at, backend, status, spec, env_key, search)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        now,
                        backend,
                        status.value,
                        json.dumps(spec.to_dict()),
                        env_key,
                        "open" if search else None,
                    ),
                )
                run_id = cur.lastrowid
                c.executemany(
                    "INSERT INTO experiments (run_id, name, idx, argv, params, status, cpus,"
                    " gpus, memory, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            run_id,
                            f"{name}-exp{i}",
                            i,
                            json.dumps(list(e.argv)),
                            json.dumps(dict(e.params)),
                            status.value,
                            e.resources.cpus,
                            e.resources.gpus,
                            e.resources.memory,
                            now,
                        )
                        for i, e in enumerate(experiments)
                    ],
                )
                c.execute(
                    "INSERT INTO events (ts, run_id, kind, message) VALUES (?, ?, ?, ?)",
                    (now, run_id, EventKind.SUBMITTED.value, f"{len(experiments)} experiment(s)"),
                )
        except sqlite3.IntegrityError as exc:
            from gridrun.errors import StateError, UsageError

            # Only the unique run name is a name clash; any other constraint (a CHECK on
            # cpus, say) is a bug upstream and must say what it is.
            if "runs.name" in str(exc):
                raise UsageError(
                    f"A run named '{name}' already exists.", hint="Choose another --name."
                ) from exc
            raise StateError(f"Could not record run '{name}': {exc}.") from exc
        return self.get_run(name)

    def _transition(
        self,
        exp_id: int,
        *,
        where: Sequence[Status],
        extra_where: str = "",
        extra_args: Sequence[Any] = (),
        event: EventKind,
        **fields: Any,
    ) -> bool:
        """Set ``fields`` on an experiment if its status is one of ``where``.

        Returns whether the row changed: the caller that gets ``False`` lost a race
        (another process already moved the experiment) and must do nothing more.
        Private: only :meth:`_move` calls it, with ``where`` from the transition table.
        """
        cols = ", ".join(f"{k} = ?" for k in fields)
        values: list[Any] = []
        for v in fields.values():
            if isinstance(v, Status):
                v = v.value
            elif isinstance(v, list | dict):
                v = json.dumps(v)
            values.append(v)
        sql = f"UPDATE experiments SET {cols} WHERE id = ?"
        args: list[Any] = [*values, exp_id]
        sql += f" AND status IN ({', '.join('?' for _ in where)})"
        args += [s.value for s in where]
        if extra_where:
            sql += f" AND {extra_where}"
            args += list(extra_args)
        with self.transaction() as c:
            changed = c.execute(sql, args).rowcount == 1
            if changed:
                c.execute(
                    "INSERT INTO events (ts, experiment_id, kind, message) VALUES (?, ?, ?, '')",
                    (time.time(), exp_id, event.value),
                )
        return changed

    # ----------------------------------------------------- named transitions
    def _move(
        self,
        name: str,
        exp_id: int,
        to: Status,
        *,
        extra_where: str = "",
        extra_args: Sequence[Any] = (),
        **fields: Any,
    ) -> bool:
        t = check(name, to)
        if to not in t.frm:
            fields["status"] = to
        return self._transition(
            exp_id,
            where=[s for s in t.frm if isinstance(s, Status)],
            extra_where=extra_where,
            extra_args=extra_args,
            event=EventKind(name),
            **fields,
        )

    def claim(self, exp_id: int, token: str, gpu_ids: list[int]) -> bool:
        """Reserve a pending, unclaimed experiment for the supervisor holding ``token``."""
        return self._move(
            "claim",
            exp_id,
            Status.PENDING,
            extra_where="claim_token IS NULL",
            claim_token=token,
            claimed_at=time.time(),
            gpu_ids=gpu_ids,
        )

    def claim_many(self, claims: Sequence[tuple[int, str, list[int]]]) -> list[int]:
        """``claim`` for many experiments (id, token, GPU ids) in one transaction.

        The agent claims everything a scheduling pass places at once: with a hundred
        supervisors writing, each write transaction first waits for the lock, and one
        wait per experiment capped how fast the agent could start them (issue 12).
        Returns the ids claimed; the others were taken or stopped meanwhile.
        """
        t = check("claim", Status.PENDING)
        now = time.time()
        claimed: list[int] = []
        marks = ", ".join("?" for _ in t.frm)
        with self.transaction() as c:
            for exp_id, token, gpu_ids in claims:
                changed = c.execute(
                    "UPDATE experiments SET claim_token = ?, claimed_at = ?, gpu_ids = ?"
                    f" WHERE id = ? AND status IN ({marks}) AND claim_token IS NULL",
                    (token, now, json.dumps(gpu_ids), exp_id, *(s.value for s in t.frm)),
                ).rowcount
                if changed == 1:
                    claimed.append(exp_id)
            c.executemany(
                "INSERT INTO events (ts, experiment_id, kind, message) VALUES (?, ?, ?, '')",
                [(now, i, EventKind.CLAIM.value) for i in claimed],
            )
        return claimed

    def expire_claim(self, exp_id: int, token: str) -> bool:
        """Release a claim no supervisor took up (the agent died before it started)."""
        return self._move(
            "expire_claim",
            exp_id,
            Status.PENDING,
            extra_where="claim_token = ?",
            extra_args=[token],
            claim_token=None,
            claimed_at=None,
            gpu_ids=[],
        )

    def start(
        self,
        exp_id: int,
        token: str,
        *,
        supervisor_pid: int,
        supervisor_started: int,
        gpu_ids: list[int],
        started_at: float,
    ) -> bool:
        """The supervisor holding the claim runs the experiment; False: it lost the race.

        Opens the attempt's row in ``attempts`` (started now).
        """
        started = self._move(
            "start",
            exp_id,
            Status.RUNNING,
            extra_where="claim_token = ?",
            extra_args=[token],
            started_at=started_at,
            supervisor_pid=supervisor_pid,
            supervisor_started=supervisor_started,
            gpu_ids=gpu_ids,
        )
        if started:
            with self.transaction() as c:
                _open_attempt(c, exp_id, time.time())
        return started

    def add_trial(self, run_id: int, index: int, spec: ExperimentSpec) -> bool:
        """Queue trial ``index`` of a built run's open search as experiment ``exp{index}``.

        Only while the run is built (``pending``) and its search open, and only once per
        index: a restarted agent that asks again for a trial it had already queued
        changes nothing. Returns whether it was added.
        """
        check("add_trial", Status.PENDING)
        now = time.time()
        with self.transaction() as c:
            run = c.execute(
                "SELECT name FROM runs WHERE id = ? AND status = ? AND search = 'open'",
                (run_id, Status.PENDING.value),
            ).fetchone()
            if run is None:
                return False
            if c.execute(
                "SELECT 1 FROM experiments WHERE run_id = ? AND idx = ?", (run_id, index)
            ).fetchone():
                return False
            cur = c.execute(
                "INSERT INTO experiments (run_id, name, idx, argv, params, status, cpus,"
                " gpus, memory, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    f"{run['name']}-exp{index}",
                    index,
                    json.dumps(list(spec.argv)),
                    json.dumps(dict(spec.params)),
                    Status.PENDING.value,
                    spec.resources.cpus,
                    spec.resources.gpus,
                    spec.resources.memory,
                    now,
                ),
            )
            c.execute(
                "INSERT INTO events (ts, experiment_id, kind, message) VALUES (?, ?, ?, '')",
                (now, cur.lastrowid, EventKind.ADD_TRIAL.value),
            )
        return True

    def end_search(self, run_id: int, state: str) -> bool:
        """Close a run's open search: ``done`` (its trials are all told) or ``stopped``.

        Not a status change: the run's status stays its build's, and users see it
        derived from its experiments (``Run.derived_status``).
        """
        with self.transaction() as c:
            changed = (
                c.execute(
                    "UPDATE runs SET search = ? WHERE id = ? AND search = 'open'",
                    (state, run_id),
                ).rowcount
                == 1
            )
            if changed:
                c.execute(
                    "INSERT INTO events (ts, run_id, kind, message) VALUES (?, ?, ?, ?)",
                    (time.time(), run_id, EventKind.SEARCH_ENDED.value, state),
                )
        return changed

    def open_searches(self) -> list[Run]:
        """Runs whose adaptive search still asks for trials, with their experiments."""
        return self._runs("WHERE search = 'open'")

    def request_prune(self, exp_id: int, reason: str) -> bool:
        """Ask a running trial to stop early; it ends ``pruned`` with ``reason``."""
        return self._move(
            "request_prune",
            exp_id,
            Status.RUNNING,
            extra_where="stop_requested = 0",
            stop_requested=1,
            prune_reason=reason,
        )

    def placed(self, exp_id: int, started_at: float) -> bool:
        """An engine placed a first attempt it had held queued: its run time starts now.

        The handover to the engine (``start``) is not when it ran: a job waiting for a
        node shows as queued, and its run duration starts here. Restarts keep the
        first start, as everywhere.
        """
        return self._move(
            "placed",
            exp_id,
            Status.RUNNING,
            extra_where="restarts + retries = 0",
            started_at=started_at,
        )

    def request_stop(self, exp_id: int) -> bool:
        """Mark a running experiment as asked to stop (its supervisor is signalled)."""
        return self._move("request_stop", exp_id, Status.RUNNING, stop_requested=1)

    def stop_not_started(self, exp_id: int, now: float) -> bool:
        """Stop an experiment still building or pending: it never runs."""
        return self._move("stop_queued", exp_id, Status.STOPPED, stop_requested=1, finished_at=now)

    def mark_built(self, run_id: int, env_ref: str | None) -> None:
        """The run's environment is ready: the run and its experiments are queued."""
        run_frm = _marks(check("run_built", Status.PENDING).frm)
        exp_frm = _marks(check("mark_built", Status.PENDING).frm)
        with self.transaction() as c:
            changed = c.execute(
                "UPDATE runs SET status = ?, env_ref = ?"
                f" WHERE id = ? AND status IN ({run_frm[0]})",
                (Status.PENDING.value, env_ref, run_id, *run_frm[1]),
            ).rowcount
            c.execute(
                f"UPDATE experiments SET status = ? WHERE run_id = ? AND status IN ({exp_frm[0]})",
                (Status.PENDING.value, run_id, *exp_frm[1]),
            )
            if changed:
                c.execute(
                    "INSERT INTO events (ts, run_id, kind, message) VALUES (?, ?, ?, ?)",
                    (time.time(), run_id, EventKind.RUN_BUILT.value, env_ref or ""),
                )

    def fail_build(self, run_id: int, message: str) -> None:
        """The run's environment could not be built: the run and its experiments failed."""
        run_frm = _marks(check("run_build_failed", Status.FAILED).frm)
        exp_frm = _marks(check("fail_build", Status.FAILED).frm)
        now = time.time()
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status = ?, error = ?, finished_at = ?"
                f" WHERE id = ? AND status IN ({run_frm[0]})",
                (Status.FAILED.value, message, now, run_id, *run_frm[1]),
            )
            c.execute(
                "UPDATE experiments SET status = ?, error = ?, finished_at = ?"
                f" WHERE run_id = ? AND status IN ({exp_frm[0]})",
                (Status.FAILED.value, message, now, run_id, *exp_frm[1]),
            )
            c.execute(
                "INSERT INTO events (ts, run_id, kind, message) VALUES (?, ?, ?, ?)",
                (now, run_id, EventKind.RUN_BUILD_FAILED.value, message),
            )

    def stop_building_run(self, run_id: int, now: float) -> bool:
        """A run stopped while its environment builds: it never queues."""
        frm = _marks(check("run_stopped_building", Status.STOPPED).frm)
        with self.transaction() as c:
            changed = (
                c.execute(
                    "UPDATE runs SET status = ?, finished_at = ?"
                    f" WHERE id = ? AND status IN ({frm[0]})",
                    (Status.STOPPED.value, now, run_id, *frm[1]),
                ).rowcount
                == 1
            )
            if changed:
                c.execute(
                    "INSERT INTO events (ts, run_id, kind, message) VALUES (?, ?, ?, '')",
                    (now, run_id, EventKind.RUN_STOPPED_BUILDING.value),
                )
            return changed

    def settle(
        self,
        exp_id: int,
        decision: Decision,
        result: AttemptResult,
        *,
        attempt: int | None = None,
    ) -> Status | None:
        """End a running attempt as ``decision`` says: finish it, or queue it again.

        One transaction, only from ``running`` (and only for ``attempt``, when given, so
        an old exit record never settles a newer attempt). A requeue loses to a stop
        requested meanwhile: the experiment is then ``stopped`` (``pruned`` when its
        search asked), never back in the queue; only a success stands against it.
        ``result`` is kept in the attempt's row of ``attempts``. Returns the status set,
        or None when another process settled it first.
        """
        exit_code = result.exit_code
        finished_at = result.finished_at or time.time()
        with self.transaction() as c:
            row = c.execute(
                "SELECT status, stop_requested, prune_reason, restarts, retries"
                " FROM experiments WHERE id = ?",
                (exp_id,),
            ).fetchone()
            frm = allowed_from("finish")  # == requeue's: an attempt ends only while running
            if row is None or row["status"] not in {s.value for s in frm}:
                return None
            if attempt is not None and row["restarts"] + row["retries"] != attempt:
                return None
            # A succeeded attempt stands: its supervisor found that the script exited 0
            # on its own before the stop reached it (``endings.conclude``). Any other
            # ending loses to a stop requested meanwhile.
            stopped = row["stop_requested"] and decision.status != Status.SUCCEEDED
            if stopped and row["prune_reason"]:
                # Stopped by its search, not by a user: it was pruned.
                decision = Decision(Status.PRUNED, Ending.STOPPED, row["prune_reason"])
                result = result.because(TerminationReason.STOPPED, row["prune_reason"])
            elif stopped and decision.status != Status.STOPPED:
                decision = Decision(Status.STOPPED, Ending.STOPPED, None)
                result = result.because(TerminationReason.STOPPED, "")
            elif row["prune_reason"] and not stopped:
                # The prune came too late to stop it: no reason is shown for a success.
                c.execute("UPDATE experiments SET prune_reason = NULL WHERE id = ?", (exp_id,))
            _close_attempt(c, exp_id, row["restarts"] + row["retries"], result, finished_at)
            name = "requeue" if decision.requeue else "finish"
            check(name, decision.status)
            preempted = int(decision.ending == Ending.PREEMPTED)
            if decision.requeue:
                c.execute(
                    "UPDATE experiments SET status = ?, exit_code = ?, error = ?, ending = ?,"
                    " restarts = restarts + ?, retries = retries + ?,"
                    " preemptions = preemptions + ?, claim_token = NULL, claimed_at = NULL,"
                    " supervisor_pid = NULL, supervisor_started = NULL, pid = NULL,"
                    " gpu_ids = NULL, backend_ref = NULL WHERE id = ?",
                    (
                        Status.PENDING.value,
                        exit_code,
                        decision.error,
                        decision.ending.value,
                        int(decision.restart),
                        int(decision.retry),
                        preempted,
                        exp_id,
                    ),
                )
            else:
                c.execute(
                    "UPDATE experiments SET status = ?, exit_code = ?, error = ?, ending = ?,"
                    " preemptions = preemptions + ?, finished_at = ? WHERE id = ?",
                    (
                        decision.status.value,
                        exit_code,
                        decision.error,
                        decision.ending.value,
                        preempted,
                        finished_at,
                        exp_id,
                    ),
                )
            c.execute(
                "INSERT INTO events (ts, experiment_id, kind, message) VALUES (?, ?, ?, ?)",
                (time.time(), exp_id, name, f"{decision.ending.value}: {decision.error or ''}"),
            )
        return decision.status

    def stop_queued(self, exp_ids: Sequence[int], now: float) -> list[int]:
        """Stop, in bulk, those of ``exp_ids`` not started yet (building or pending).

        One statement per chunk rather than one transaction per experiment, so that
        stopping a sweep of 10^5 queued experiments takes a moment, not minutes.
        """
        frm = _marks(check("stop_queued", Status.STOPPED).frm)
        done: list[int] = []
        ids = list(exp_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            with self.transaction() as c:
                found = [
                    r[0]
                    for r in c.execute(
                        f"SELECT id FROM experiments WHERE id IN ({marks})"
                        f" AND status IN ({frm[0]})",
                        (*chunk, *frm[1]),
                    )
                ]
                if found:
                    marks = ", ".join("?" for _ in found)
                    c.execute(
                        f"UPDATE experiments SET status = ?, stop_requested = 1, finished_at = ?"
                        f" WHERE id IN ({marks})",
                        (Status.STOPPED.value, now, *found),
                    )
                    c.executemany(
                        "INSERT INTO events (ts, experiment_id, kind, message)"
                        " VALUES (?, ?, ?, '')",
                        [(now, i, EventKind.STOP_QUEUED.value) for i in found],
                    )
            done += found
        return done

    def stop_run_queued(self, run_id: int, now: float) -> list[str]:
        """Stop every experiment of a run not started yet (building or pending).

        The ``stop_queued`` transition for a whole run as one indexed statement
        (``experiments_run_status``), its events written by the database from the same
        rows: stopping a sweep of 10^5 queued experiments loads none of them into
        Python. Returns the names of those it stopped.
        """
        marks, frm = _marks(check("stop_queued", Status.STOPPED).frm)
        with self.transaction() as c:
            c.execute(
                "INSERT INTO events (ts, experiment_id, kind, message)"
                " SELECT ?, id, ?, '' FROM experiments"
                f" WHERE run_id = ? AND status IN ({marks})",
                (now, EventKind.STOP_QUEUED.value, run_id, *frm),
            )
            rows = c.execute(
                "UPDATE experiments SET status = ?, stop_requested = 1, finished_at = ?"
                f" WHERE run_id = ? AND status IN ({marks}) RETURNING name",
                (Status.STOPPED.value, now, run_id, *frm),
            ).fetchall()
        return [r[0] for r in rows]

    def record_handle(self, exp_id: int, handle: str) -> None:
        """Keep the backend's handle of a running experiment (``backend_ref``), and of
        its attempt."""
        with self.transaction() as c:
            c.execute("UPDATE experiments SET backend_ref = ? WHERE id = ?", (handle, exp_id))
            attempt = _open_attempt(c, exp_id, time.time())
            if attempt is not None:
                c.execute(
                    "UPDATE attempts SET handle = ? WHERE experiment_id = ? AND attempt = ?",
                    (handle, exp_id, attempt),
                )

    def attempts(self, exp_id: int) -> list[AttemptRecord]:
        """Every attempt of an experiment, first first."""
        rows = self.conn.execute(
            "SELECT * FROM attempts WHERE experiment_id = ? ORDER BY attempt", (exp_id,)
        ).fetchall()
        return [AttemptRecord.from_row(r) for r in rows]

    def delete_run(self, run_id: int) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
            c.execute(
                "DELETE FROM events WHERE experiment_id IN"
                " (SELECT id FROM experiments WHERE run_id = ?)",
                (run_id,),
            )
            c.execute("DELETE FROM experiments WHERE run_id = ?", (run_id,))
            c.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def delete_experiment(self, exp_id: int) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM events WHERE experiment_id = ?", (exp_id,))
            c.execute("DELETE FROM experiments WHERE id = ?", (exp_id,))

    # ------------------------------------------------------------------ reads
    def _runs(
        self, where: str = "", args: Sequence[Any] = (), with_experiments: bool = True
    ) -> list[Run]:
        rows = self.conn.execute(
            f"SELECT * FROM runs {where} ORDER BY created_at DESC, id DESC", args
        ).fetchall()
        runs = [Run.from_row(r) for r in rows]
        if runs and with_experiments:
            by_id = {r.id: r for r in runs}
            marks = ", ".join("?" for _ in runs)
            for row in self.conn.execute(
                f"{_EXP_SELECT} WHERE e.run_id IN ({marks}) ORDER BY e.idx", list(by_id)
            ):
                by_id[row["run_id"]].experiments.append(Experiment.from_row(row))
        return runs

    def run_names(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT name FROM runs")}

    def list_runs(self) -> list[Run]:
        return self._runs()

    def find_run(self, name: str, with_experiments: bool = True) -> Run | None:
        runs = self._runs("WHERE name = ?", (name,), with_experiments)
        return runs[0] if runs else None

    def get_run(self, name: str, with_experiments: bool = True) -> Run:
        run = self.find_run(name, with_experiments)
        if run is None:
            raise NotFoundError(f"No run named '{name}'.", hint="`grid history` lists every run.")
        return run

    def get_run_by_id(self, run_id: int, with_experiments: bool = True) -> Run:
        runs = self._runs("WHERE id = ?", (run_id,), with_experiments)
        if not runs:
            raise NotFoundError(f"No run with id {run_id}.")
        return runs[0]

    def find_experiment(self, name: str) -> Experiment | None:
        row = self.conn.execute(f"{_EXP_SELECT} WHERE e.name = ?", (name,)).fetchone()
        return Experiment.from_row(row) if row else None

    def get_experiment(self, exp_id: int) -> Experiment:
        row = self.conn.execute(f"{_EXP_SELECT} WHERE e.id = ?", (exp_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"No experiment with id {exp_id}.")
        return Experiment.from_row(row)

    def experiments(self, *statuses: Status) -> list[Experiment]:
        marks = ", ".join("?" for _ in statuses)
        rows = self.conn.execute(
            f"{_EXP_SELECT} WHERE e.status IN ({marks}) ORDER BY e.queued_at, e.run_id, e.idx",
            [s.value for s in statuses],
        ).fetchall()
        return [Experiment.from_row(r) for r in rows]

    def run_experiments(self, run_id: int, *statuses: Status) -> list[Experiment]:
        """The experiments of one run in ``statuses``, read through ``experiments_run_status``."""
        marks = ", ".join("?" for _ in statuses)
        rows = self.conn.execute(
            f"{_EXP_SELECT} WHERE e.run_id = ? AND e.status IN ({marks}) ORDER BY e.idx",
            [run_id, *(s.value for s in statuses)],
        ).fetchall()
        return [Experiment.from_row(r) for r in rows]

    def queue_head(self, limit: int) -> list[Experiment]:
        """The oldest unclaimed pending experiments, first in first out.

        Served by the ``experiments_queue`` index in queue order, so it reads ``limit``
        rows however long the queue is: the scheduler never loads the whole queue.
        """
        rows = self.conn.execute(
            f"{_EXP_SELECT} WHERE e.status = ? AND e.claim_token IS NULL"
            " ORDER BY e.status, e.queued_at, e.run_id, e.idx LIMIT ?",
            (Status.PENDING.value, limit),
        ).fetchall()
        return [Experiment.from_row(r) for r in rows]

    def claimed_pending(self) -> list[Experiment]:
        """Pending experiments claimed by the agent whose supervisor has not started yet."""
        rows = self.conn.execute(
            f"{_EXP_SELECT} WHERE e.claim_token IS NOT NULL AND e.status = ?",
            (Status.PENDING.value,),
        ).fetchall()
        return [Experiment.from_row(r) for r in rows]

    def runs_with_status(self, status: Status) -> list[Run]:
        return self._runs("WHERE status = ?", (status.value,), with_experiments=False)

    def has_active_work(self) -> bool:
        marks = ", ".join("?" for _ in ACTIVE)
        row = self.conn.execute(
            f"SELECT 1 FROM experiments WHERE status IN ({marks}) LIMIT 1", ACTIVE
        ).fetchone()
        if row is not None:
            return True
        # An open search between two trials has none active, and more to ask for.
        return self.conn.execute("SELECT 1 FROM runs WHERE search = 'open'").fetchone() is not None


def _marks(statuses: Sequence[Status | SessionStatus]) -> tuple[str, list[str]]:
    """SQL placeholders and values for ``status IN (...)`` of a table row's statuses."""
    return ", ".join("?" for _ in statuses), [s.value for s in statuses]


def _open_attempt(c: sqlite3.Connection, exp_id: int, now: float) -> int | None:
    """The current attempt's number, its row created if missing; None: not running."""
    row = c.execute(
        "SELECT restarts + retries AS n, status FROM experiments WHERE id = ?", (exp_id,)
    ).fetchone()
    if row is None or row["status"] != Status.RUNNING.value:
        return None
    c.execute(
        "INSERT OR IGNORE INTO attempts (experiment_id, attempt, started_at) VALUES (?, ?, ?)",
        (exp_id, row["n"], now),
    )
    return int(row["n"])


def _close_attempt(
    c: sqlite3.Connection, exp_id: int, attempt: int, result: AttemptResult, finished_at: float
) -> None:
    """Record how attempt ``attempt`` ended (its row made if the start never wrote one)."""
    c.execute(
        "INSERT OR IGNORE INTO attempts (experiment_id, attempt, started_at) VALUES (?, ?, ?)",
        (exp_id, attempt, result.started_at or finished_at),
    )
    c.execute(
        "UPDATE attempts SET state = ?, exit_code = ?, reason = ?, detail = ?,"
        " node = CASE WHEN ? = '' THEN node ELSE ? END, finished_at = ?"
        " WHERE experiment_id = ? AND attempt = ?",
        (
            result.state.value,
            result.exit_code,
            None if result.reason is None else result.reason.value,
            result.detail,
            result.node,
            result.node,
            finished_at,
            exp_id,
            attempt,
        ),
    )
