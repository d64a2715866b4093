"""Sources that try to escape their folder are refused before anything is written."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from datastore_helpers import make_tree

from gridrun.datastores import create_datastore, list_datastores
from gridrun.errors import DatastoreError
from gridrun.home import GridHome

pytestmark = pytest.mark.unit


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"x"):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def _tar(path: Path, members: list[tuple[str, bytes, str]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        # A good file first: validation must happen before *anything* is stored.
        tf.addfile(*_member("ok/first.txt", data=b"fine"))
        for name, kind, link in members:
            tf.addfile(*_member(name, kind, link))
    return path


SYM, HARD, REG = tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.REGTYPE

EVIL_TARS = {
    "dotdot": [("../evil.txt", REG, "")],
    "nested-dotdot": [("ok/../../evil.txt", REG, "")],
    "absolute": [("/tmp/gridrun-evil.txt", REG, "")],
    "symlink-out": [("link", SYM, "../../../etc")],
    "symlink-absolute": [("link", SYM, "/etc/passwd")],
    # Lexically inside ("a/.." is "."), but a -> . makes a/.. the parent of the root.
    "symlink-through-symlink": [("a", SYM, "."), ("b", SYM, "a/..")],
    "write-through-symlink": [("d", SYM, "ok"), ("d/x.txt", REG, "")],
    "symlink-loop": [("p", SYM, "q"), ("q", SYM, "p")],
    "hardlink-out": [("h", HARD, "../outside.txt")],
    "hardlink-absolute": [("h", HARD, "/etc/passwd")],
    "hardlink-unknown": [("h", HARD, "not/in/archive")],
    "device": [("dev", tarfile.CHRTYPE, "")],
}


def _nothing_written(home: GridHome) -> None:
    assert list_datastores(home) == []
    assert sorted(os.listdir(home.datastores)) == []


@pytest.mark.parametrize("case", sorted(EVIL_TARS))
def test_evil_tar_is_refused(case: str, home: GridHome, tmp_path: Path) -> None:
    archive = _tar(tmp_path / f"{case}.tar.gz", EVIL_TARS[case])
    with pytest.raises(DatastoreError, match="refusing the source"):
        create_datastore(home, archive)
    _nothing_written(home)
    assert not (tmp_path / "evil.txt").exists()


def test_evil_zip_is_refused(home: GridHome, tmp_path: Path) -> None:
    dotdot = tmp_path / "dotdot.zip"
    with zipfile.ZipFile(dotdot, "w") as zf:
        zf.writestr("fine.txt", "ok")
        zf.writestr("../../evil.txt", "pwned")
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("escape")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "../../../etc")
    for archive in (dotdot, link):
        with pytest.raises(DatastoreError, match="refusing the source"):
            create_datastore(home, archive)
        _nothing_written(home)


def test_evil_archive_over_http_leaves_nothing(home: GridHome, http_root: tuple[Path, str]) -> None:
    www, base = http_root
    _tar(www / "evil.tar.gz", EVIL_TARS["dotdot"])
    (www / "page.html").write_text("<html>not an archive</html>")
    with pytest.raises(DatastoreError, match="refusing the source"):
        create_datastore(home, f"{base}/evil.tar.gz")
    with pytest.raises(DatastoreError, match=r"not a \.zip/\.tar/\.tar\.gz archive"):
        create_datastore(home, f"{base}/page.html", name="page")
    assert list_datastores(home) == []
    assert [p.name for p in home.datastores.iterdir()] == []


def test_folder_symlink_outside_is_refused(home: GridHome, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "data", {"a.txt": "1"})
    (tmp_path / "secret").write_text("s")
    os.symlink("../secret", src / "leak")
    with pytest.raises(DatastoreError, match="points outside the datastore"):
        create_datastore(home, src)
    (src / "leak").unlink()
    os.symlink(str(tmp_path / "secret"), src / "leak")
    with pytest.raises(DatastoreError, match="absolute path"):
        create_datastore(home, src)
    _nothing_written(home)


def test_truncated_archive_is_refused(home: GridHome, tmp_path: Path) -> None:
    good = _tar(tmp_path / "good.tar.gz", [("big.bin", REG, "")])
    data = good.read_bytes()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatastoreError):
        create_datastore(home, bad)
    assert list_datastores(home) == []
