"""A creation killed halfway is failed, never mountable, and resume finishes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datastore_helpers import make_tree, read_tree

from gridrun.datastores import create_datastore, list_datastores, local_mount_command, resolve
from gridrun.datastores import resume as resume_version
from gridrun.errors import DatastoreError
from gridrun.home import GridHome

# A real creation in its own process; after STOP_AFTER files it says so and waits to
# be killed, so the kill lands mid-way every time, not by luck of timing.
DRIVER = """
import pathlib, sys, time
from gridrun.datastores import create_datastore
from gridrun.home import GridHome

class Halfway:
    done = 0
    def phase(self, description, total_bytes, total_files):
        pass
    def advance(self, nbytes=0, nfiles=0):
        self.done += nfiles
        if nfiles and self.done == int(sys.argv[3]):
            pathlib.Path(sys.argv[2]).write_text("halfway")
            time.sleep(120)

create_datastore(GridHome.from_env(), sys.argv[1], name="big", progress=Halfway())
"""

N_FILES = 40
STOP_AFTER = 15


def _big_folder(tmp_path: Path) -> Path:
    return make_tree(
        tmp_path / "big", {f"part{i:02d}/f{i}.bin": os.urandom(50_000) for i in range(N_FILES)}
    )


def _start(home: GridHome, src: Path, marker: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, GRID_HOME=str(home.root))
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(src), str(marker), str(STOP_AFTER)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for(marker: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not marker.exists():
        if proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"driver exited {proc.returncode}: {err.decode()}")
        assert time.monotonic() < deadline, "the driver never got halfway"
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_creation_is_failed_then_resumed(
    home: GridHome, tmp_path: Path, sig: signal.Signals
) -> None:
    src = _big_folder(tmp_path)
    marker = tmp_path / "halfway"
    proc = _start(home, src, marker)
    try:
        _wait_for(marker, proc)
        [v] = list_datastores(home)
        assert v.status == "processing" and v.pid == proc.pid
        with pytest.raises(DatastoreError, match="still being created"):
            resolve(home, "big", 1, None)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    [v] = list_datastores(home)
    assert v.status == "failed"
    if sig == signal.SIGINT:
        assert v.error == "interrupted (Ctrl-C)"
    # Part of the files were stored, and the half version cannot be mounted.
    stored = sum(1 for p in (v.path / "files").rglob("*") if p.is_file())
    assert 0 < stored < N_FILES
    with pytest.raises(DatastoreError, match=r"failed to be created.*resume --name big"):
        resolve(home, "big", 1, None)
    with pytest.raises(DatastoreError, match="no usable version"):
        resolve(home, "big", None, None)

    done = resume_version(home, "big")
    assert (done.version, done.status, done.files) == (1, "succeeded", N_FILES)
    assert read_tree(done.tree) == read_tree(src)
    assert not (done.path / "journal.jsonl").exists() and not (done.path / "tmp").exists()

    m = resolve(home, "big", None, str(tmp_path / "mnt" / "big"))
    work = tmp_path / "work"
    work.mkdir()
    code = "import os; print(len(os.listdir(os.environ['GRID_DATASTORE_BIG_DIR'])))"
    argv, env = local_mount_command([sys.executable, "-c", code], [m], work)
    out = subprocess.run(
        argv, env={**os.environ, **env}, cwd=work, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(N_FILES)


def _killed_halfway(home: GridHome, tmp_path: Path) -> Path:
    """A creation of a big folder killed (SIGKILL) halfway; returns its source."""
    src = _big_folder(tmp_path)
    marker = tmp_path / "halfway"
    proc = _start(home, src, marker)
    try:
        _wait_for(marker, proc)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        proc.communicate()
    return src


def test_new_create_of_same_source_finishes_the_failed_version(
    home: GridHome, tmp_path: Path
) -> None:
    src = _killed_halfway(home, tmp_path)
    v = create_datastore(home, src, name="big")
    assert (v.version, v.status) == (1, "succeeded")
    assert [x.version for x in list_datastores(home)] == [1]
    with pytest.raises(DatastoreError, match="Nothing to resume"):
        resume_version(home, "big")


def test_clearcache_removes_what_an_interrupted_creation_left(
    home: GridHome, tmp_path: Path
) -> None:
    """Grid's ``datastore clearcache``, through the real CLI: the failed version and the
    objects only it linked go; a complete datastore stays, intact."""
    keep = make_tree(tmp_path / "keep", {"a.txt": b"kept"})
    env = dict(os.environ, GRID_HOME=str(home.root))
    grid = [sys.executable, "-m", "gridrun"]
    subprocess.run([*grid, "datastore", "create", str(keep), "--name", "keep"], env=env,
                   check=True, capture_output=True)  # fmt: skip
    _killed_halfway(home, tmp_path)
    objects = home.datastores / ".objects"
    before = sum(1 for p in objects.rglob("*") if p.is_file())
    out = subprocess.run([*grid, "datastore", "clearcache"], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    assert "Cleared 1 interrupted datastore version(s): big version 1." in out, out
    assert [(v.name, v.status) for v in list_datastores(home)] == [("keep", "succeeded")]
    assert sum(1 for p in objects.rglob("*") if p.is_file()) < before
    assert read_tree(resolve(home, "keep", None, None).source) == {"a.txt": b"kept"}
    again = subprocess.run([*grid, "datastore", "clearcache"], env=env, check=True,
                           capture_output=True, text=True).stdout  # fmt: skip
    assert "Nothing to clear" in again
