"""What a run's Ray package holds, by ``ray.nodes_fetch`` (backends/ray/package.py,
settings.py): with ``always`` the committed files' contents stay home."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from gridrun.backends.ray.node import MANIFEST_JSON, SNAPSHOT_TAR
from gridrun.backends.ray.package import build_package, check_package_size
from gridrun.backends.ray.settings import (
    RaySettings,
    parse_section,
    resolve_nodes_fetch,
)
from gridrun.errors import ConfigError, ProjectError
from gridrun.project.manifest import (
    FileEntry,
    canonical_hash,
    hash_file,
    load_manifest,
    object_path,
    write_manifest,
)

BIG = 5 * 2**20


def _snapshot(tmp_path: Path) -> tuple[Path, Path]:
    """A manifest and object store: a committed 5 MiB data file, a script, an untracked
    note and a link."""
    tree = tmp_path / "tree"
    (tree / "data").mkdir(parents=True)
    (tree / "data" / "big.bin").write_bytes(b"\x07" * BIG)
    (tree / "train.py").write_text("print('hi')\n")
    (tree / "notes.txt").write_text("untracked\n")
    objects = tmp_path / "objects"
    files: dict[str, FileEntry] = {}
    for rel in ("data/big.bin", "train.py", "notes.txt"):
        sha, size = hash_file(tree / rel)
        target = object_path(objects, sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tree / rel, target)
        files[rel] = FileEntry(rel, sha, size, 0o644, mtime_ns=1_700_000_000_000_000_000)
    files["link.py"] = FileEntry("link.py", None, 0, 0o777, link="train.py")
    manifest = tmp_path / "manifest.json"
    write_manifest(manifest, canonical_hash(files), files)
    return manifest, objects


def _members(package: Path) -> dict[str, int]:
    with tarfile.open(package / SNAPSHOT_TAR) as tar:
        return {m.name: m.size for m in tar.getmembers()}


@pytest.mark.unit
def test_the_whole_snapshot_travels_by_default(tmp_path: Path) -> None:
    manifest, objects = _snapshot(tmp_path)
    package = build_package(manifest, objects, tmp_path / "package")
    assert _members(package) == {
        "data/big.bin": BIG,
        "link.py": 0,
        "notes.txt": 10,
        "train.py": 12,
    }
    assert (package / SNAPSHOT_TAR).stat().st_size > BIG


@pytest.mark.unit
def test_a_package_for_nodes_that_fetch_holds_only_the_untracked_files(tmp_path: Path) -> None:
    manifest, objects = _snapshot(tmp_path)
    package = build_package(manifest, objects, tmp_path / "package-fetch", only={"notes.txt"})
    assert _members(package) == {"notes.txt": 10}
    assert (package / SNAPSHOT_TAR).stat().st_size < 64 * 2**10
    assert b"\x07" * 4096 not in (package / SNAPSHOT_TAR).read_bytes()
    # The manifest travels whole: nodes copy exactly its files out of the fetched tree.
    assert load_manifest(package / MANIFEST_JSON) == load_manifest(manifest)


@pytest.mark.unit
def test_a_run_from_a_repository_without_untracked_files_ships_an_empty_tar(
    tmp_path: Path,
) -> None:
    manifest, objects = _snapshot(tmp_path)
    package = build_package(manifest, objects, tmp_path / "package-fetch", only=set())
    assert _members(package) == {}


@pytest.mark.unit
def test_the_size_limit_counts_only_what_travels(tmp_path: Path) -> None:
    manifest, _objects = _snapshot(tmp_path)
    with pytest.raises(ProjectError, match=r"largest files: data/big\.bin \(5\.0 MiB\)"):
        check_package_size(manifest, limit=2**20)
    check_package_size(manifest, limit=2**20, only={"notes.txt", "train.py"})


@pytest.mark.unit
def test_nodes_fetch_is_read_from_the_config_and_the_flag_wins() -> None:
    assert parse_section(None).nodes_fetch == "auto"
    assert parse_section({"nodes_fetch": "always"}).nodes_fetch == "always"
    assert parse_section({"nodes_fetch": "Never"}).nodes_fetch == "never"
    settings = RaySettings(nodes_fetch="always")
    assert resolve_nodes_fetch(None, settings) == "always"
    assert resolve_nodes_fetch("never", settings) == "never"


@pytest.mark.unit
def test_a_bad_nodes_fetch_names_its_source_and_the_choices() -> None:
    with pytest.raises(ConfigError) as err:
        parse_section({"nodes_fetch": "sometimes"}, "cfg.yaml")
    assert err.value.message == (
        "ray.nodes_fetch in cfg.yaml is 'sometimes'; it must be one of auto, always, never."
    )
    with pytest.raises(ConfigError, match=r"^--ray_nodes_fetch is 'yes'"):
        resolve_nodes_fetch("yes", RaySettings())
    with pytest.raises(ConfigError, match=r"Unknown key\(s\) nodes_fetches"):
        parse_section({"nodes_fetches": "always"})


def test_a_bad_ray_nodes_fetch_flag_is_refused_in_one_line(grid: Any, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('never runs')\n")
    proc = grid("run", "--backend", "ray", "--ray_address", "127.0.0.1:9", "--ray_nodes_fetch",
                "sometimes", "train.py", cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "--ray_nodes_fetch is 'sometimes'; it must be one of auto, always, never." in (
        proc.stderr
    )
    proc = grid("run", "--ray_nodes_fetch", "always", "train.py", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--ray_nodes_fetch needs --backend ray" in proc.stderr
