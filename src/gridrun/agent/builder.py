"""Building a run's environment in the agent, with output kept as ``[build]`` lines."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from gridrun.backends import get_backend
from gridrun.backends.base import BuildRequest
from gridrun.errors import GridError
from gridrun.home import GridHome
from gridrun.logs import LogSink
from gridrun.store.db import Store
from gridrun.store.models import Run, Status


def build_log_path(home: GridHome, run_name: str) -> Path:
    return home.run_dir(run_name) / "build.log"


def build_warnings_path(home: GridHome, run_name: str) -> Path:
    return home.run_dir(run_name) / "build-warnings.json"


def save_build_warnings(home: GridHome, run_name: str, warnings: list[str]) -> None:
    """What the build dropped or changed, for ``grid status RUN`` long after the build."""
    path = build_warnings_path(home, run_name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(list(dict.fromkeys(warnings))), encoding="utf-8")
    os.replace(tmp, path)


def load_build_warnings(home: GridHome, run_name: str) -> list[str]:
    try:
        data = json.loads(build_warnings_path(home, run_name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(w) for w in data] if isinstance(data, list) else []


def build_request(home: GridHome, run: Run) -> BuildRequest:
    return BuildRequest.for_run(run.name, run.spec, home.objects)


def build_run(home: GridHome, run_id: int) -> None:
    """Build (or reuse) the run's environment, then queue its experiments.

    Runs in an agent thread with its own store connection. A build failure fails the
    run and every experiment with the message (which names the failing package).
    """
    store = Store(home.db_path)
    try:
        run = store.get_run_by_id(run_id)
        if run.status != Status.BUILDING:
            return
        with LogSink(build_log_path(home, run.name)) as sink:
            warnings: list[str] = []

            def log(line: str) -> None:
                if line.startswith("Warning: "):
                    warnings.append(line[len("Warning: ") :])
                sink.write("build", line)

            started = time.monotonic()
            try:
                backend = get_backend(run.backend, home)
                env_ref = backend.build(build_request(home, run), log)
            except GridError as exc:
                log(f"Build failed: {exc.message}")
                _fail(store, run, exc.message)
                return
            except Exception as exc:  # a bug, but the run must not stay 'building'
                log(f"Build failed: {type(exc).__name__}: {exc}")
                _fail(store, run, f"internal error while building: {exc}")
                return
            log(f"Environment ready in {time.monotonic() - started:.1f}s: {env_ref}")
            save_build_warnings(home, run.name, warnings)
        with store.transaction() as c:
            c.execute(
                "UPDATE runs SET status = ?, env_ref = ? WHERE id = ? AND status = ?",
                (Status.PENDING.value, env_ref, run.id, Status.BUILDING.value),
            )
            c.execute(
                "UPDATE experiments SET status = ? WHERE run_id = ? AND status = ?",
                (Status.PENDING.value, run.id, Status.BUILDING.value),
            )
    finally:
        store.close()


def _fail(store: Store, run: Run, message: str) -> None:
    now = time.time()
    with store.transaction() as c:
        c.execute(
            "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ?",
            (Status.FAILED.value, message, now, run.id),
        )
        c.execute(
            "UPDATE experiments SET status = ?, error = ?, finished_at = ?"
            " WHERE run_id = ? AND status = ?",
            (Status.FAILED.value, message, now, run.id, Status.BUILDING.value),
        )
