"""``grid delete`` leaves no copy of a deleted run's files (issue 13), through ``grid gc``.

Real CLI, real files. Time passing is simulated by moving the mtimes of everything
under GRID_HOME back past the collection's 15-minute grace period.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SCRIPT = "from pathlib import Path\nPath('out.txt').write_text('artifact ok')\nprint('done')\n"


def _project(root: Path, name: str, files: dict[str, str]) -> Path:
    proj = root / name
    proj.mkdir()
    (proj / "train.py").write_text(SCRIPT)
    for rel, text in files.items():
        (proj / rel).write_text(text)
    return proj


def _age(home: Path, seconds: float = 3600) -> None:
    """Make every file and folder under GRID_HOME look ``seconds`` old."""
    then = time.time() - seconds
    for dirpath, dirnames, filenames in os.walk(home):
        for name in [*dirnames, *filenames]:
            os.utime(os.path.join(dirpath, name), (then, then), follow_symlinks=False)


def _holding(home: Path, needle: bytes) -> list[Path]:
    found = []
    for dirpath, _dirs, files in os.walk(home):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink() and p.is_file() and needle in p.read_bytes():
                found.append(p)
    return found


def _envs(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "envs").iterdir() if p.is_dir() and p.name[0] != ".")


def test_delete_removes_every_copy_but_keeps_what_a_remaining_run_shares(
    grid, tmp_path: Path
) -> None:
    secret = f"API_TOKEN={secrets.token_hex(16)}\n".encode()
    shared = f"shared data {secrets.token_hex(16)}\n"
    a = _project(tmp_path, "a", {"token.txt": secret.decode(), "shared.txt": shared})
    b = _project(tmp_path, "b", {"shared.txt": shared})
    grid("run", "--name", "gone", "--follow", "train.py", cwd=a)
    grid("run", "--name", "kept", "--follow", "train.py", cwd=b)
    home = grid.home
    assert _holding(home, secret), "the token should have been snapshotted"
    [env] = _envs(home)  # both runs use one cached environment
    _age(home)

    out = grid("delete", "run", "gone").stdout
    assert "Deleted run gone." in out and "Freed" in out, out
    assert _holding(home, secret) == []  # no object, manifest or folder keeps it
    assert not (home / "experiments" / "gone-exp0").exists()
    # What the remaining run shares stays, and it still works.
    assert [p for p in _holding(home, shared.encode()) if "objects" in p.parts]
    assert _envs(home) == [env]
    status = grid.json("status", "kept")
    assert isinstance(status, dict)
    assert [e["status"] for e in status["experiments"]] == ["succeeded"]
    got = tmp_path / "got"
    grid("artifacts", "kept", "--download_dir", str(got))
    assert [p.read_text() for p in got.rglob("out.txt")] == ["artifact ok"]

    # The last run gone: its environment, manifests and objects go too.
    _age(home)
    grid("delete", "run", "kept")
    assert _envs(home) == []
    assert _holding(home, shared.encode()) == []
    assert [p for p in (home / "snapshots").glob("*.json")] == []
    assert [p for p in (home / "objects").rglob("*") if p.is_file()] == []
    freed = grid.json("gc")
    assert freed == {"objects": 0, "manifests": 0, "envs": 0, "folders": 0, "bytes": 0}


def test_fresh_objects_are_kept_until_the_grace_period_passes(grid, tmp_path: Path) -> None:
    secret = f"PASSWORD={secrets.token_hex(16)}\n".encode()
    proj = _project(tmp_path, "p", {"pw.txt": secret.decode()})
    grid("run", "--name", "young", "--follow", "train.py", cwd=proj)
    home = grid.home
    grid("delete", "run", "young")
    # Within 15 minutes a `grid run` may be snapshotting: its objects are not collected.
    assert [p for p in _holding(home, secret) if "objects" in p.parts]
    _age(home)
    freed = grid.json("gc")
    assert isinstance(freed, dict)
    assert freed["objects"] >= 2 and freed["manifests"] == 1 and freed["envs"] == 1, freed
    assert _holding(home, secret) == []
    assert "Freed 0 B: 0 object(s)" in grid("gc").stdout


DRIVER = """\
import json, os, subprocess, sys
MNT = sys.argv[1]
HOME = os.path.join(MNT, "home")
ENV = dict(os.environ, GRID_HOME=HOME)
def grid(*args):
    p = subprocess.run([sys.executable, "-m", "gridrun", *args], env=ENV,
                       capture_output=True, text=True, timeout=120)
    return {"rc": p.returncode, "out": p.stdout, "err": p.stderr}
seen = {"init": grid("gc")}
fd = os.open(os.path.join(MNT, "filler"), os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"\\0" * 65536)
except OSError:
    pass
os.close(fd)
os.unlink(os.path.join(HOME, "gc.lock"))
seen["full"] = grid("gc")
subprocess.run(["mount", "-o", "remount,ro", MNT], check=True)
seen["ro"] = grid("gc")
print(json.dumps(seen))
"""


def test_gc_on_a_full_or_read_only_home_is_one_line(tmp_path: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root (CI runs as root) for a private tmpfs mount")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(DRIVER))
    proc = subprocess.run(
        [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs -o size=8m tmpfs "$1" && shift && exec "$@"',
            "sh", str(mnt), sys.executable, str(script), str(mnt),
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["init"]["rc"] == 0 and "Freed 0 B" in seen["init"]["out"], seen["init"]
    for case in ("full", "ro"):
        r = seen[case]
        assert "Traceback" not in r["err"] + r["out"], r
        if r["rc"] != 0:
            assert len(r["err"].strip().splitlines()) <= 2, r
    assert seen["ro"]["rc"] != 0
    assert "Read-only file system" in seen["ro"]["err"], seen["ro"]
