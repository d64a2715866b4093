"""Building a run's environment in the agent, with output kept as ``[build]`` lines."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gridrun.errors import GridError
from gridrun.fsutil import atomic_write_json
from gridrun.home import GridHome
from gridrun.logs import LogSink
from gridrun.store.db import Store
from gridrun.store.models import Run, Status

if TYPE_CHECKING:  # the backends are imported where a build needs them: `grid status`
    from gridrun.backends.base import BuildRequest  # reads build warnings from here


def build_log_path(home: GridHome, run_name: str) -> Path:
    return home.run(run_name).build_log


def build_warnings_path(home: GridHome, run_name: str) -> Path:
    return home.run(run_name).build_warnings


def save_build_warnings(home: GridHome, run_name: str, warnings: list[str]) -> None:
    """What the build dropped or changed, for ``grid status RUN`` long after the build."""
    atomic_write_json(build_warnings_path(home, run_name), list(dict.fromkeys(warnings)))


def load_build_warnings(home: GridHome, run_name: str) -> list[str]:
    try:
        data = json.loads(build_warnings_path(home, run_name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(w) for w in data] if isinstance(data, list) else []


def build_request(home: GridHome, run: Run) -> BuildRequest:
    from gridrun.backends.base import BuildRequest

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
                from gridrun.backends import get_backend

                backend = get_backend(run.backend, home)
                env_ref = backend.build(build_request(home, run), log)
            except GridError as exc:
                log(f"Build failed: {exc.message}")
                store.fail_build(run.id, exc.message)
                return
            except Exception as exc:  # a bug, but the run must not stay 'building'
                log(f"Build failed: {type(exc).__name__}: {exc}")
                store.fail_build(run.id, f"internal error while building: {exc}")
                return
            log(f"Environment ready in {time.monotonic() - started:.1f}s: {env_ref}")
            save_build_warnings(home, run.name, warnings)
        store.mark_built(run.id, env_ref)
    finally:
        store.close()
