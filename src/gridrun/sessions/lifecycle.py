"""A session's lifecycle: create, pause, resume, delete, and idle pause.

Each step is a named transition of the store (``store/sessions.py``); the
mechanics live in ``server.py`` (local: JupyterLab's process) and ``container.py``
(docker: a container of the run's image, removed on pause, started anew on resume).
``pause`` stops the processes and keeps the working copy, the Jupyter folders and the environment
layer, so ``resume`` finds the notebooks and the packages installed in it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gridrun.errors import GridError, UsageError
from gridrun.home import GridHome
from gridrun.sessions import server
from gridrun.sessions.prepare import (
    Prepared,
    SessionRequest,
    build_environment,
    make_working_copy,
)
from gridrun.specs import RunSpec
from gridrun.store import sessions as table
from gridrun.store.db import Store
from gridrun.store.models import SessionStatus
from gridrun.store.sessions import Session

Log = Callable[[str], None]


def session_name(store: Store, wanted: str | None) -> str:
    from gridrun.names import generate_run_name, validate_run_name

    if wanted:
        validate_run_name(wanted)
        return wanted
    return generate_run_name({s.name for s in table.live(store)})


def create(
    store: Store, home: GridHome, req: SessionRequest, prepared: Prepared, log: Log
) -> Session:
    """Record the session, build its environment, start JupyterLab; it answers on return."""
    name = session_name(store, req.name)
    spec = prepared.spec
    data = spec.to_dict()
    data["session"] = {"instance_type": req.instance_type, "vscode": req.vscode}
    session = table.create(
        store,
        name=name,
        backend=prepared.backend,
        spec=data,
        env_key=prepared.env_key,
        from_run=prepared.from_run,
        idle_seconds=req.idle_seconds,
    )
    try:
        env_ref = build_environment(home, name, prepared, log)
        table.set_fields(store, session.id, env_ref=env_ref)
        layout = server.Layout.of(home, name)
        layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_working_copy(home, spec, layout.work, prepared.from_workdir)
    except GridError as exc:
        table.move(
            store, session.id, "session_start_failed", SessionStatus.FAILED, message=exc.message
        )
        raise
    return _start(store, home, table.get_by_id(store, session.id), log)


def _start(store: Store, home: GridHome, session: Session, log: Log) -> Session:
    spec = RunSpec.from_dict(session.spec)
    try:
        if session.backend == "docker":
            _start_container(store, home, session, spec, log)
        else:
            _start_process(store, home, session, spec, log)
    except GridError as exc:
        with contextlib.suppress(GridError):  # an engine gone away says so above already
            stop_server(home, table.get_by_id(store, session.id), grace=2.0)
        table.move(
            store, session.id, "session_start_failed", SessionStatus.FAILED, message=exc.message
        )
        raise
    table.move(
        store,
        session.id,
        "session_serving",
        SessionStatus.RUNNING,
        started_at=time.time(),
        message=None,
    )
    if session.idle_seconds:
        start_monitor(home, session.name)
    return table.get_by_id(store, session.id)


def _start_container(
    store: Store, home: GridHome, session: Session, spec: RunSpec, log: Log
) -> None:
    from gridrun.sessions import container

    run_tag = session.env_ref or ""
    if not container.image_present(run_tag):
        # `grid images prune` removed the run's image while the session was paused:
        # built again from the session's spec (its snapshot is kept for live sessions).
        from gridrun.backends import get_backend
        from gridrun.specs import BuildRequest

        req = BuildRequest.for_run(session.name, spec, home.objects)
        run_tag = get_backend("docker", home).build(req, log)
        table.set_fields(store, session.id, env_ref=run_tag)
    token = secrets.token_urlsafe(24)
    handle, port = container.start_session(
        home, session.name, session.id, spec, run_tag, token, log
    )
    table.set_fields(store, session.id, pid=handle, port=port, token=token)


def _start_process(store: Store, home: GridHome, session: Session, spec: RunSpec, log: Log) -> None:
    from gridrun.sessions import tools

    venv = Path(session.env_ref or "")
    if not venv.is_dir():
        raise UsageError(
            f"Session {session.name}'s environment {venv} is gone.",
            hint="Delete the session and create it again.",
        )
    code_server = None
    if wants_vscode(session):
        from gridrun.sessions import vscode

        tool = tools.jupyterlab_env(home.root, log, proxy=vscode.JUPYTER_SERVER_PROXY_VERSION)
        code_server = vscode.code_server_tool(home.root, log)
    else:
        tool = tools.jupyterlab_env(home.root, log)
    python = venv / "bin" / "python"
    packages = tools.kernel_packages(home.root, python, server.python_minor(venv), log)
    token = secrets.token_urlsafe(24)
    handle, port = server.start(
        home, session.name, session.id, spec, venv, tool, packages, token, code_server
    )
    table.set_fields(store, session.id, pid=handle, port=port, token=token)
    server.wait_ready(home, session.name, handle, port, token)


def stop_server(home: GridHome, session: Session, grace: float = 10.0) -> None:
    """Stop what serves the session: its processes, or its container (removed)."""
    if session.backend == "docker":
        from gridrun.sessions import container

        container.remove(home.root, session.id, grace)
    else:
        server.stop(home, session.id, session.pid, grace)


def wants_vscode(session: Session) -> bool:
    """Whether the session was created with ``--vscode`` (kept in its spec for resume)."""
    return bool((session.spec.get("session") or {}).get("vscode"))


def pause(store: Store, home: GridHome, name: str, reason: str = "") -> Session:
    session = table.get(store, name)
    if session.status == SessionStatus.PAUSED:
        return session
    if session.status not in (SessionStatus.RUNNING, SessionStatus.STARTING):
        raise UsageError(f"Session {name} is {session.status.value}; only a running one pauses.")
    # Recorded first, then stopped: a `grid session list` meanwhile must not take the
    # stopping server for one that died on its own (reconcile.py).
    table.move(
        store,
        session.id,
        "session_pause",
        SessionStatus.PAUSED,
        paused_at=time.time(),
        pid=None,
        message=reason or None,
    )
    stop_server(home, session)
    return table.get_by_id(store, session.id)


def resume(store: Store, home: GridHome, name: str, log: Log) -> Session:
    session = table.get(store, name)
    if session.status == SessionStatus.RUNNING:
        return session
    if not table.move(store, session.id, "session_resume", SessionStatus.STARTING, message=None):
        raise UsageError(f"Session {name} is {session.status.value}; it cannot be resumed.")
    return _start(store, home, table.get_by_id(store, session.id), log)


def delete(store: Store, home: GridHome, name: str) -> None:
    """Stop it, remove its working copy and layer; the row stays, ``deleted``."""
    from gridrun.datastores.mount import remove_env_layer

    session = table.get(store, name)
    stop_server(home, session, grace=5.0)
    table.move(store, session.id, "session_delete", SessionStatus.DELETED, deleted_at=time.time())
    layout = server.Layout.of(home, name)
    for layer in (layout.layer, layout.shell_layer):
        remove_env_layer(layer)
    shutil.rmtree(layout.root, ignore_errors=True)


def idle_for(session: Session, now: float | None = None) -> float | None:
    """Seconds since the last kernel activity with no open connection; None if in use."""
    if session.port is None or session.token is None:
        return None
    status = server.api_status(session.port, session.name, session.token)
    if status is None or int(status.get("connections") or 0) > 0:
        return None
    from datetime import datetime

    last = str(status.get("last_activity") or status.get("started") or "")
    try:
        at = datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return (now or time.time()) - at


def start_monitor(home: GridHome, name: str) -> None:
    """A small detached process that pauses the session once idle (``monitor.py``)."""
    import subprocess

    env = dict(os.environ, GRID_HOME=str(home.root))
    subprocess.Popen(
        [sys.executable, "-m", "gridrun.sessions.monitor", name],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
