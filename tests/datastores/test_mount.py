"""Experiments (real subprocesses) see datastores read-only, root included."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from datastore_helpers import make_tree

import gridrun
from gridrun.datastores import create_datastore, isolation_mode, local_mount_command, resolve
from gridrun.datastores.names import env_var
from gridrun.errors import DatastoreError
from gridrun.home import GridHome
from nobody import NOBODY, python_for_nobody

READER = """
import os, sys
d = os.environ["GRID_DATASTORE_IMAGES_DIR"]
print("DIR", d)
print("DATA", open(os.path.join(d, "train", "a.txt")).read())
"""

WRITER = """
import os, sys
d = os.environ["GRID_DATASTORE_IMAGES_DIR"]
failures = []
for action in ("write", "create", "delete", "chmod"):
    try:
        if action == "write":
            with open(os.path.join(d, "train", "a.txt"), "w") as fh:
                fh.write("CORRUPTED")
        elif action == "create":
            open(os.path.join(d, "new.txt"), "w").close()
        elif action == "delete":
            os.unlink(os.path.join(d, "train", "a.txt"))
        else:
            os.chmod(os.path.join(d, "train", "a.txt"), 0o666)
        print("ALLOWED", action)
    except OSError as exc:
        failures.append(action)
        print("REFUSED", action, exc.errno)
sys.exit(0 if len(failures) == 4 else 1)
"""


def _run(
    argv: list[str], env: dict[str, str], cwd: Path, **kw: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kw,  # type: ignore[arg-type]
    )


USERNS_NAME = "userns-images"


@pytest.fixture
def images(home: GridHome, tmp_path: Path):
    src = make_tree(tmp_path / "images", {"train/a.txt": "pixels", "b.txt": "more"})
    create_datastore(home, src)
    return home


def _workdir(tmp_path: Path) -> Path:
    work = tmp_path / "exp" / "workdir"
    work.mkdir(parents=True)
    return work


def test_probe_agrees_with_util_linux(tmp_path: Path) -> None:
    """If util-linux can make a read-only bind in a private namespace, so must we."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        pytest.skip("the oracle needs root and util-linux")
    target = tmp_path / "t"
    target.mkdir()
    script = (
        f"mount --bind '{target}' '{target}' && mount -o remount,bind,ro '{target}' "
        f"&& ! touch '{target}/x' 2>/dev/null"
    )
    oracle = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if oracle.returncode != 0:
        assert isolation_mode() != "root"
        pytest.skip("no mount namespaces for root here")
    assert isolation_mode() in ("root", "user")


@pytest.mark.parametrize("mode", ["auto", "user"])
def test_experiment_reads_at_mount_dir(images: GridHome, tmp_path: Path, mode: str) -> None:
    if mode != "auto" and isolation_mode() == "none":
        pytest.skip("no namespaces here")
    mount_dir = tmp_path / "not" / "yet" / "images"
    m = resolve(images, "images", None, str(mount_dir))
    work = _workdir(tmp_path)
    argv, env = local_mount_command(
        [sys.executable, "-c", READER], [m], work, mode=None if mode == "auto" else mode
    )
    assert env == {"GRID_DATASTORE_IMAGES_DIR": str(mount_dir)}
    proc = _run(argv, env, work)
    assert proc.returncode == 0, proc.stderr
    assert f"DIR {mount_dir}" in proc.stdout and "DATA pixels" in proc.stdout
    if isolation_mode() != "none":
        # The mount lived in the experiment's namespace only: the host sees an empty folder.
        assert mount_dir.is_dir() and list(mount_dir.iterdir()) == []


def test_write_attempts_fail_even_as_root(images: GridHome, tmp_path: Path) -> None:
    if isolation_mode() == "none":
        pytest.skip("without namespaces root can write (documented)")
    m = resolve(images, "images", None, str(tmp_path / "mnt" / "images"))
    work = _workdir(tmp_path)
    argv, env = local_mount_command([sys.executable, "-c", WRITER], [m], work)
    proc = _run(argv, env, work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ALLOWED" not in proc.stdout
    assert (m.source / "train" / "a.txt").read_text() == "pixels"
    assert sorted(os.listdir(m.source)) == ["b.txt", "train"]


def test_falls_back_to_workdir_when_mount_dir_cannot_be_made(
    images: GridHome, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    m = resolve(images, "images", None, str(blocker / "images"))
    work = _workdir(tmp_path)
    argv, env = local_mount_command([sys.executable, "-c", READER], [m], work)
    expected = work / "datastores" / "images"
    assert env == {"GRID_DATASTORE_IMAGES_DIR": str(expected)}
    proc = _run(argv, env, work)
    assert proc.returncode == 0, proc.stderr
    assert "DATA pixels" in proc.stdout


def test_relative_mount_dir_is_inside_workdir(images: GridHome, tmp_path: Path) -> None:
    m = resolve(images, "images", None, "data/images")
    work = _workdir(tmp_path)
    argv, env = local_mount_command([sys.executable, "-c", READER], [m], work)
    assert env["GRID_DATASTORE_IMAGES_DIR"] == str(work / "data" / "images")
    assert _run(argv, env, work).returncode == 0


def test_no_namespace_fallback_uses_permission_bits(images: GridHome, tmp_path: Path) -> None:
    m = resolve(images, "images", None, str(tmp_path / "ro" / "images"))
    work = _workdir(tmp_path)
    argv, env = local_mount_command([sys.executable, "-c", READER], [m], work, mode="none")
    assert argv[0] == sys.executable and argv[1] == "-c"  # nothing wrapped
    proc = _run(argv, env, work)
    assert proc.returncode == 0 and "DATA pixels" in proc.stdout, proc.stderr
    assert Path(env["GRID_DATASTORE_IMAGES_DIR"]).resolve() == m.source.resolve()
    python = (
        python_for_nobody("sqlite3, ctypes")
        if os.geteuid() == 0 and shutil.which("setpriv")
        else None
    )
    if python is not None:
        # Permission bits stop a non-root experiment (root is the documented gap).
        os.chmod(tmp_path, 0o755)
        proc = _run([*NOBODY, "env", python, "-c", WRITER], env, work)
        assert proc.returncode == 0 and "REFUSED write" in proc.stdout, proc.stdout + proc.stderr
        assert (m.source / "train" / "a.txt").read_text() == "pixels"


def test_deleted_version_is_a_clear_error(images: GridHome, tmp_path: Path) -> None:
    m = resolve(images, "images", None, None)
    m = dataclasses.replace(m, source=tmp_path / "gone")  # specs are frozen
    with pytest.raises(DatastoreError, match="is gone"):
        local_mount_command(["true"], [m], _workdir(tmp_path))


def test_non_root_user_namespace(tmp_path: Path) -> None:
    """A non-root experiment gets the read-only mount through a user namespace."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to switch to an unprivileged user")
    python = python_for_nobody("sqlite3, ctypes")
    if python is None:
        pytest.skip("no Python interpreter the unprivileged user can run")
    base = Path(tempfile.mkdtemp(prefix="gridrun-userns-"))
    try:
        os.chmod(base, 0o777)
        home = GridHome(base / "home").ensure()
        # A name no other test mounts: other tests may leave /datastores/images behind.
        create_datastore(
            home, make_tree(base / "images", {"train/a.txt": "pixels"}), name=USERNS_NAME
        )
        # GRID_HOME is private to its owner: the experiment's user owns this one.
        subprocess.run(["chown", "-R", "65534:65534", str(home.root)], check=True)
        work = base / "work"
        work.mkdir(mode=0o777)
        os.chmod(work, 0o777)
        # The checkout may live in a private folder (mode 0700, as mktemp -d or a home
        # directory makes) that nobody cannot read: give nobody its own copy of gridrun.
        src_dir = base / "src"
        shutil.copytree(
            Path(gridrun.__file__).resolve().parent,
            src_dir / "gridrun",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        for p in [src_dir, *src_dir.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        driver = (
            "import os, sys, pathlib\n"
            "from gridrun.home import GridHome\n"
            "from gridrun.datastores import resolve, local_mount_command, isolation_mode\n"
            "home = GridHome(pathlib.Path(sys.argv[1]))\n"
            f"m = resolve(home, {USERNS_NAME!r}, None, None)\n"
            "argv, env = local_mount_command([sys.executable, '-c', sys.argv[2]], [m],"
            " pathlib.Path(sys.argv[3]))\n"
            "print('MODE', isolation_mode(), flush=True)\n"
            "os.execvpe(argv[0], argv, {**os.environ, **env})\n"
        )
        writer = WRITER.replace("GRID_DATASTORE_IMAGES_DIR", env_var(USERNS_NAME))
        proc = subprocess.run(
            [*NOBODY, "env", python, "-c", driver, str(home.root), writer, str(work)],
            env={**os.environ, "PYTHONPATH": str(src_dir), "HOME": str(base)},
            cwd=work, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if "MODE none" in proc.stdout:
            pytest.skip("unprivileged user namespaces are not allowed here")
        assert "MODE user" in proc.stdout, proc.stdout + proc.stderr
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "ALLOWED" not in proc.stdout
        # /datastores cannot be made by nobody: the workdir place is used.
        assert (work / "datastores" / USERNS_NAME).is_dir()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_node_isolation_mode_probes_once_per_node_and_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Slurm task reads the node's record instead of starting a probe of its own (the
    runner reads it with nsexec alone); a record of another boot (or user, or Python)
    is probed again and replaced."""
    from gridrun.datastores import mount, nsexec

    monkeypatch.delenv("GRIDRUN_DATASTORE_ISOLATION", raising=False)
    monkeypatch.setattr(mount, "_probed", None)
    probed = mount.node_isolation_mode(tmp_path)
    record = tmp_path / f"isolation-{os.uname().nodename}"
    kept = record.read_text()
    mode, node, boot, uid, python, end = kept.split("\n")
    assert (mode, node, uid, python, end) == (probed, os.uname().nodename, str(os.geteuid()),
                                              sys.executable, "")  # fmt: skip
    assert boot and nsexec.read_node_mode(str(tmp_path)) == probed
    # The record decides: a mode no probe here would find proves it was read.
    other = "none" if probed != "none" else "user"
    record.write_text(kept.replace(probed, other, 1))
    monkeypatch.setattr(mount, "_probed", None)
    assert mount.node_isolation_mode(tmp_path) == other
    assert nsexec.read_node_mode(str(tmp_path)) == other
    # Another boot's record is stale: probed again, and rewritten.
    record.write_text(kept.replace(probed, other, 1).replace(boot, "earlier"))
    assert nsexec.read_node_mode(str(tmp_path)) is None
    monkeypatch.setattr(mount, "_probed", None)
    assert mount.node_isolation_mode(tmp_path) == probed
    assert record.read_text() == kept
