"""take_snapshot: the object store, the manifest hash, symlinks, special files, size."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from projecttrees import count_objects, write_tree

import gridrun.project.snapshot as snapshot_mod
from gridrun.errors import ProjectError
from gridrun.home import GridHome
from gridrun.project import load_manifest, object_path, take_snapshot

TREE = {"train.py": "print('hi')\n", "lib/util.py": "X = 1\n", "conf/a.yaml": "lr: 0.1\n"}


@pytest.mark.unit
def test_missing_or_non_folder_project_is_a_project_error(tmp_path: Path, home: GridHome) -> None:
    with pytest.raises(ProjectError, match="does not exist"):
        take_snapshot(tmp_path / "nope", home)
    (tmp_path / "file.py").write_text("x")
    with pytest.raises(ProjectError, match="not a folder"):
        take_snapshot(tmp_path / "file.py", home)


@pytest.mark.unit
def test_objects_are_named_by_content_and_manifest_by_tree(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(tmp_path / "p", {**TREE, "copy.py": "X = 1\n"})
    snap = take_snapshot(root, home)
    assert snap.paths() == ["conf/a.yaml", "copy.py", "lib/util.py", "train.py"]
    assert snap.total_bytes == sum(len(v) for v in TREE.values()) + len("X = 1\n")
    assert count_objects(home) == 3  # copy.py and lib/util.py share one object
    for rel, entry in snap.files.items():
        data = (root / rel).read_bytes()
        assert entry.sha256 == hashlib.sha256(data).hexdigest()
        obj = object_path(home.objects, entry.sha256)
        assert obj == home.objects / entry.sha256[:2] / entry.sha256[2:]
        assert obj.read_bytes() == data
    assert snap.manifest_path == home.snapshots / f"{snap.hash}.json"
    assert json.loads(snap.manifest_path.read_text())["hash"] == snap.hash
    assert load_manifest(snap.manifest_path) == snap.files


@pytest.mark.unit
def test_identical_trees_hash_the_same(
    tmp_path: Path, weird_tmp_path: Path, home: GridHome
) -> None:
    a = write_tree(tmp_path / "a", TREE)
    b = write_tree(weird_tmp_path / "b", TREE)
    os.utime(b / "train.py", (1_000_000, 1_000_000))  # mtimes are not part of the hash
    assert take_snapshot(a, home).hash == take_snapshot(b, home).hash
    (b / "train.py").chmod(0o755)
    snap_b = take_snapshot(b, home)
    assert snap_b.files["train.py"].mode == 0o755
    assert snap_b.hash != take_snapshot(a, home).hash
    (b / "train.py").chmod(0o644)
    (b / "conf/a.yaml").write_text("lr: 0.2\n")
    assert take_snapshot(b, home).hash != take_snapshot(a, home).hash


@pytest.mark.unit
def test_unchanged_files_are_stored_once_across_snapshots(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(tmp_path / "p", TREE)
    first = take_snapshot(root, home)
    before = count_objects(home)
    (root / "lib/util.py").write_text("X = 2\n")
    second = take_snapshot(root, home)
    assert count_objects(home) == before + 1
    assert second.hash != first.hash
    assert first.manifest_path.exists() and second.manifest_path.exists()
    assert sorted(p.name for p in home.snapshots.glob("*.json")) == sorted(
        [f"{first.hash}.json", f"{second.hash}.json"]
    )
    assert not list(home.objects.glob("**/.tmp-*"))


@pytest.mark.unit
def test_symlinks_inside_are_kept_outside_and_dangling_skipped(
    tmp_path: Path, home: GridHome
) -> None:
    outside = write_tree(tmp_path / "outside", {"secret.txt": "x"})
    root = write_tree(tmp_path / "p", {"data/real.csv": "1,2\n", "models/v2/w.bin": "w"})
    (root / "data/latest.csv").symlink_to("real.csv")
    (root / "abs_link.csv").symlink_to(root / "data/real.csv")  # absolute, inside
    (root / "models/current").symlink_to("v2")  # a folder: kept as a link, not followed
    (root / "loop").symlink_to(".")  # would loop if followed
    (root / "data/up").symlink_to("..")
    (root / "out.txt").symlink_to(outside / "secret.txt")
    (root / "outdir").symlink_to(outside)
    (root / "gone.txt").symlink_to("missing.txt")
    (root / "cyc1").symlink_to("cyc2")
    (root / "cyc2").symlink_to("cyc1")
    snap = take_snapshot(root, home)
    links = {p: e.link for p, e in snap.files.items() if e.link is not None}
    assert links == {
        "data/latest.csv": "real.csv",
        "abs_link.csv": "data/real.csv",
        "models/current": "v2",
        "loop": ".",
        "data/up": "..",
    }
    assert all(snap.files[p].sha256 is None for p in links)
    assert snap.paths() == sorted([*links, "data/real.csv", "models/v2/w.bin"])
    text = "\n".join(snap.warnings)
    assert "out.txt: symlink to" in text and "outside the project" in text
    assert "outdir: symlink to" in text
    assert "gone.txt: symlink to missing.txt is dangling" in text
    assert "cyc1:" in text and "cyc2:" in text
    assert len(snap.warnings) == 5


@pytest.mark.unit
def test_link_to_an_ignored_file_warns_it_will_dangle(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(tmp_path / "p", {".gridignore": "data/\n", "data/big.bin": "x", "a.py": ""})
    (root / "big").symlink_to("data/big.bin")
    snap = take_snapshot(root, home)
    assert snap.files["big"].link == "data/big.bin"
    expected = "big: symlink target data/big.bin is not in the snapshot"
    assert any(expected in w for w in snap.warnings)


@pytest.mark.unit
@pytest.mark.timeout(20)
def test_special_files_are_skipped_with_a_warning(
    tmp_path: Path, home: GridHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree(tmp_path / "p", TREE)
    os.mkfifo(root / "pipe")  # opening it to hash would block forever
    (root / "run").mkdir()
    monkeypatch.chdir(root / "run")  # AF_UNIX paths must be short: bind by a relative name
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind("s")
        (root / "to_pipe").symlink_to("pipe")
        snap = take_snapshot(root, home)
    assert snap.paths() == sorted(TREE)
    assert sorted(snap.warnings) == [
        "pipe: not a regular file (a FIFO, socket or device); skipped.",
        "run/s: not a regular file (a FIFO, socket or device); skipped.",
        "to_pipe: symlink to a special file; skipped.",
    ]


def test_unreadable_file_is_skipped_with_a_warning(tmp_path: Path, home: GridHome) -> None:
    """chmod 000 stops everyone but root, so as root the snapshot runs without the
    capabilities that let root read anything (a real process, no mock)."""
    root = write_tree(tmp_path / "p", TREE)
    (root / "private.txt").write_text("k")
    (root / "private.txt").chmod(0o000)
    code = (
        "import json, sys; from pathlib import Path; from gridrun.home import GridHome;"
        "from gridrun.project import take_snapshot;"
        "s = take_snapshot(Path(sys.argv[1]), GridHome.from_env());"
        "print(json.dumps([s.paths(), s.warnings]))"
    )
    cmd = [sys.executable, "-c", code, str(root)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    paths, warnings = json.loads(proc.stdout)
    assert paths == sorted(TREE)
    assert warnings == ["private.txt: cannot be read (Permission denied); skipped."]


@pytest.mark.unit
def test_size_warning_above_the_threshold(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(tmp_path / "p", {"train.py": "x"})
    with open(root / "data.bin", "wb") as fh:  # sparse: cheap to write, real to read
        fh.truncate(snapshot_mod.SIZE_WARNING_BYTES + 1)
    snap = take_snapshot(root, home)
    assert snap.total_bytes == snapshot_mod.SIZE_WARNING_BYTES + 2
    (warning,) = snap.warnings
    assert warning.startswith("Your project is 50 MB: large snapshots slow every run.")
    assert "Add a .gridignore" in warning and "data.bin (50 MB)" in warning
    (root / "data.bin").unlink()
    assert take_snapshot(root, home).warnings == []


@pytest.mark.unit
def test_grid_home_inside_the_project_is_not_snapshotted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree(tmp_path / "p", TREE)
    monkeypatch.setenv("GRID_HOME", str(root / "state"))
    home = GridHome.from_env().ensure()
    first = take_snapshot(root, home)
    second = take_snapshot(root, home)
    assert first.paths() == second.paths() == sorted(TREE)
    assert first.hash == second.hash


@pytest.mark.unit
def test_empty_selection_warns(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(tmp_path / "p", {".gridignore": "*\n"})
    snap = take_snapshot(root, home)
    assert snap.files == {}
    assert snap.warnings == [f"No files selected from {root}: check .gridignore."]


@pytest.mark.unit
def test_many_warnings_are_summarised(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(tmp_path / "p", TREE)
    for i in range(30):
        (root / f"gone{i}").symlink_to(f"missing{i}")
    snap = take_snapshot(root, home)
    assert len(snap.warnings) == snapshot_mod.MAX_WARNINGS
    assert snap.warnings[-1] == "...and 11 more skipped entries."


@pytest.mark.unit
def test_special_mode_bits(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(tmp_path / "p", {"run.sh": "#!/bin/sh\n", "x.py": ""})
    (root / "run.sh").chmod(0o700)
    (root / "x.py").chmod(0o600)
    snap = take_snapshot(root, home)
    assert snap.files["run.sh"].mode == 0o755
    assert snap.files["x.py"].mode == 0o644
    # Stored objects are owner-only, whatever the source's mode (0600 here).
    assert stat.S_IMODE(os.stat(object_path(home.objects, snap.files["x.py"].sha256)).st_mode) == (
        0o400
    )
