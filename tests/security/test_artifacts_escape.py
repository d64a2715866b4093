"""Reproduction 5: artifacts that escape the working copy.

* ``grid artifacts`` followed symlinks an experiment planted (``planted_shadow ->
  /etc/shadow`` came out as a copy of the host's file);
* a detached child that swapped a working-copy folder for a symlink during collection
  got an outside file *moved* into the artifacts, 3 times in 3 trials.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from gridrun.home import GridHome
from gridrun.project import artifacts as artifacts_mod
from gridrun.project import collect_artifacts, materialize, take_snapshot


def _outside(tmp_path: Path) -> Path:
    victim_dir = tmp_path / "outside"
    victim_dir.mkdir()
    (victim_dir / "victim.txt").write_text("HOST-SECRET")
    return victim_dir


@pytest.mark.unit
def test_collection_never_follows_a_folder_swapped_mid_walk(
    tmp_path: Path, home: GridHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic: the folder is swapped for a symlink the moment its first file is
    looked at, as the probe's detached child did."""
    outside = _outside(tmp_path)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "train.py").write_text("x")
    snap = take_snapshot(tmp_path / "p", home)
    work = tmp_path / "work"
    materialize(snap.manifest_path, home.objects, work)
    (work / "out").mkdir()
    for i in range(5):
        (work / "out" / f"victim.txt{i}").write_text(f"result {i}")
    (work / "out" / "victim.txt").write_text("the experiment's own")
    real = artifacts_mod._file_changed
    swapped = []

    def swap_then_check(entry, dir_fd, name, st, now):  # type: ignore[no-untyped-def]
        if not swapped:
            os.rename(work / "out", work / "out.real")
            os.symlink(outside, work / "out")
            swapped.append(name)
        return real(entry, dir_fd, name, st, now)

    monkeypatch.setattr(artifacts_mod, "_file_changed", swap_then_check)
    arts = tmp_path / "arts"
    saved = collect_artifacts(snap.manifest_path, work, arts)
    assert swapped
    assert (outside / "victim.txt").read_text() == "HOST-SECRET"  # never moved
    assert all("HOST-SECRET" not in p.read_text() for p in arts.rglob("*") if p.is_file()), saved
    assert (arts / "out" / "victim.txt").read_text() == "the experiment's own"


@pytest.mark.unit
def test_collection_copies_and_never_saves_links_leaving_the_copy(
    tmp_path: Path, home: GridHome
) -> None:
    outside = _outside(tmp_path)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "train.py").write_text("x")
    snap = take_snapshot(tmp_path / "p", home)
    work = tmp_path / "work"
    materialize(snap.manifest_path, home.objects, work)
    (work / "model.pt").write_text("weights")
    os.symlink(outside / "victim.txt", work / "abs_link")
    os.symlink("../outside/victim.txt", work / "rel_link")
    os.symlink("model.pt", work / "latest")
    os.mkfifo(work / "fifo")
    saved = collect_artifacts(snap.manifest_path, work, tmp_path / "arts")
    assert saved == ["latest", "model.pt"]
    assert (work / "model.pt").read_text() == "weights"  # copied, not moved
    assert os.readlink(tmp_path / "arts" / "latest") == "model.pt"


def test_planted_artifacts_symlinks_are_not_followed(grid, tmp_path: Path) -> None:
    """The experiment plants links to host files in its working copy; and links are
    planted straight into its artifacts store. Neither yields the host file's bytes."""
    outside = _outside(tmp_path)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "plant.py").write_text(
        textwrap.dedent(
            f"""\
            import os
            open("model.txt", "w").write("weights")
            os.symlink({str(outside / "victim.txt")!r}, "planted_shadow")
            os.symlink("/etc/shadow", "planted_etc_shadow")
            os.symlink("model.txt", "latest")
            """
        )
    )
    grid("run", "--name", "plant", "--follow", "plant.py", cwd=project)
    store = grid.home / "experiments" / "plant-exp0" / "artifacts"
    assert sorted(p.name for p in store.iterdir()) == ["latest", "model.txt"]
    # As if an experiment had reached its own artifacts folder.
    os.symlink(outside / "victim.txt", store / "planted_shadow")
    os.symlink("/etc/shadow", store / "planted_etc_shadow")
    os.symlink(outside, store / "planted_dir")
    dest = tmp_path / "dl"
    out = grid("artifacts", "plant", "--download_dir", str(dest))
    got = dest / "plant-exp0"
    assert (got / "model.txt").read_text() == "weights"
    assert os.readlink(got / "latest") == "model.txt"
    for name in ("planted_shadow", "planted_etc_shadow", "planted_dir"):
        assert not os.path.lexists(got / name), name
        assert f"plant-exp0/{name}: a symlink pointing outside" in " ".join(out.stderr.split())
    assert all("HOST-SECRET" not in p.read_text() for p in got.rglob("*") if p.is_file())


def test_detached_child_swapping_folders_during_collection(grid, tmp_path: Path) -> None:
    """The probe's race, with real processes: a detached child flips ``out`` between a
    folder and a symlink to an outside folder while the supervisor saves artifacts."""
    outside = _outside(tmp_path)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "race.py").write_text(
        textwrap.dedent(
            f"""\
            import os, subprocess, sys
            os.mkdir("out")
            for i in range(300):
                open(f"out/f{{i}}.txt", "w").write("x" * 1000)
            open("out/victim.txt", "w").write("own")
            child = '''
            import os, time
            end = time.time() + 8
            while time.time() < end:
                try:
                    os.rename("out", "out.real"); os.symlink({str(outside)!r}, "out")
                    time.sleep(0.0005)
                    os.unlink("out"); os.rename("out.real", "out")
                except OSError:
                    pass
            '''
            subprocess.Popen([sys.executable, "-c", child], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            """
        )
    )
    for trial in range(3):
        grid("run", "--name", f"race-{trial}", "--follow", "race.py", cwd=project, check=False)
        assert (outside / "victim.txt").read_text() == "HOST-SECRET", trial
        store = grid.home / "experiments" / f"race-{trial}-exp0" / "artifacts"
        for p in store.rglob("*") if store.exists() else []:
            if p.is_file() and not p.is_symlink():
                assert "HOST-SECRET" not in p.read_text(), p
