"""Creating datastores from folders, archives and URLs; versions; dedup; names."""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from datastore_helpers import make_tree, read_tree

from gridrun.datastores import (
    create_datastore,
    list_datastores,
    parse_grid_uri,
    resolve,
)
from gridrun.datastores.layout import objects_dir
from gridrun.datastores.names import derive_name, env_var
from gridrun.datastores.objects import usage
from gridrun.errors import DatastoreError, NotFoundError, UsageError
from gridrun.home import GridHome

pytestmark = pytest.mark.unit

FILES = {
    "train/a.csv": "x,y\n1,2\n",
    "train/b.csv": "x,y\n3,4\n",
    "README.md": "# data\n",
    "blob.bin": os.urandom(200_000),
}


def _tar_gz(path: Path, files: dict[str, bytes | str]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, files: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return path


def _expected(files: dict[str, bytes | str]) -> dict[str, bytes]:
    return {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}


def test_create_from_folder(home: GridHome, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "My Data_Set", FILES)
    (src / "empty").mkdir()
    os.symlink("train/a.csv", src / "latest.csv")
    v = create_datastore(home, src)
    assert (v.name, v.version, v.status) == ("my-data-set", 1, "succeeded")
    assert v.files == 4 and v.size == sum(len(_expected(FILES)[k]) for k in FILES)
    assert read_tree(v.tree) == _expected(FILES)
    assert (v.tree / "empty").is_dir()
    assert os.readlink(v.tree / "latest.csv") == "train/a.csv"
    assert (v.tree / "latest.csv").read_text() == "x,y\n1,2\n"
    # The tree is read-only by permission bits too, and its files are the objects.
    assert (v.tree / "train").stat().st_mode & 0o777 == 0o555
    assert (v.tree / "README.md").stat().st_mode & 0o777 == 0o400  # owner-only, like every object
    assert (v.tree / "README.md").stat().st_nlink == 2
    manifest = json.loads((v.path / "manifest.json").read_text())
    assert {e["path"] for e in manifest["entries"]} >= {"train/a.csv", "empty", "latest.csv"}


def test_create_from_tar_gz_and_zip_over_http(home: GridHome, http_root: tuple[Path, str]) -> None:
    www, base = http_root
    _tar_gz(www / "Images.tar.gz", FILES)
    _zip(www / "labels.zip", {"l/1.txt": "cat", "l/2.txt": "dog"})
    tv = create_datastore(home, f"{base}/Images.tar.gz")
    zv = create_datastore(home, f"{base}/labels.zip")
    assert (tv.name, tv.status, tv.files) == ("images", "succeeded", 4)
    assert read_tree(tv.tree) == _expected(FILES)
    assert (zv.name, zv.files) == ("labels", 2)
    assert read_tree(zv.tree) == {"l/1.txt": b"cat", "l/2.txt": b"dog"}
    # The download is gone once the version is complete.
    assert not (tv.path / "download").exists()


def test_local_archive_is_extracted(home: GridHome, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "set.zip", {"x/y.txt": "hello"})
    v = create_datastore(home, archive, name="ds")
    assert read_tree(v.tree) == {"x/y.txt": b"hello"}


def test_http_error_is_one_line_and_leaves_nothing(
    home: GridHome, http_root: tuple[Path, str]
) -> None:
    _, base = http_root
    with pytest.raises(DatastoreError, match="HTTP 404"):
        create_datastore(home, f"{base}/missing.tar.gz")
    assert list_datastores(home) == []


def test_versions_and_dedup(home: GridHome, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "data", FILES)
    v1 = create_datastore(home, src)
    stored1 = usage(objects_dir(home))
    changed = b"a brand new file content" * 100
    (src / "train" / "a.csv").write_bytes(changed)
    v2 = create_datastore(home, src)
    stored2 = usage(objects_dir(home))
    assert (v1.version, v2.version) == (1, 2)
    # The store grew by exactly the changed file.
    assert stored2 == (stored1[0] + 1, stored1[1] + len(changed))
    # Version 1 is immutable: it still has the old content.
    assert (v1.tree / "train" / "a.csv").read_text() == "x,y\n1,2\n"
    assert (v2.tree / "train" / "a.csv").read_bytes() == changed
    # The same files in another datastore are stored once too.
    create_datastore(home, src, name="copy")
    assert usage(objects_dir(home)) == stored2
    assert [(v.name, v.version) for v in list_datastores(home)] == [
        ("copy", 1),
        ("data", 1),
        ("data", 2),
    ]


def test_resolve(home: GridHome, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "mnist", {"a": "1"})
    create_datastore(home, src)
    create_datastore(home, src)
    m = resolve(home, "mnist", None, None)
    assert (m.name, m.version, m.mount_dir) == ("mnist", 2, "/datastores/mnist")
    assert (m.source / "a").read_text() == "1"
    assert resolve(home, "mnist", 1, "/data").mount_dir == "/data"
    with pytest.raises(NotFoundError, match=r"No datastore named 'nope' \(known: mnist\)"):
        resolve(home, "nope", None, None)
    with pytest.raises(NotFoundError, match=r"no version 7 \(versions: 1, 2\)"):
        resolve(home, "mnist", 7, None)
    with pytest.raises(UsageError):
        resolve(home, "mnist", 1, "/")


def test_names() -> None:
    assert derive_name("/x/CIFAR_10.tar.gz") == "cifar-10"
    assert derive_name("https://h/p/Train%20Set.zip?sig=1") == "train-set"
    assert derive_name("./data/") == "data"
    assert env_var("my-data") == "GRID_DATASTORE_MY_DATA_DIR"
    with pytest.raises(DatastoreError):
        derive_name("/x/___.zip")


def test_invalid_names_are_refused(home: GridHome, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "d", {"a": "1"})
    for bad in ("../evil", "Upper", "a/b", "", "-x", "x" * 64):
        with pytest.raises(DatastoreError, match="Invalid datastore name"):
            create_datastore(home, src, name=bad or "/")
    assert list_datastores(home) == []
    assert not any(home.datastores.iterdir())


def test_parse_grid_uri() -> None:
    assert parse_grid_uri("grid:mnist:2") == ("mnist", 2)
    assert parse_grid_uri("grid:mnist") == ("mnist", None)
    assert parse_grid_uri("--lr") is None
    for bad in ("grid:Bad:1", "grid:x:one", "grid:x:0", "grid:"):
        with pytest.raises(UsageError):
            parse_grid_uri(bad)


def test_missing_or_unsupported_source(home: GridHome, tmp_path: Path) -> None:
    with pytest.raises(DatastoreError, match="does not exist"):
        create_datastore(home, tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("not an archive")
    with pytest.raises(DatastoreError, match="not a folder or a"):
        create_datastore(home, tmp_path / "notes.txt")
    with pytest.raises(DatastoreError, match="Unsupported source"):
        create_datastore(home, "s3://bucket/key")
