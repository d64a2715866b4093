"""The stat cache: unchanged files are not re-read, changed ones always are."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from projecttrees import backdate, write_tree

from gridrun.home import GridHome
from gridrun.project import object_path, take_snapshot
from gridrun.project.store import stat_cache_path

pytestmark = pytest.mark.unit


def test_unchanged_thousand_files_are_not_rehashed(tmp_path: Path, home: GridHome) -> None:
    files = {f"pkg{i % 20}/mod_{i}.py": f"X = {i}\n" * 20 for i in range(1000)}
    root = write_tree(tmp_path / "p", {**files, ".gitignore": "*.log\n"})
    backdate(root)
    start = time.perf_counter()
    first = take_snapshot(root, home)
    cold = time.perf_counter() - start
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        again = take_snapshot(root, home)
        timings.append(time.perf_counter() - start)
        assert again.hash == first.hash
        assert again.rehashed == 0
    assert first.rehashed == 1001
    print(f"\n1,001 files: cold {cold * 1000:.0f} ms, warm best {min(timings) * 1000:.1f} ms")


def test_same_size_edit_with_a_new_mtime_is_detected(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(tmp_path / "p", {"a.txt": "aaaa", "b.txt": "bbbb"})
    backdate(root, 7200)
    first = take_snapshot(root, home)
    (root / "a.txt").write_text("AAAA")
    old = (root / "b.txt").stat().st_mtime_ns - 10**9
    os.utime(root / "a.txt", ns=(old, old))  # a different, still old, mtime
    second = take_snapshot(root, home)
    assert second.rehashed == 1
    assert second.hash != first.hash
    assert object_path(home.objects, second.files["a.txt"].sha256 or "").read_text() == "AAAA"


def test_same_size_edit_with_the_mtime_put_back_is_detected(tmp_path: Path, home: GridHome) -> None:
    """Tools that restore mtimes (tar, rsync -t) still change the ctime."""
    root = write_tree(tmp_path / "p", {"a.txt": "aaaa"})
    backdate(root)
    first = take_snapshot(root, home)
    mtime = (root / "a.txt").stat().st_mtime_ns
    time.sleep(0.01)
    (root / "a.txt").write_text("AAAA")
    os.utime(root / "a.txt", ns=(mtime, mtime))
    second = take_snapshot(root, home)
    assert second.rehashed == 1 and second.hash != first.hash


def test_recently_modified_files_are_always_rehashed(tmp_path: Path, home: GridHome) -> None:
    """Within the timestamp granularity a same-size edit could keep its stat: don't trust it."""
    root = write_tree(tmp_path / "p", {"old.txt": "x", "new.txt": "y"})
    backdate(root)
    (root / "new.txt").write_text("z")
    take_snapshot(root, home)
    assert take_snapshot(root, home).rehashed == 1


def test_cache_is_not_trusted_for_objects_gone_from_the_store(
    tmp_path: Path, home: GridHome
) -> None:
    root = write_tree(tmp_path / "p", {"a.txt": "a", "b.txt": "b"})
    backdate(root)
    snap = take_snapshot(root, home)
    obj = object_path(home.objects, snap.files["a.txt"].sha256 or "")
    obj.unlink()
    again = take_snapshot(root, home)
    assert again.rehashed == 1 and obj.read_text() == "a"


def test_a_corrupt_cache_costs_only_a_rehash(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(tmp_path / "p", {"a.txt": "a"})
    backdate(root)
    first = take_snapshot(root, home)
    stat_cache_path(home.snapshots, str(first.root)).write_text("{broken")
    second = take_snapshot(root, home)
    assert second.hash == first.hash and second.rehashed == 1
    assert take_snapshot(root, home).rehashed == 0
