"""`grid run --datastore_name` end to end: the real CLI, agent and local backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from datastore_helpers import make_tree

from gridrun.datastores import isolation_mode

TRAIN = """
import os, sys
d = os.environ["GRID_DATASTORE_MYDATA_DIR"]
print("DIR", d)
print("READ", open(os.path.join(d, "sub", "x.txt")).read().strip())
try:
    with open(os.path.join(d, "sub", "x.txt"), "w") as fh:
        fh.write("oops")
    print("WROTE")
except OSError as exc:
    print("REFUSED", exc.errno)
"""


def test_grid_run_mounts_a_datastore(grid, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    try:
        import gridrun.project  # noqa: F401
    except ImportError:
        pytest.skip("the project snapshot stage is not there yet")
    src = make_tree(tmp_path / "data", {"sub/x.txt": "hello data\n"})
    grid("datastore", "create", str(src), "--name", "mydata")
    proj = make_tree(tmp_path / "proj", {"train.py": TRAIN})
    mnt = tmp_path / "mnt" / "mydata"

    bad = grid("run", "--datastore_name", "nope", "train.py", cwd=proj, check=False)
    assert bad.returncode != 0
    assert "No datastore named 'nope' (known: mydata)" in bad.stderr

    grid("run", "--name", "dsrun", "--datastore_name", "mydata", "--datastore_mount_dir",
         str(mnt), "train.py", cwd=proj)  # fmt: skip
    status = grid.wait("dsrun")
    assert [e["status"] for e in status["experiments"]] == ["succeeded"]
    log = grid("logs", "dsrun").stdout
    assert f"DIR {mnt}" in log and "READ hello data" in log
    if isolation_mode() != "none" or os.geteuid() != 0:
        # EROFS in a namespace, EACCES by permission bits; only root without
        # namespaces could write (the documented gap).
        assert "WROTE" not in log and "REFUSED" in log
    stored = grid_home_tree(grid.home) / "sub" / "x.txt"
    assert stored.read_text() == "hello data\n"


def grid_home_tree(home: Path) -> Path:
    return home / "datastores" / "mydata" / "1" / "files"
