"""``grid datastore`` through click (in-process) and once as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from datastore_helpers import invoke, make_tree

from gridrun.datastores import create_datastore, list_datastores
from gridrun.datastores.layout import objects_dir
from gridrun.datastores.objects import usage
from gridrun.home import GridHome
from gridrun.specs import DatastoreMount
from gridrun.store.db import Store
from gridrun.store.models import Status
from spec_helpers import experiments, force_run_experiments, run_spec


@pytest.mark.unit
def test_create_list_json_and_bare_group(home: GridHome, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "Cats", {"a.jpg": "meow", "b/c.jpg": "purr"})
    code, out = invoke("datastore", "create", str(src))
    assert code == 0, out
    assert "Datastore cats version 1 created: 2 files" in out
    code, out = invoke("datastore", "create", "--source", str(src), "--name", "pets")
    assert code == 0, out
    code, out = invoke("-o", "json", "datastore", "list")
    assert code == 0, out
    rows = json.loads(out)
    assert [(r["name"], r["version"], r["status"], r["files"], r["size"]) for r in rows] == [
        ("cats", 1, "succeeded", 2, 8),
        ("pets", 1, "succeeded", 2, 8),
    ]
    code, out = invoke("datastore")
    assert code == 0
    for word in ("Name", "Version", "Size", "Files", "Status", "Created", "cats", "succeeded"):
        assert word in out


@pytest.mark.unit
def test_list_when_empty_and_errors(home: GridHome) -> None:
    code, out = invoke("datastore", "list")
    assert code == 0 and "No datastores yet" in out
    code, out = invoke("-o", "json", "datastore")
    assert code == 0 and json.loads(out) == []
    code, out = invoke("datastore", "delete", "--name", "nope", "--version", "1")
    assert code == 1 and "No datastore named 'nope'" in out
    code, out = invoke("datastore", "create", "/definitely/not/here")
    assert code == 1 and "does not exist" in out


def test_delete_refused_while_active_run_uses_it(home: GridHome, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "data", {"same.txt": "shared", "v1.txt": "only in v1" * 50})
    v1 = create_datastore(home, src)
    (src / "v1.txt").unlink()
    create_datastore(home, src)
    store = Store(home.db_path)
    try:
        run = store.create_run(
            name="busy-run",
            backend="local",
            spec=run_spec(datastores=[DatastoreMount("data", 1, v1.tree, "/datastores/data")]),
            env_key=None,
            experiments=experiments([]),
            status=Status.PENDING,
        )
        code, out = invoke("datastore", "delete", "--name", "data", "--version", "1")
        assert code == 1
        assert "used by active run(s): busy-run" in out
        assert [v.version for v in list_datastores(home)] == [1, 2]

        force_run_experiments(store, run.id, Status.PENDING, Status.SUCCEEDED)
        before = usage(objects_dir(home))
        code, out = invoke("-o", "json", "datastore", "delete", "--name", "data", "--version", "1")
        assert code == 0, out
        freed = json.loads(out)
        # Only the file no other version has is collected; the shared one stays.
        assert (freed["objects_freed"], freed["bytes_freed"]) == (1, len("only in v1" * 50))
        assert usage(objects_dir(home)) == (before[0] - 1, before[1] - freed["bytes_freed"])
        [left] = list_datastores(home)
        assert left.version == 2 and (left.tree / "same.txt").read_text() == "shared"
    finally:
        store.close()
    # Deleting the last version removes the name too.
    code, out = invoke("datastore", "delete", "--name", "data", "--version", "2")
    assert code == 0, out
    assert list_datastores(home) == [] and usage(objects_dir(home)) == (0, 0)
    assert sorted(p.name for p in home.datastores.iterdir()) == [".objects", ".trash"]


@pytest.mark.unit
def test_resume_cli_with_nothing_to_resume(home: GridHome, tmp_path: Path) -> None:
    create_datastore(home, make_tree(tmp_path / "d", {"a": "1"}))
    code, out = invoke("datastore", "resume", "--name", "d")
    assert code == 1 and "Nothing to resume" in out


def test_real_process_grid_datastore_list(home: GridHome, tmp_path: Path) -> None:
    try:
        from gridrun.cli import main  # noqa: F401
    except ImportError:
        pytest.skip("the top-level CLI is not there yet")
    create_datastore(home, make_tree(tmp_path / "mnist", {"a": "1"}))
    env = dict(os.environ, GRID_HOME=str(home.root), COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, "-m", "gridrun", "-o", "json", "datastore", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["name"] for r in json.loads(proc.stdout)] == ["mnist"]
    proc = subprocess.run(
        [sys.executable, "-m", "gridrun", "datastore", "delete", "--name", "x", "--version", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "No datastore named 'x' (known: mnist)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
