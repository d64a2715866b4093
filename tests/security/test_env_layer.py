"""The cached environment is read-only to runs; each run installs into its own layer.

A run's environment is shared by every run with the same key. With it writable inside
the namespace, one run's ``pip install`` (or a careless write) changed it for all the
others; mounted read-only, ``pip install x`` in a run failed with EROFS. Now each
experiment gets an overlay over it (``nsexec.py``: ``layer``): the cache is the
read-only lower layer, the run's writes land in its own folder.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from gridrun.datastores import isolation_mode

INSTALL = """\
set -e
pip install -q six==1.16.0
python -c "import six, sys; print('SIX', six.__version__, sys.prefix)"
python -c "import sys; open(sys.prefix + '/pyvenv.cfg', 'a').write('# TAMPERED\\n')"
echo WROTE
"""
CHECK = """\
import importlib.util, sys
print("HAS_SIX", importlib.util.find_spec("six") is not None)
print("TAMPERED", "TAMPERED" in open(sys.prefix + "/pyvenv.cfg").read())
print("PREFIX", sys.prefix)
"""


def _needs_namespace() -> None:
    if isolation_mode() == "none":
        pytest.fail("no private mount namespace here: the guarantee under test is absent")


def _line(out: str, key: str) -> str:
    return next(x for x in out.splitlines() if f"{key} " in x).split(f"{key} ", 1)[1].strip()


def test_pip_install_reaches_only_its_own_run(grid, tmp_path: Path) -> None:
    _needs_namespace()
    project = tmp_path / "proj"
    project.mkdir()
    (project / "install.sh").write_text(INSTALL)
    (project / "check.py").write_text(CHECK)
    out = grid("run", "--name", "installs", "--follow", "install.sh", cwd=project).stdout
    assert "no private layer" not in out, out
    env_ref = Path(grid.json("status", "installs")["env_ref"])  # type: ignore[index]
    # The run's own python saw what its pip installed, at the environment's usual path.
    assert _line(out, "SIX") == f"1.16.0 {env_ref}", out
    assert "WROTE" in out
    # The cache on the host is as it was built: nothing installed, nothing appended.
    assert not list(env_ref.glob("lib/python*/site-packages/six*")), "six reached the cache"
    assert "TAMPERED" not in (env_ref / "pyvenv.cfg").read_text()
    # The layer went with the working copy.
    assert not (grid.home / "experiments" / "installs-exp0" / "env-layer").exists()

    # Another run with the same environment sees it unchanged.
    out = grid("run", "--name", "after", "--follow", "check.py", cwd=project).stdout
    assert grid.json("status", "after")["env_ref"] == str(env_ref)  # type: ignore[index]
    assert _line(out, "HAS_SIX") == "False" and _line(out, "TAMPERED") == "False", out
    assert _line(out, "PREFIX") == str(env_ref)


LAYERED = """\
import os, sys
env = sys.argv[1]
print("BEFORE", open(os.path.join(env, "lib", "cached.txt")).read())
with open(os.path.join(env, "lib", "cached.txt"), "a") as fh:
    fh.write("+run")
open(os.path.join(env, "lib", "installed.txt"), "w").write("mine")
os.unlink(os.path.join(env, "old.txt"))
print("AFTER", open(os.path.join(env, "lib", "cached.txt")).read(), sorted(os.listdir(env)))
"""


def test_an_unprivileged_run_gets_its_own_layer_too(nobody) -> None:
    """As ``nobody``, through an unprivileged user namespace: the same overlay."""
    home = nobody.base / "home"
    env = home / "envs" / "key"
    (env / "lib").mkdir(parents=True)
    (env / "lib" / "cached.txt").write_text("cached")
    (env / "old.txt").write_text("old")
    code = (
        "import json, os, subprocess, sys\n"
        "from pathlib import Path\n"
        "from gridrun.datastores.mount import local_mount_command, remove_env_layer\n"
        "home = Path(sys.argv[1]); env = home / 'envs' / 'key'; out = []\n"
        "for name in ('one', 'two'):\n"
        "    exp = home / 'experiments' / name; (exp / 'workdir').mkdir(parents=True)\n"
        "    argv, _ = local_mount_command([sys.executable, '-c', sys.argv[2], str(env)], [],\n"
        "        exp / 'workdir', mode='user', hide=home, env_layer=(env, exp / 'env-layer'))\n"
        "    p = subprocess.run(argv, capture_output=True, text=True)\n"
        "    out.append([p.returncode, p.stdout, p.stderr])\n"
        "    remove_env_layer(exp / 'env-layer')\n"
        "    out[-1].append((exp / 'env-layer').exists())\n"
        "print(json.dumps(out))\n"
    )
    for path in (home, *home.rglob("*")):
        os.chown(path, 65534, 65534)
    proc = nobody.run(code, str(home), LAYERED)
    assert proc.returncode == 0, proc.stderr
    (one, two) = json.loads(proc.stdout)
    for code_, stdout, stderr, layer_left in (one, two):
        assert code_ == 0 and "no private layer" not in stderr, (stdout, stderr)
        assert "BEFORE cached\n" in stdout and "AFTER cached+run ['lib']" in stdout, stdout
        assert not layer_left, "remove_env_layer left the overlay's mode-0 work folder"
    # The host's cache is untouched by either run.
    assert (env / "lib" / "cached.txt").read_text() == "cached"
    assert (env / "old.txt").exists() and not (env / "lib" / "installed.txt").exists()


def test_nsexec_refuses_a_malformed_plan() -> None:
    from gridrun.datastores.mount import wrapper

    for args in ([], ["--mode", "root"], ["--mode", "bogus", "--", "true"], ["--what", "--"]):
        proc = subprocess.run([*wrapper(), *args], capture_output=True, text=True, check=False)
        assert proc.returncode == 2 and "usage: nsexec.py" in proc.stderr, (args, proc.stderr)


RESTARTED = """\
import os, signal, sys, time
marker = os.path.join(sys.prefix, "installed-by-attempt-0.txt")
if os.environ["GRID_RESTART_COUNT"] == "0":
    open(marker, "w").write("mine")
    print("up 0", flush=True)
    time.sleep(600)
print("attempt 1 sees", os.path.exists(marker), flush=True)
"""


def test_a_restarted_run_keeps_its_layer_and_the_cache_stays_clean(grid, tmp_path: Path) -> None:
    """Preempted and resumed in the same working directory: what attempt 0 installed
    is still there for attempt 1; once the run ends the layer is gone, the cache clean."""
    import signal

    _needs_namespace()
    project = tmp_path / "proj"
    project.mkdir()
    (project / "resumed.py").write_text(RESTARTED)
    grid("run", "--name", "again", "--auto_resume", "resumed.py", cwd=project)
    grid.wait_for_line("again-exp0", "up 0")
    exp = grid.home / "experiments" / "again-exp0"
    pid = int((exp / "backend.ref").read_text().split()[0])
    os.killpg(pid, signal.SIGTERM)  # a spot reclaim: a preemption, resumed
    final = grid.wait("again", timeout=90)
    assert final["experiments"][0]["status"] == "succeeded", final
    assert final["experiments"][0]["restarts"] == 1, final
    assert "attempt 1 sees True" in grid("logs", "again-exp0").stdout
    assert not (Path(final["env_ref"]) / "installed-by-attempt-0.txt").exists()
    assert not (exp / "env-layer").exists()
