"""Reproductions 3 and 4 (datastore half): altered stored files reused by deduplication,
a tampered version listed as healthy, and a file swapped between scan and copy."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from gridrun.datastores import create_datastore, list_datastores, resolve, sources
from gridrun.datastores import objects as objects_mod
from gridrun.errors import DatastoreError
from gridrun.home import GridHome


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "images"
    (src / "train").mkdir(parents=True)
    (src / "train" / "a.txt").write_text("pixels")
    (src / "b.txt").write_text("more pixels")
    return src


def _tamper(tree_file: Path, extra: bytes = b" TAMPERED") -> None:
    """What root can do through the host path: 0444 does not stop it."""
    os.chmod(tree_file.parent, 0o755)
    os.chmod(tree_file, 0o644)
    with open(tree_file, "ab") as fh:
        fh.write(extra)
    os.chmod(tree_file, 0o400)
    os.chmod(tree_file.parent, 0o555)


@pytest.mark.unit
def test_dedup_never_reuses_an_altered_object(home: GridHome, tmp_path: Path) -> None:
    src = _source(tmp_path)
    v1 = create_datastore(home, src, name="images")
    _tamper(v1.tree / "train" / "a.txt")
    # A brand-new datastore from the untouched folder, and a new version of the same one
    # (whose quick check would have trusted the unchanged source file).
    fresh = create_datastore(home, src, name="fresh")
    v2 = create_datastore(home, src, name="images")
    for v in (fresh, v2):
        assert (v.tree / "train" / "a.txt").read_text() == "pixels"
        assert (v.tree / "b.txt").read_text() == "more pixels"
    statuses = {(v.name, v.version): v.status for v in list_datastores(home)}
    assert statuses[("fresh", 1)] == "succeeded" and statuses[("images", 2)] == "succeeded"


def test_a_tampered_version_is_listed_verified_and_never_mounted(
    grid, home: GridHome, tmp_path: Path
) -> None:
    src = _source(tmp_path)
    grid("datastore", "create", str(src), "--name", "images")
    other = tmp_path / "other"
    other.mkdir()
    (other / "c.txt").write_text("unrelated")  # shares no object with images
    grid("datastore", "create", str(other), "--name", "other")
    tree = home.datastores / "images" / "1" / "files"
    ok = grid("datastore", "verify", "images")
    assert "images v1: intact" in ok.stdout
    _tamper(tree / "train" / "a.txt")

    listed = grid("datastore", "list")
    row = next(line for line in listed.stdout.splitlines() if "images" in line and "│" in line)
    assert "tampered" in row
    assert "train/a.txt: changed" in listed.stdout
    as_json = {(d["name"], d["status"]) for d in grid.json("datastore", "list")}
    assert as_json == {("images", "tampered"), ("other", "succeeded")}

    bad = grid("datastore", "verify", "images", "--version", "1", check=False)
    assert bad.returncode == 1
    assert "TAMPERED" in bad.stdout and "train/a.txt: content changed" in bad.stdout
    assert grid("datastore", "verify", "other").returncode == 0

    with pytest.raises(DatastoreError, match="refusing to mount it"):
        resolve(home, "images", None, None)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "t.py").write_text("print(1)\n")
    run = grid("run", "--datastore_name", "images", "t.py", cwd=tmp_path / "p", check=False)
    assert run.returncode != 0 and "refusing to mount it" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.unit
def test_verify_finds_a_change_that_kept_size_and_mtime(home: GridHome, tmp_path: Path) -> None:
    """The quick check trusts (size, mtime); a same-size write with the mtime put back
    gets past it, and only ``verify`` (re-hashing) sees it."""
    from gridrun.datastores.verify import quick_check, verify

    v = create_datastore(home, _source(tmp_path), name="images")
    path = v.tree / "b.txt"
    st = path.stat()
    os.chmod(path, 0o600)
    path.write_text("MORE PIXELS")  # same size
    os.chmod(path, 0o400)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert quick_check(v.path) == []
    assert verify(v.path) == ["b.txt: content changed (sha256 differs)"]
    assert [x.status for x in list_datastores(home)] == ["tampered"]


@pytest.mark.unit
def test_verify_reports_missing_and_extra_files(home: GridHome, tmp_path: Path) -> None:
    from gridrun.datastores.verify import verify

    v = create_datastore(home, _source(tmp_path), name="images")
    os.chmod(v.tree, 0o755)
    (v.tree / "b.txt").unlink()
    (v.tree / "planted.txt").write_text("x")
    assert verify(v.path) == ["b.txt: missing", "planted.txt: not part of the version"]


@pytest.mark.unit
def test_objects_are_owner_only(home: GridHome, tmp_path: Path) -> None:
    v = create_datastore(home, _source(tmp_path), name="images")
    assert stat.S_IMODE((v.tree / "b.txt").stat().st_mode) == 0o400


@pytest.mark.unit
@pytest.mark.parametrize("swap", ["symlink", "other-file", "folder-symlink"])
def test_file_swapped_between_scan_and_copy_is_refused(
    swap: str, home: GridHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reproduction 4: the scan refuses symlinks, then a file becomes one to /etc/shadow
    (a stand-in here) before it is copied."""
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret-hash:19000:0:99999:7:::\n")
    src = _source(tmp_path)
    scan = sources.scan_folder

    def scan_then_swap(root: Path) -> list[sources.Entry]:
        entries = scan(root)
        target = src / "train" / "a.txt"
        target.unlink()
        if swap == "symlink":
            target.symlink_to(secret)
        elif swap == "other-file":
            os.link(secret, tmp_path / "hardlink")
            os.replace(tmp_path / "hardlink", target)
        else:
            (src / "train").rmdir()
            decoy = tmp_path / "decoy"
            decoy.mkdir()
            os.link(secret, decoy / "a.txt")
            (src / "train").symlink_to(decoy)
        return entries

    monkeypatch.setattr(sources, "scan_folder", scan_then_swap)
    with pytest.raises(DatastoreError) as info:
        create_datastore(home, src, name="images")
    assert "train/a.txt changed after it was scanned" in info.value.message
    assert "refusing to store it" in info.value.message
    for obj in layout_objects(home):
        assert b"secret-hash" not in obj.read_bytes()
    [v] = list_datastores(home)
    assert v.status == "failed"


def layout_objects(home: GridHome) -> list[Path]:
    return [p for p in (home.datastores / ".objects").rglob("*") if p.is_file()]


def test_swapped_file_through_the_cli_is_one_line(grid, tmp_path: Path) -> None:
    """The same race with a real second process swapping a file for a symlink while the
    first files are copied: refused by name, in one line, nothing of the target kept."""
    src = _source(tmp_path)
    big = src / "zz-big.bin"
    big.write_bytes(os.urandom(1 << 20) * 64)
    # Files are read in sorted order: the swap of the last one happens as soon as the
    # first object appears, while the 64 MB file is still being copied.
    swapper = (
        "import os, sys, time\n"
        "p = sys.argv[1]\n"
        "deadline = time.time() + 60\n"
        "while time.time() < deadline:\n"
        "    if any(os.scandir(sys.argv[2])):\n"
        "        break\n"
        "    time.sleep(0.001)\n"
        "os.unlink(p); os.symlink(sys.argv[3], p)\n"
    )
    secret = tmp_path / "shadow"
    secret.write_text("secret-hash")
    (src / "zz-last.txt").write_text("last")
    import subprocess

    objs = grid.home / "datastores" / ".objects"
    objs.mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen(
        [sys.executable, "-c", swapper, str(src / "zz-last.txt"), str(objs), str(secret)]
    )
    try:
        out = grid("datastore", "create", str(src), "--name", "images", check=False)
    finally:
        child.wait(timeout=70)
    assert out.returncode != 0, out.stdout
    assert "zz-last.txt changed after it was scanned (it is now a symlink)" in out.stderr
    assert "Traceback" not in out.stderr
    assert all(b"secret-hash" not in p.read_bytes() for p in objs.rglob("*") if p.is_file())
    state = json.loads((grid.home / "datastores" / "images" / "1" / "state.json").read_text())
    assert "changed after it was scanned" in state["error"]


@pytest.mark.unit
def test_link_existing_verifies(home: GridHome, tmp_path: Path) -> None:
    objs = home.datastores / ".objects"
    v = create_datastore(home, _source(tmp_path), name="images")
    sha = next(
        e["sha256"]
        for e in json.loads((v.path / "manifest.json").read_text())["entries"]
        if e.get("path") == "b.txt"
    )
    _tamper(v.tree / "b.txt")
    assert not objects_mod.link_existing(objs, sha, tmp_path / "reuse")
    assert not objects_mod.object_path(objs, sha).exists()  # its name left the store
    assert (v.tree / "b.txt").exists()  # the version still holds it, for verify to see
