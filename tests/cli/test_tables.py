"""``grid status`` and ``grid history`` tables at 80 and 200 columns, against recorded output.

The runs are written to a real store with fixed timestamps, so the rendering is exact.
Set ``GRIDRUN_RECORD=1`` to rewrite the expected files after an intended change (and
read the diff before committing it).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from gridrun.cli.status import experiments_table, history_table, runs_table
from gridrun.specs import ExperimentSpec
from gridrun.store.db import Store
from spec_helpers import run_spec

EXPECTED = Path(__file__).parent / "expected"
T0 = 1623517794.0  # 2021-06-12 17:09:54 UTC
NOW = T0 + 132  # two minutes and twelve seconds later, as in Grid's docs


def check(name: str, text: str) -> None:
    path = EXPECTED / name
    if os.environ.get("GRIDRUN_RECORD"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs:\n{text}"


def render(renderable, width: int) -> str:
    console = Console(width=width, color_system=None, force_terminal=False, record=True)
    with console.capture() as cap:
        console.print(renderable)
    return cap.get()


def _add(store: Store, name: str, project: str, created: float, states: list[str]) -> None:
    run = store.create_run(
        name=name,
        backend="local",
        spec=run_spec("argecho.py", project=project, project_name="argecho"),
        env_key="k",
        experiments=[
            ExperimentSpec(i, ("--lr", str(10**-i)), {"lr": str(10**-i)})
            for i in range(len(states))
        ],
    )
    c = store.conn
    c.execute("UPDATE runs SET created_at = ? WHERE id = ?", (created, run.id))
    for i, state in enumerate(states):
        started = created + 10 if state != "pending" else None
        finished = created + 70 + i if state in ("succeeded", "failed", "stopped") else None
        c.execute(
            "UPDATE experiments SET status = ?, queued_at = ?, started_at = ?, finished_at = ? "
            "WHERE run_id = ? AND idx = ?",
            (state, created, started, finished, run.id, i),
        )
    c.commit()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "grid.db")
    _add(s, "lurking-seahorse-950", "robert-s-lee/argecho", T0, ["pending"])
    _add(
        s,
        "spiffy-sunfish-821",
        "argecho",
        T0 + 30,
        ["running", "pending", "succeeded", "failed", "stopped"],
    )
    _add(s, "winged-puma-326", "robert-s-lee/argecho", T0 - 86400, ["succeeded"])
    _add(s, "functional-bandicoot-549", "robert-s-lee/argecho", T0 - 90000, ["failed"])
    return s


@pytest.mark.unit
@pytest.mark.parametrize("width", [80, 200])
def test_status_table(store: Store, width: int) -> None:
    active = [r for r in store.list_runs() if r.active]
    assert [r.name for r in active] == ["spiffy-sunfish-821", "lurking-seahorse-950"]
    text = render(runs_table(active, width, now=NOW), width)
    check(f"status-{width}.txt", text)
    assert max(len(line) for line in text.splitlines()) <= width


@pytest.mark.unit
@pytest.mark.parametrize("width", [80, 200])
def test_status_table_none_active(width: int) -> None:
    check(f"status-none-{width}.txt", render(runs_table([], width), width))


@pytest.mark.unit
@pytest.mark.parametrize("width", [80, 200])
def test_history_table(store: Store, width: int) -> None:
    text = render(history_table(store.list_runs(), width), width)
    check(f"history-{width}.txt", text)
    assert max(len(line) for line in text.splitlines()) <= width


@pytest.mark.unit
@pytest.mark.parametrize("width", [80, 200])
def test_experiments_table(store: Store, width: int) -> None:
    run = store.get_run("spiffy-sunfish-821")
    text = render(experiments_table(run, run.experiments, width, now=NOW), width)
    assert max(len(line) for line in text.splitlines()) <= width
    check(f"experiments-{width}.txt", text)


@pytest.mark.unit
@pytest.mark.parametrize("width", [80, 200])
def test_headers_never_split_inside_a_word(store: Store, width: int) -> None:
    """Every header word appears whole in the rendered header rows."""
    active = [r for r in store.list_runs() if r.active]
    for table in (
        runs_table(active, width, now=NOW),
        runs_table([], width),
        history_table(store.list_runs(), width),
    ):
        text = render(table, width)
        head = text.split("┡")[0]
        for col in table.columns:
            for word in str(col.header).split():
                assert word in head, (word, text)


def test_the_real_commands_print_the_same_tables(grid, store: Store, tmp_path: Path) -> None:
    """``grid history`` and an idle ``grid status`` through the real CLI, at 80 and 200."""
    store.close()
    db = tmp_path / "grid.db"
    for width in (80, 200):
        env = dict(grid.env, COLUMNS=str(width))
        proc = subprocess.run(
            [sys.executable, "-m", "gridrun", "status"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert proc.stdout == (
            (EXPECTED / f"status-none-{width}.txt").read_text()
            + "\n0 Run(s) are not active. Use `grid history` to view your Run history.\n"
            + (EXPECTED / "interactive-none.txt").read_text()  # Grid's second table
        )
    # Every command that reads state brings an agent back when work waits, and that
    # agent would start the made-up pending experiments and settle the made-up running
    # one while the table is read. Holding the agent's lock stands in for a live agent:
    # none is started, and nothing acts on the rows.
    grid("agent", "stop")
    lock = os.open(grid.home / "agent.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        for extra in ("grid.db-wal", "grid.db-shm"):
            (grid.home / extra).unlink(missing_ok=True)
        (grid.home / "grid.db").write_bytes(db.read_bytes())
        for width in (80, 200):
            env = dict(grid.env, COLUMNS=str(width))
            proc = subprocess.run(
                [sys.executable, "-m", "gridrun", "history"],
                env=env,
                capture_output=True,
                text=True,
            )
            assert proc.stdout == (EXPECTED / f"history-{width}.txt").read_text(), proc.stderr
        data = json.loads(
            subprocess.run(
                [sys.executable, "-m", "gridrun", "-o", "json", "history"],
                env=grid.env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    finally:
        os.close(lock)
    assert {r["name"]: r["project"] for r in data}["spiffy-sunfish-821"] == "argecho"


@pytest.mark.unit
def test_status_table_with_a_long_name_at_80_columns(tmp_path: Path) -> None:
    s = Store(tmp_path / "long.db")
    _add(s, "a-very-long-run-name-chosen-with-name-for-this-sweep", "org/repo", T0, ["running"])
    active = [r for r in s.list_runs() if r.active]
    text = render(runs_table(active, 80, now=NOW), 80)
    check("status-long-name-80.txt", text)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "a-very-long-run-name-chosen-with-name-for-this-sweep" in text


def test_status_of_a_big_run_shows_counts_then_running_and_failed_first(
    grid, tmp_path: Path
) -> None:
    """Issue 21: 20,000 rows took 18-36 s to draw. The table now shows the summary
    counts and, first, the running and failed experiments, the rest paged."""
    states = ["succeeded"] * 250
    for i in (7, 180):
        states[i] = "running"
    for i in (3, 120, 240):
        states[i] = "failed"
    for i in range(200, 230):
        states[i] = "pending"
    db = tmp_path / "big.db"
    store = Store(db)
    _add(store, "big", "argecho", T0, states)
    store.close()
    grid("agent", "stop")
    lock = os.open(grid.home / "agent.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)  # no agent acts on the made-up rows (see above)
    try:
        for extra in ("grid.db-wal", "grid.db-shm"):
            (grid.home / extra).unlink(missing_ok=True)
        (grid.home / "grid.db").write_bytes(db.read_bytes())

        def rows(*args: str) -> tuple[list[str], str]:
            out = grid("status", "big", *args).stdout
            names = [
                w for line in out.splitlines() for w in line.split() if w.startswith("big-exp")
            ]
            return names, out

        names, out = rows()
        assert names[:5] == ["big-exp7", "big-exp180", "big-exp3", "big-exp120", "big-exp240"]
        assert len(names) == 100 and names[5:8] == ["big-exp0", "big-exp1", "big-exp2"], names
        assert (
            "250 experiments: 2 running, 3 failed, 30 queued, 215 completed. Showing 100 "
            "(running and failed first); --all shows every one, --limit N the first N."
        ) in " ".join(out.split())
        names, _ = rows("--limit", "4")
        assert names == ["big-exp7", "big-exp180", "big-exp3", "big-exp120"]
        names, out = rows("--all")
        assert names == [f"big-exp{i}" for i in range(250)] and "Showing" not in out
        data = grid.json("status", "big")
        assert isinstance(data, dict) and len(data["experiments"]) == 250  # scripts: all
        assert data["counts"]["running"] == 2
        limited = json.loads(grid("-o", "json", "status", "big", "--limit", "3").stdout)
        assert [e["name"] for e in limited["experiments"]] == ["big-exp7", "big-exp180", "big-exp3"]
        bad = grid("status", "big", "--limit", "0", check=False)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr
    finally:
        os.close(lock)
