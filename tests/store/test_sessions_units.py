"""Sessions without a server: the store's named moves, the command line, the tables."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from gridrun.cli.session import parse_idle, sessions_table
from gridrun.errors import StateError, UsageError
from gridrun.sessions.server import server_argv, server_env
from gridrun.sessions.tools import ipykernel_version, kernel_argv
from gridrun.store import sessions as table
from gridrun.store.db import Store
from gridrun.store.models import SessionStatus
from gridrun.store.transitions import TABLE, check


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "grid.db")


def _new(store: Store, name: str = "s") -> table.Session:
    return table.create(
        store, name=name, backend="local", spec={}, env_key="k", from_run=None, idle_seconds=None
    )


def test_a_session_moves_only_by_named_transitions(store: Store) -> None:
    s = _new(store)
    assert s.status == SessionStatus.STARTING
    assert not table.move(store, s.id, "session_resume", SessionStatus.STARTING)  # not paused
    assert table.move(store, s.id, "session_serving", SessionStatus.RUNNING, port=1234)
    assert table.get(store, "s").port == 1234
    assert not table.move(store, s.id, "session_serving", SessionStatus.RUNNING)  # lost race
    assert table.move(store, s.id, "session_pause", SessionStatus.PAUSED)
    assert table.move(store, s.id, "session_resume", SessionStatus.STARTING)
    assert table.move(store, s.id, "session_delete", SessionStatus.DELETED)
    assert table.find(store, "s") is None
    with pytest.raises(StateError, match="cannot lead to 'running'"):
        check("session_pause", SessionStatus.RUNNING)
    with pytest.raises(StateError, match="named transition"):
        table.set_fields(store, s.id, status="running")
    events = [r[0] for r in store.conn.execute("SELECT kind FROM events ORDER BY id")]
    assert events == [
        "session_created",
        "session_serving",
        "session_pause",
        "session_resume",
        "session_delete",
    ]
    assert all(t.what for t in TABLE.values())


def test_a_name_is_unique_among_live_sessions_only(store: Store) -> None:
    s = _new(store)
    with pytest.raises(UsageError, match="already exists"):
        _new(store)
    table.move(store, s.id, "session_delete", SessionStatus.DELETED)
    assert _new(store).id != s.id  # a deleted session's name is free again
    with pytest.raises(UsageError, match="No session named 'nope' \\(sessions: s\\)"):
        table.get(store, "nope")


def test_idle_durations() -> None:
    assert parse_idle("2h") == 7200
    assert parse_idle("90") == 90
    assert parse_idle("1.5m") == 90
    assert parse_idle(None) is None
    for bad in ("soon", "-1h", "0", "2 weeks"):
        with pytest.raises(UsageError, match="not a duration"):
            parse_idle(bad)


def test_jupyterlab_command_and_environment(tmp_path: Path) -> None:
    from gridrun.home import GridHome
    from gridrun.sessions.server import Layout

    argv = server_argv(Path("/tools/jl"), "dbg", 8888, Path("/w/work"))
    assert argv[:3] == ["/tools/jl/bin/python", "-m", "jupyterlab"]
    assert "--ServerApp.ip=127.0.0.1" in argv
    assert "--ServerApp.base_url=/sessions/dbg/" in argv
    assert "--ServerApp.port=8888" in argv
    assert not any("token" in a.lower() for a in argv)  # the token is never on argv
    home = GridHome(tmp_path)
    env = server_env(
        {"PATH": "/usr/bin", "JUPYTER_PATH": "/x", "PYTHONPATH": "/y"},
        Layout.of(home, "dbg"),
        Path("/envs/k"),
        home,
        7,
        "tok",
    )
    assert env["PATH"] == "/envs/k/bin:/usr/bin"
    assert env["JUPYTER_TOKEN"] == "tok" and env["GRID_SESSION_ID"] == "7"
    assert "JUPYTER_PATH" not in env and "PYTHONPATH" not in env
    assert env["JUPYTER_DATA_DIR"] == str(tmp_path / "sessions" / "dbg" / "jupyter" / "data")
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # no --gpus: no GPU, as for an experiment
    with_gpu = server_env({}, Layout.of(home, "dbg"), Path("/envs/k"), home, 7, "tok", gpus=1)
    assert "CUDA_VISIBLE_DEVICES" not in with_gpu


def test_the_kernel_appends_ipykernel_after_the_runs_packages() -> None:
    argv = kernel_argv(Path("/envs/k/bin/python"), Path("/tools/ipk"))
    assert argv[0] == "/envs/k/bin/python" and argv[-2:] == ["-f", "{connection_file}"]
    assert "sys.path.append('/tools/ipk')" in argv[2]
    assert ipykernel_version("3.11") != ipykernel_version("3.8")


def test_interactive_nodes_table_has_grids_columns() -> None:
    from rich.console import Console

    def text(sessions: list[object]) -> str:
        console = Console(width=200, record=True)
        console.print(sessions_table(sessions, now=100.0))
        return console.export_text()

    empty = text([])
    assert [c.strip() for c in empty.splitlines()[1].split("┃")[1:-1]] == [
        "Name",
        "Status",
        "Instance Type",
        "Duration",
        "URL",
    ]
    assert "None Active." in empty
    paused = SimpleNamespace(
        name="test",
        status=SessionStatus.PAUSED,
        spec=json.loads('{"session": {"instance_type": "t2.medium"}}'),
        created_at=100.0 - 3 * 86400 - 5 * 3600 - 52 * 60 - 41,
        port=None,
        token=None,
    )
    row = next(line for line in text([paused]).splitlines() if "test" in line)
    assert [c.strip() for c in row.split("│")[1:-1]] == [
        "test",
        "paused",
        "t2.medium",
        "3d-05:52:41",
        "-",
    ]


def test_a_session_whose_server_died_is_recorded_paused(store: Store) -> None:
    import subprocess
    import sys

    from gridrun.processes import ProcessRef
    from gridrun.sessions.reconcile import reconcile

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    ref = ProcessRef.of(gone.pid)
    assert ref is not None
    gone.wait()
    s = _new(store)
    table.move(store, s.id, "session_serving", SessionStatus.RUNNING, pid=ref.dump())
    alive = _new(store, "alive")
    table.move(
        store, alive.id, "session_serving", SessionStatus.RUNNING, pid=ProcessRef.current().dump()
    )
    statuses = {x.name: x.status for x in reconcile(store)}
    assert statuses == {"s": SessionStatus.PAUSED, "alive": SessionStatus.RUNNING}
    assert table.get(store, "s").message == "its server had stopped"
