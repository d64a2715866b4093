"""collect_artifacts: what an experiment created or changed, saved under artifacts/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from projecttrees import backdate, write_tree

from gridrun.home import GridHome
from gridrun.project import collect_artifacts, materialize, take_snapshot

TREE = {"train.py": "print('hi')\n", "conf/a.yaml": "lr: 0.1\n", "data/in.csv": "1\n"}


def _workdir(tmp_path: Path, home: GridHome, age: bool = True) -> tuple[Path, Path]:
    root = write_tree(tmp_path / "p", TREE)
    if age:
        backdate(root)
    snap = take_snapshot(root, home)
    work = tmp_path / "work dir"
    materialize(snap.manifest_path, home.objects, work)
    return snap.manifest_path, work


def test_new_and_changed_files_are_copied_with_their_paths(
    weird_tmp_path: Path, home: GridHome
) -> None:
    manifest, work = _workdir(weird_tmp_path, home)
    script = (
        "import pathlib, os\n"
        "pathlib.Path('ckpt/epoch 1').mkdir(parents=True)\n"
        "pathlib.Path('ckpt/epoch 1/modèl.pt').write_bytes(b'w' * 100)\n"
        "pathlib.Path('metrics.json').write_text('{}')\n"
        "pathlib.Path('conf/a.yaml').write_text('lr: 0.2\\n')\n"  # same size, new content
        "os.symlink('metrics.json', 'latest')\n"
        "os.symlink('/etc/hostname', 'outside')\n"
        "import conf_mod\n"  # leaves __pycache__ behind
    )
    (work / "conf_mod.py").write_text("X = 1\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", script], cwd=work, env=env, check=True)
    assert (work / "__pycache__").is_dir()
    arts = work.parent / "artifacts"
    saved = collect_artifacts(manifest, work, arts)
    new = ["ckpt/epoch 1/modèl.pt", "conf_mod.py", "latest", "metrics.json"]
    assert saved == sorted([*new, "conf/a.yaml"])
    assert (arts / "ckpt/epoch 1/modèl.pt").read_bytes() == b"w" * 100
    assert (arts / "conf/a.yaml").read_text() == "lr: 0.2\n"
    assert os.readlink(arts / "latest") == "metrics.json"
    assert (work / "metrics.json").exists()  # copied, never moved
    assert (work / "train.py").exists() and not (arts / "train.py").exists()
    assert not (arts / "__pycache__").exists() and not (arts / "data").exists()


@pytest.mark.unit
def test_copy_mode_leaves_the_working_copy_alone(tmp_path: Path, home: GridHome) -> None:
    manifest, work = _workdir(tmp_path, home)
    (work / "out.txt").write_text("result")
    (work / "data/in.csv").write_text("1\n2\n")
    saved = collect_artifacts(manifest, work, tmp_path / "arts")
    assert saved == ["data/in.csv", "out.txt"]
    assert (work / "out.txt").read_text() == "result"
    assert (tmp_path / "arts/data/in.csv").read_text() == "1\n2\n"


@pytest.mark.unit
def test_fresh_files_are_compared_by_content(tmp_path: Path, home: GridHome) -> None:
    """Right after a snapshot, mtimes cannot be trusted: an unchanged file is not collected
    and a same-size, same-mtime edit still is."""
    manifest, work = _workdir(tmp_path, home, age=False)
    target = work / "conf/a.yaml"
    mtime = target.stat().st_mtime_ns
    target.write_text("lr: 0.9\n")
    os.utime(target, ns=(mtime, mtime))
    assert collect_artifacts(manifest, work, tmp_path / "arts") == ["conf/a.yaml"]


@pytest.mark.unit
def test_unchanged_working_copy_has_no_artifacts(tmp_path: Path, home: GridHome) -> None:
    manifest, work = _workdir(tmp_path, home)
    assert collect_artifacts(manifest, work, tmp_path / "arts") == []
    assert not (tmp_path / "arts").exists()


@pytest.mark.unit
def test_artifacts_folder_inside_the_working_copy_is_skipped(
    tmp_path: Path, home: GridHome
) -> None:
    manifest, work = _workdir(tmp_path, home)
    (work / "model.pt").write_text("w")
    assert collect_artifacts(manifest, work, work / "saved") == ["model.pt"]
    (work / "more.pt").write_text("w")
    # Copied, so model.pt is saved again; nothing under saved/ is collected into itself.
    assert collect_artifacts(manifest, work, work / "saved") == ["model.pt", "more.pt"]
    assert sorted(p.name for p in (work / "saved").iterdir()) == ["model.pt", "more.pt"]


def test_collect_artifacts_imports_cheaply() -> None:
    code = (
        "import sys; from gridrun.project.artifacts import collect_artifacts;"
        "print(sorted(m for m in ('pathspec', 'rich', 'click', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
