"""Sparse artifacts stay sparse (issue 21, item 4).

A checkpoint preallocated with ``truncate`` or written with seeks is mostly holes: the
probe's 5 GB file took 4 KB on disk, was copied densely into the artifacts, and failed
the run that wrote it. Holes are now found with ``SEEK_DATA``/``SEEK_HOLE`` and kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from projecttrees import backdate, write_tree

from gridrun.home import GridHome
from gridrun.project import collect_artifacts, materialize, take_snapshot

GB = 1 << 30
CHUNKS = {0: b"head" * 1024, 2 * GB + 12345: b"middle", 5 * GB - 4096: b"t" * 4096}


def _sparse(path: Path, size: int = 5 * GB) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size)
        for offset, data in CHUNKS.items():
            if offset + len(data) <= size:
                fh.seek(offset)
                fh.write(data)


def _on_disk(path: Path) -> int:
    return path.stat().st_blocks * 512


@pytest.mark.unit
def test_a_sparse_checkpoint_is_saved_with_its_holes(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(tmp_path / "p", {"train.py": "print('hi')\n"})
    backdate(root)
    snap = take_snapshot(root, home)
    work = tmp_path / "work"
    materialize(snap.manifest_path, home.objects, work)
    (work / "ckpt").mkdir()
    _sparse(work / "ckpt" / "model.bin")
    _sparse(work / "ckpt" / "ends in a hole.bin", 3 * GB)  # last extent before the end
    assert _on_disk(work / "ckpt" / "model.bin") < 1 << 20, "this filesystem has no holes"
    arts = tmp_path / "arts"
    assert collect_artifacts(snap.manifest_path, work, arts) == [
        "ckpt/ends in a hole.bin",
        "ckpt/model.bin",
    ]
    for name, size in (("model.bin", 5 * GB), ("ends in a hole.bin", 3 * GB)):
        saved = arts / "ckpt" / name
        assert saved.stat().st_size == size
        assert _on_disk(saved) < 1 << 20, f"{name}: {_on_disk(saved)} bytes on disk"
        with open(saved, "rb") as fh:
            for offset, data in CHUNKS.items():
                if offset + len(data) <= size:
                    fh.seek(offset)
                    assert fh.read(len(data)) == data
            fh.seek(GB)
            assert fh.read(4096) == bytes(4096)  # a hole reads as zeros
    # A dense file is copied whole, as before.
    (work / "dense.bin").write_bytes(os.urandom(3 << 20))
    collect_artifacts(snap.manifest_path, work, tmp_path / "arts2")
    assert (tmp_path / "arts2" / "dense.bin").read_bytes() == (work / "dense.bin").read_bytes()


SPARSE_RUN = """\
with open("checkpoint.bin", "wb") as fh:
    fh.truncate(5 << 30)
    fh.seek(3 << 30)
    fh.write(b"weights")
print("saved", flush=True)
"""


def test_a_run_with_a_sparse_checkpoint_succeeds_and_keeps_it(grid, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "sparse.py").write_text(SPARSE_RUN)
    grid("run", "--name", "sparse", "--follow", "sparse.py", cwd=project)
    exp = grid.json("status", "sparse")["experiments"][0]  # type: ignore[index]
    assert exp["status"] == "succeeded" and not exp.get("error"), exp
    saved = grid.home / "artifacts" / "sparse-exp0" / "checkpoint.bin"
    if not saved.exists():
        saved = next(grid.home.rglob("checkpoint.bin"))
    assert saved.stat().st_size == 5 << 30
    assert _on_disk(saved) < 1 << 20
    with open(saved, "rb") as fh:
        fh.seek(3 << 30)
        assert fh.read(7) == b"weights"
