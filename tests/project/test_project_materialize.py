"""materialize: a snapshot back into a folder, with modes, links and mtimes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from projecttrees import write_tree

from gridrun.errors import StateError
from gridrun.home import GridHome
from gridrun.project import load_manifest, materialize, object_path, take_snapshot

pytestmark = pytest.mark.unit


def test_round_trip_keeps_content_modes_and_links(weird_tmp_path: Path, home: GridHome) -> None:
    root = write_tree(
        weird_tmp_path / "pro ject",
        {
            "train.py": "print('hi')\n",
            "run me.sh": "#!/bin/sh\necho ok\n",
            "data/ünï.csv": "1,2\n",
            "empty.txt": "",
            "models/v2/w.bin": bytes(range(256)) * 10,
        },
    )
    (root / "run me.sh").chmod(0o755)
    (root / "data/latest.csv").symlink_to("ünï.csv")
    (root / "models/current").symlink_to("v2")
    snap = take_snapshot(root, home)
    dest = weird_tmp_path / "work dir"
    materialize(snap.manifest_path, home.objects, dest)

    for rel in ["train.py", "run me.sh", "data/ünï.csv", "empty.txt", "models/v2/w.bin"]:
        assert (dest / rel).read_bytes() == (root / rel).read_bytes()
        assert (dest / rel).stat().st_mtime_ns == (root / rel).stat().st_mtime_ns
    assert os.access(dest / "run me.sh", os.X_OK)
    assert (dest / "run me.sh").stat().st_mode & 0o777 == 0o755
    assert (dest / "train.py").stat().st_mode & 0o777 == 0o644
    assert os.readlink(dest / "data/latest.csv") == "ünï.csv"
    assert (dest / "data/latest.csv").read_text() == "1,2\n"
    assert (dest / "models/current/w.bin").exists()
    # The copy is a snapshot of its own: same hash, and writing to it leaves the store alone.
    assert take_snapshot(dest, home).hash == snap.hash
    (dest / "train.py").write_text("changed")
    obj = object_path(home.objects, snap.files["train.py"].sha256 or "")
    assert obj.read_text() == "print('hi')\n"
    assert os.stat(obj).st_nlink == 1


def test_materialize_over_an_existing_copy(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(tmp_path / "p", {"a.txt": "new", "l": "x"})
    snap = take_snapshot(root, home)
    dest = write_tree(tmp_path / "dest", {"a.txt": "old content", "keep.txt": "x"})
    (dest / "a.txt").chmod(0o444)
    (dest / "l").symlink_to("a.txt")
    materialize(snap.manifest_path, home.objects, dest)
    assert (dest / "a.txt").read_text() == "new"
    assert not (dest / "l").is_symlink() and (dest / "l").read_text() == "x"


def test_missing_object_and_bad_manifest_are_state_errors(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(tmp_path / "p", {"a.txt": "a"})
    snap = take_snapshot(root, home)
    object_path(home.objects, snap.files["a.txt"].sha256 or "").unlink()
    with pytest.raises(StateError, match="missing from the store"):
        materialize(snap.manifest_path, home.objects, tmp_path / "d")
    with pytest.raises(StateError, match="is missing"):
        load_manifest(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"files": {"../escape": {"sha256": "ab", "size": 1, "mode": 420}}}')
    with pytest.raises(StateError, match="invalid entry"):
        load_manifest(bad)
    bad.write_text("{not json")
    with pytest.raises(StateError, match="corrupt"):
        load_manifest(bad)
