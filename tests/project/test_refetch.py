"""A node's working copy from the run's repository (gridrun.project.refetch), against a
real ``git daemon``: fetched at a non-tip commit and checked against the snapshot's
digest, taken from the node's cache the second time, and refused (the caller falls
back on the snapshot) when the host is unreachable or the tree is not the run's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from gitservers import git_daemon, make_repo
from gridrun.home import GridHome
from gridrun.project import load_manifest, object_path, take_snapshot
from gridrun.project.manifest import FileEntry
from gridrun.project.refetch import RepoOrigin, fetch_working_copy
from gridrun.project.repository import checkout
from gridrun.project.source import record_checkout


def _snapshot(home: GridHome, folder: Path) -> tuple[str, dict[str, FileEntry]]:
    snap = take_snapshot(folder, home)
    return snap.hash, load_manifest(snap.manifest_path)


def _from(home: GridHome, files: dict[str, FileEntry]):  # type: ignore[no-untyped-def]
    taken: list[str] = []

    def from_snapshot(rel: str, target: Path) -> None:
        taken.append(rel)
        sha = files[rel].sha256
        assert sha is not None
        shutil.copyfile(object_path(home.objects, sha), target)

    return from_snapshot, taken


def test_a_node_fetches_a_non_tip_commit_then_takes_it_from_its_cache(
    home: GridHome, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    _repo, (first, _second) = make_repo(served)
    node_cache = tmp_path / "node" / "repos"
    with git_daemon(served) as base:
        url = f"{base}/repo"
        digest, files = _snapshot(home, checkout(home, url, first).tree)
        from_snapshot, taken = _from(home, files)
        origin = RepoOrigin(url, first)
        dest = tmp_path / "work" / "exp0"
        out = fetch_working_copy(origin, node_cache, files, digest, dest, "n1", from_snapshot)
        assert out.fetched, out.line
        assert out.line == f"fetched {url}@{first[:12]} on node n1"
        assert "version one" in (dest / "src" / "train.py").read_text()
        assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
            ".gitignore",
            "src/train.py",
        ]
        entry = files["src/train.py"]
        assert (dest / "src" / "train.py").stat().st_mtime_ns == entry.mtime_ns
        assert taken == []  # nothing came from the snapshot
    # The server is gone: the node's cache has the commit.
    again = tmp_path / "work" / "exp1"
    out = fetch_working_copy(origin, node_cache, files, digest, again, "n1", from_snapshot)
    assert out.fetched and "from the node's repository cache on node n1" in out.line


def test_an_unreachable_repository_leaves_the_snapshot_to_the_caller(
    home: GridHome, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    _repo, (first, _second) = make_repo(served)
    digest, files = _snapshot(home, checkout(home, f"file://{served / 'repo'}", first).tree)
    with git_daemon(served) as base:
        url = f"{base}/repo"  # stopped below, before the node asks
    dest = tmp_path / "work" / "exp0"
    from_snapshot, _ = _from(home, files)
    out = fetch_working_copy(
        RepoOrigin(url, first), tmp_path / "node", files, digest, dest, "n2", from_snapshot
    )
    assert not out.fetched
    assert out.line.startswith("repository unreachable from node n2: using the uploaded snapshot")
    assert not dest.exists()


def test_a_tree_with_another_digest_is_thrown_away(home: GridHome, tmp_path: Path) -> None:
    served = tmp_path / "served"
    _repo, (first, second) = make_repo(served)
    url = f"file://{served / 'repo'}"
    digest, files = _snapshot(home, checkout(home, url, second).tree)
    dest = tmp_path / "work" / "exp0"
    from_snapshot, _ = _from(home, files)
    # The run recorded the second commit's tree; its origin (wrongly) names the first.
    out = fetch_working_copy(
        RepoOrigin(url, first), tmp_path / "node", files, digest, dest, "n3", from_snapshot
    )
    assert not out.fetched
    assert "is not the run's tree (its digest differs" in out.line
    assert out.line.endswith("using the uploaded snapshot")
    assert not dest.exists()


def test_a_dirty_checkout_is_rebuilt_with_its_diff_and_untracked_files(
    home: GridHome, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    _repo, (_first, second) = make_repo(served)
    work = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", f"file://{served / 'repo'}", str(work)], check=True)
    (work / "src" / "train.py").write_text("print('uncommitted')\n")
    (work / "src" / "data.txt").write_text("untracked\n")
    folder = work / "src"
    digest, files = _snapshot(home, folder)
    rec = record_checkout(folder, sorted(files))
    assert rec is not None and rec.commit == second and rec.subdir == "src"
    origin = RepoOrigin(rec.repo, rec.commit, rec.subdir, rec.diff, rec.untracked)
    from_snapshot, taken = _from(home, files)
    dest = tmp_path / "work" / "exp0"
    out = fetch_working_copy(origin, tmp_path / "node", files, digest, dest, "n4", from_snapshot)
    assert out.fetched, out.line
    assert "with its uncommitted changes" in out.line
    assert (dest / "train.py").read_text() == "print('uncommitted')\n"
    assert taken == ["data.txt"]  # the untracked file, from the snapshot


def test_an_origin_travels_as_json_with_its_binary_diff() -> None:
    origin = RepoOrigin("git://h/o/r", "a" * 40, "sub", b"\x00\xff diff", ("x.bin",))
    assert RepoOrigin.from_dict(origin.to_dict()) == origin
    assert origin.label == f"o/r@{'a' * 12}"


def test_a_cache_the_node_cannot_write_leaves_the_snapshot_to_the_caller(
    home: GridHome, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    _repo, (first, _second) = make_repo(served)
    url = f"file://{served / 'repo'}"
    digest, files = _snapshot(home, checkout(home, url, first).tree)
    blocked = tmp_path / "a file"
    blocked.write_text("not a folder\n")
    from_snapshot, _ = _from(home, files)
    dest = tmp_path / "work" / "exp0"
    out = fetch_working_copy(
        RepoOrigin(url, first), blocked / "repos", files, digest, dest, "n5", from_snapshot
    )
    assert not out.fetched
    assert out.line.startswith("no repository cache on node n5: using the uploaded snapshot")
