"""Reproduction 3: a root experiment altered a "read-only" datastore.

It remounted its bind mount read-write (``mount(NULL, dir, NULL, MS_REMOUNT|MS_BIND,
NULL)`` returned 0) and appended to a file; writing through the host path
``GRID_HOME/datastores/.../files/`` worked too. Now the experiment runs without the
capabilities to remount, with GRID_HOME hidden except its own working copy. Everything
below runs through the real ``grid`` CLI on the local backend, as root (and the last
test as ``nobody``).
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from gridrun.datastores import isolation_mode

ATTACK = """\
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                       ctypes.c_void_p]
MS_REMOUNT, MS_BIND = 32, 4096
d = os.environ["GRID_DATASTORE_IMAGES_DIR"]
home = sys.argv[1]
seen = {"uid": os.geteuid()}
rc = libc.mount(None, d.encode(), None, MS_REMOUNT | MS_BIND, None)
seen["remount"] = rc if rc == 0 else errno.errorcode[ctypes.get_errno()]
try:
    with open(os.path.join(d, "train", "a.txt"), "a") as fh:
        fh.write("TAMPERED")
    seen["append"] = "ok"
except OSError as exc:
    seen["append"] = errno.errorcode[exc.errno]
seen["home"] = sorted(os.listdir(home)) if os.path.isdir(home) else None
store = os.path.join(home, "datastores")
seen["host_path"] = os.path.exists(store)
for pid in ("1", str(os.getppid())):
    try:
        seen["proc_root_" + pid] = sorted(os.listdir(f"/proc/{pid}/root{home}"))
    except OSError as exc:
        seen["proc_root_" + pid] = errno.errorcode[exc.errno]
# A nested user namespace has every capability again, but only over locked mounts.
pid = os.fork()
if pid == 0:
    out = {}
    if libc.unshare(0x10000000 | 0x00020000) != 0:
        out["unshare"] = errno.errorcode[ctypes.get_errno()]
    else:
        rc = libc.mount(None, d.encode(), None, MS_REMOUNT | MS_BIND, None)
        out["nested_remount"] = rc if rc == 0 else errno.errorcode[ctypes.get_errno()]
        libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        rc = libc.umount2(home.encode(), 2)
        out["nested_umount"] = rc if rc == 0 else errno.errorcode[ctypes.get_errno()]
    with open("nested.json", "w") as fh:
        json.dump(out, fh)
    os._exit(0)
os.waitpid(pid, 0)
seen.update(json.load(open("nested.json")))
caps = [l for l in open("/proc/self/status") if l.startswith(("CapBnd", "NoNewPrivs"))]
seen["status"] = "".join(caps)
with open("verdict.json", "w") as fh:
    json.dump(seen, fh)
print("VERDICT", json.dumps(seen))
"""


def _needs_namespace() -> None:
    if isolation_mode() == "none":
        pytest.fail("no private mount namespace here: the guarantee under test is absent")


def _verdict(out: str) -> dict:
    line = next(x for x in out.splitlines() if "VERDICT " in x)
    return json.loads(line.split("VERDICT ", 1)[1])


@pytest.fixture
def images(grid, tmp_path: Path) -> Path:
    src = tmp_path / "images"
    (src / "train").mkdir(parents=True)
    (src / "train" / "a.txt").write_text("pixels")
    grid("datastore", "create", str(src), "--name", "images")
    return src


def test_root_experiment_cannot_alter_a_datastore(grid, images: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the root half of the reproduction")
    _needs_namespace()
    project = tmp_path / "proj"
    project.mkdir()
    (project / "attack.py").write_text(ATTACK)
    out = grid(
        "run", "--name", "attack", "--datastore_name", "images",
        # Relative: no /datastores/images left behind on the host for other tests.
        "--datastore_mount_dir", "data/images", "--follow", "attack.py",
        str(grid.home), cwd=project,
    ).stdout  # fmt: skip
    seen = _verdict(out)
    assert seen["uid"] == 0
    assert seen["remount"] == "EPERM", seen
    assert seen["append"] == "EROFS", seen
    # GRID_HOME is an empty tmpfs but for the experiment's own folder and environment.
    assert seen["home"] == ["envs", "experiments"], seen
    assert not seen["host_path"]
    assert seen["proc_root_1"] in ("EACCES", "EPERM"), seen
    assert seen["nested_remount"] != 0 and seen["nested_umount"] != 0, seen
    bounding = int(next(x for x in seen["status"].split("\n") if "CapBnd" in x).split()[1], 16)
    assert not bounding & (1 << 21), "CAP_SYS_ADMIN is still in the bounding set"
    assert "NoNewPrivs:\t1" in seen["status"]
    # The stored data is untouched, a new datastore from the source is clean, and both
    # verify intact.
    stored = grid.home / "datastores" / "images" / "1" / "files" / "train" / "a.txt"
    assert stored.read_text() == "pixels"
    grid("datastore", "create", str(images), "--name", "fresh")
    assert (grid.home / "datastores" / "fresh" / "1" / "files" / "train" / "a.txt").read_text() == (
        "pixels"
    )
    assert grid("datastore", "verify", "images").returncode == 0
    assert "tampered" not in grid("datastore", "list").stdout


def test_experiment_without_datastores_cannot_reach_grid_home(grid, tmp_path: Path) -> None:
    """Other runs' snapshots, logs and the object stores are out of reach for any
    experiment, with or without a datastore."""
    _needs_namespace()
    project = tmp_path / "proj"
    project.mkdir()
    (project / "peek.py").write_text(
        textwrap.dedent(
            """\
            import json, os, sys
            home = sys.argv[1]
            found = []
            for d, dirs, files in os.walk(home):
                found += [os.path.relpath(os.path.join(d, f), home) for f in files]
            print("FOUND", json.dumps(sorted(found)))
            print("CWD", os.getcwd())
            # Relative to the working directory, not through GRID_HOME's path: a
            # directory entered before the tmpfs covered GRID_HOME would lead out.
            up = []
            for d, dirs, files in os.walk("../.."):
                up += [os.path.relpath(os.path.join(d, f), "../..") for f in files]
            print("UP", json.dumps(sorted(up)))
            """
        )
    )
    (project / "data.txt").write_text("mine")
    grid("run", "--name", "first", "--follow", "peek.py", str(grid.home), cwd=project)
    out = grid("run", "--name", "peek", "--follow", "peek.py", str(grid.home), cwd=project).stdout
    found = json.loads(next(x for x in out.splitlines() if "FOUND " in x).split("FOUND ", 1)[1])
    cwd = next(x for x in out.splitlines() if "CWD " in x).split("CWD ", 1)[1].strip()
    assert cwd.endswith("experiments/peek-exp0/workdir")
    workdir = "experiments/peek-exp0/workdir/"
    assert not [f for f in found if not f.startswith((workdir, "envs/"))], found
    assert f"{workdir}data.txt" in found and f"{workdir}peek.py" in found
    assert not any(f.startswith(("objects/", "snapshots/", "grid.db")) for f in found)
    up = json.loads(next(x for x in out.splitlines() if "UP " in x).split("UP ", 1)[1])
    assert up and all(f.startswith("peek-exp0/workdir/") for f in up), up
    # The run's artifacts are still collected from the working copy as before.
    assert (grid.home / "experiments" / "peek-exp0").is_dir()
