"""Which files a snapshot takes: .gridignore, else every .gitignore/.dockerignore."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from projecttrees import write_tree

from gridrun.home import GridHome
from gridrun.project import ignore_spec, take_snapshot

pytestmark = pytest.mark.unit


def snap_paths(root: Path, home: GridHome) -> list[str]:
    return take_snapshot(root, home).paths()


def test_gridignore_comments_anchors_negation_and_folders(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(
        tmp_path / "proj",
        {
            ".gridignore": (
                "# comment line, then a blank line\n"
                "\n"
                "/build\n"  # anchored: only the root's build
                "*.log\n"
                "!keep.log\n"
                "data/\n"  # folders named data, anywhere; not files named data
                "\\#literal\n"
                "ckpt/**/*.pt\n"
            ),
            ".gitignore": "train.py\n",  # ignored because a .gridignore exists
            "train.py": "print(1)\n",
            "build/out.bin": "x",
            "src/build/keep.py": "x",
            "run.log": "x",
            "sub/other.log": "x",
            "keep.log": "x",
            "data/big.bin": "x",
            "nested/data/big.bin": "x",
            "notes/data": "a file called data",
            "#literal": "x",
            "# comment line, then a blank line": "x",
            "ckpt/a/b/model.pt": "x",
            "ckpt/model.txt": "x",
        },
    )
    assert snap_paths(root, home) == [
        "# comment line, then a blank line",
        ".gitignore",
        ".gridignore",
        "ckpt/model.txt",
        "keep.log",
        "notes/data",
        "src/build/keep.py",
        "train.py",
    ]


def test_negation_cannot_reinclude_inside_an_ignored_folder(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(
        tmp_path / "proj",
        {".gridignore": "data/\n!data/keep.txt\n", "data/keep.txt": "x", "a.py": "x"},
    )
    # A special file inside the ignored folder would warn if the walk went in: it must not.
    os.mkfifo(root / "data" / "fifo")
    snap = take_snapshot(root, home)
    assert snap.paths() == [".gridignore", "a.py"]
    assert snap.warnings == []


def test_gitignore_and_dockerignore_combine_at_every_depth(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(
        tmp_path / "proj",
        {
            ".gitignore": "*.tmp\n",
            ".dockerignore": "dist/\n",
            "a.tmp": "x",
            "dist/pkg.whl": "x",
            "local.txt": "root's local.txt is kept: the pattern lives in sub/",
            "sub/.gitignore": "local.txt\n!important.tmp\n/only_here.txt\n",
            "sub/local.txt": "x",
            "sub/important.tmp": "re-included by the deeper file",
            "sub/other.tmp": "x",
            "sub/only_here.txt": "x",
            "sub/deeper/only_here.txt": "anchored pattern does not reach here",
            "sub/deeper/local.txt": "x",
            "deep/a/b/.dockerignore": "secret\n",
            "deep/a/b/secret": "x",
            "deep/a/secret": "x",
            "deep/a/b/c/secret": "x",
        },
    )
    assert snap_paths(root, home) == [
        ".dockerignore",
        ".gitignore",
        "deep/a/b/.dockerignore",
        "deep/a/secret",
        "local.txt",
        "sub/.gitignore",
        "sub/deeper/only_here.txt",
        "sub/important.tmp",
    ]


def test_always_excluded_folders_and_files(tmp_path: Path, home: GridHome) -> None:
    root = write_tree(
        tmp_path / "proj",
        {
            ".gridignore": "!.git\n!*.pyc\n!__pycache__/\n",  # cannot bring them back
            "train.py": "x",
            ".git/HEAD": "ref",
            "pkg/__pycache__/m.cpython-311.pyc": "x",
            "pkg/stale.pyc": "x",
            "pkg/m.py": "x",
            ".grid/state": "x",
            "grid_artifacts/model.pt": "x",
            "myenv/pyvenv.cfg": "home = /usr",
            "myenv/lib/site.py": "x",
            ".venv/bin/activate": "conda-style env without pyvenv.cfg",
            "venv/pyvenv.cfg": "x",
            "env/__init__.py": "a package named env is project code",
            "env/bin/tool": "x",
        },
    )
    assert snap_paths(root, home) == [
        ".gridignore",
        "env/__init__.py",
        "env/bin/tool",
        "pkg/m.py",
        "train.py",
    ]


def test_ignore_spec_checks_parent_folders(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "proj",
        {".gitignore": "data/\n", "sub/.dockerignore": "*.ckpt\n", ".venv/pyvenv.cfg": "x"},
    )
    rules = ignore_spec(root)
    assert rules.ignored("data/x/keep.txt")
    assert rules.ignored("data", is_dir=True)
    assert not rules.ignored("data")  # a file called data
    assert rules.ignored("sub/m.ckpt")
    assert not rules.ignored("m.ckpt")
    assert rules.ignored(".venv/lib/x.py")
    assert rules.ignored(".git/config")
    assert not rules.ignored("src/train.py")
    assert rules.source == ".gitignore+.dockerignore"


def test_weird_paths_are_selected_like_any_other(weird_tmp_path: Path, home: GridHome) -> None:
    root = write_tree(
        weird_tmp_path / "pro ject",
        {
            ".gitignore": "out put/\n",
            "tràin 'me'.py": "x",
            'sub dir/"q".txt': "x",
            "out put/x": "x",
        },
    )
    assert snap_paths(root, home) == [".gitignore", 'sub dir/"q".txt', "tràin 'me'.py"]
