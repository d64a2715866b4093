"""A run cannot poison later runs through uv's cache (issue 21, item 1).

uv hard-links an environment's files from its cache. Built from the user's cache
(``UV_CACHE_DIR`` or ``~/.cache/uv``), a file of the cache and the same file of every
environment were one inode, and experiments (running as the user) could write the
cache: one run appended to the cached ``six.py`` and the next run of the same
environment imported the change. Environments are now built from ``GRID_HOME/cache/uv``,
which the experiment's namespace covers with the rest of ``GRID_HOME``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gridrun.datastores import isolation_mode

POISON = """\
import os, sys
import six
# Every place a run could reach a file that later runs import: the environment, the
# caches named in its environment, the usual cache folders, and GRID_HOME itself.
roots = {sys.prefix, os.path.dirname(six.__file__), os.path.expanduser("~/.cache"),
         os.path.expanduser("~/.local")}
for var in ("UV_CACHE_DIR", "XDG_CACHE_HOME", "GRID_HOME", "PIP_CACHE_DIR"):
    if os.environ.get(var):
        roots.add(os.environ[var])
written = 0
for root in sorted(roots):
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name == "six.py" or name.endswith(".pth") or name == "pyvenv.cfg":
                try:
                    with open(os.path.join(dirpath, name), "a") as fh:
                        fh.write("\\nPOISONED = True\\n" if name == "six.py" else "\\n")
                    written += 1
                except OSError:
                    pass
print("WROTE", written, flush=True)
"""
CHECK = """\
import six
print("POISONED", getattr(six, "POISONED", False), flush=True)
"""


def test_a_run_cannot_poison_the_next_run_through_uvs_cache(grid, tmp_path: Path) -> None:
    if isolation_mode() == "none":
        pytest.fail("no private mount namespace here: the guarantee under test is absent")
    # The shell's own uv cache, as a user who sets UV_CACHE_DIR has it: before the fix
    # environments were built from (and hard-linked to) this one.
    user_cache = tmp_path / "user uv cache"
    user_home = tmp_path / "user home"
    user_home.mkdir()
    grid.env.update(UV_CACHE_DIR=str(user_cache), HOME=str(user_home))
    project = tmp_path / "proj"
    project.mkdir()
    (project / "requirements.txt").write_text("six==1.16.0\n")
    (project / "poison.py").write_text(POISON)
    (project / "check.py").write_text(CHECK)

    out = grid("run", "--name", "poisoner", "--follow", "poison.py", cwd=project).stdout
    assert "WROTE" in out, out
    assert int(out.split("WROTE ", 1)[1].split()[0]) >= 1, out  # it did write somewhere
    out = grid("run", "--name", "victim", "--follow", "check.py", cwd=project).stdout
    assert "POISONED False" in out, out
    env_ref = Path(grid.json("status", "victim")["env_ref"])  # type: ignore[index]
    assert grid.json("status", "poisoner")["env_ref"] == str(env_ref)  # type: ignore[index]

    # Nothing under GRID_HOME (the environment, gridrun's uv cache) was changed, and no
    # file of the environment shares its inode with anything outside GRID_HOME.
    cache = grid.home / "cache" / "uv"
    sixes = [p for p in grid.home.rglob("six.py") if "experiments" not in p.parts]
    assert any(cache in p.parents for p in sixes), "the environment was not built from it"
    assert any(env_ref in p.parents for p in sixes)
    for path in sixes:
        assert "POISONED" not in path.read_text(), f"{path} was poisoned"
    outside = {
        (st.st_dev, st.st_ino)
        for p in [*user_cache.rglob("*"), *user_home.rglob("*")]
        if p.is_file() and not p.is_symlink()
        for st in [p.stat()]
    }
    for path in env_ref.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            assert (st.st_dev, st.st_ino) not in outside, f"{path} is linked outside GRID_HOME"
    # The build cache is the owner's alone.
    assert (cache.stat().st_mode & 0o077) == 0 or (cache.parent.stat().st_mode & 0o077) == 0
    assert os.access(cache, os.W_OK)
