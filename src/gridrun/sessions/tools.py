"""JupyterLab and ipykernel, from PyPI, cached under ``GRID_HOME/cache/tools``.

Two caches, each built once in a temporary folder and renamed into place under a lock
(as ``envs/venv.py`` builds environments), so a second session starts with no
install at all:

* ``jupyterlab-<version>``: a virtualenv holding the JupyterLab server. It is the
  server's own environment, never the run's, so the run's packages are not changed
  (and cannot break the server).
* ``ipykernel-<version>-py<X.Y>``: ipykernel and its dependencies, installed with
  ``--target`` for one Python minor version (pyzmq and friends are compiled). The
  kernel runs with the *run's* interpreter and appends this folder to ``sys.path``
  (see :func:`kernel_argv`), after the run's site-packages: the run's own packages
  win, the cached environment gets no file, and nothing a session writes reaches it.

Both are compiled to bytecode when installed: a session sees them read-only, so
Python could not cache it there, and a kernel compiling IPython, pyzmq and
jupyter_client at every start took long enough on a busy machine for JupyterLab to
give up on it.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from gridrun.errors import BuildError

JUPYTERLAB_VERSION = "4.6.6"
# ipykernel 7 needs Python 3.10; older interpreters get the last 6.x.
IPYKERNEL_VERSION = "7.4.0"
IPYKERNEL_OLD_PYTHON = "6.29.5"
TOOLS = "tools"

Log = Callable[[str], None]


def tools_dir(home_root: Path) -> Path:
    return home_root / "cache" / TOOLS


def ipykernel_version(python_minor: str) -> str:
    major, minor = (int(x) for x in python_minor.split(".")[:2])
    return IPYKERNEL_VERSION if (major, minor) >= (3, 10) else IPYKERNEL_OLD_PYTHON


def jupyterlab_env(home_root: Path, log: Log, *, proxy: str | None = None) -> Path:
    """The cached JupyterLab virtualenv, built first if there is none.

    ``proxy``: a jupyter-server-proxy version to add (VS Code sessions, ``vscode.py``),
    a variant cached apart, so sessions without VS Code never install it.
    """
    name = f"jupyterlab-{JUPYTERLAB_VERSION}" + (f"-proxy-{proxy}" if proxy else "")
    dest = tools_dir(home_root) / name
    wanted = [f"jupyterlab=={JUPYTERLAB_VERSION}"]
    if proxy:
        wanted.append(f"jupyter-server-proxy=={proxy}")

    def build(tmp: Path, uv: str, env: dict[str, str]) -> None:
        _uv([uv, "venv", "--quiet", "--python", sys.executable, str(tmp)], env)
        _uv(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--compile-bytecode",
                "--python",
                str(tmp / "bin" / "python"),
                *wanted,
            ],
            env,
        )

    return cached_tool(dest, " and ".join(w.replace("==", " ") for w in wanted), build, log)


def kernel_packages(home_root: Path, python: Path, python_minor: str, log: Log) -> Path:
    """The cached ipykernel folder for ``python``'s minor version, built first if needed."""
    version = ipykernel_version(python_minor)
    dest = tools_dir(home_root) / f"ipykernel-{version}-py{python_minor}"

    def build(tmp: Path, uv: str, env: dict[str, str]) -> None:
        _uv(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--compile-bytecode",  # see the module doc
                "--python",
                str(python),
                "--target",
                str(tmp),
                f"ipykernel=={version}",
            ],
            env,
        )

    return cached_tool(dest, f"ipykernel {version} for Python {python_minor}", build, log)


def kernel_argv(python: Path, packages: Path) -> list[str]:
    """The kernel's command: the run's interpreter, ipykernel appended to its path.

    ``sys.path.append`` rather than ``PYTHONPATH``: the run's own site-packages stay
    first, so an IPython or pyzmq the run pins is the one it gets.
    """
    code = (
        f"import sys; sys.path.append({str(packages)!r}); "
        "from ipykernel.kernelapp import launch_new_instance; launch_new_instance()"
    )
    return [str(python), "-c", code, "-f", "{connection_file}"]


def cached_tool(
    dest: Path, what: str, build: Callable[[Path, str, dict[str, str]], None], log: Log
) -> Path:
    """``dest``, built by ``build(tmp, uv, env)`` in a temporary folder first if missing."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = os.open(dest.parent / f".{dest.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per tool; a second waits for it
        if dest.is_dir():
            return dest
        from uv import find_uv_bin

        from gridrun.envs.venv import uv_cache_dir

        log(f"Installing {what} (once; cached in {dest.parent})")
        env = dict(os.environ)
        env.update(UV_NO_PROGRESS="1", NO_COLOR="1", UV_LINK_MODE="hardlink")
        env["UV_CACHE_DIR"] = str(uv_cache_dir(dest.parent.parent.parent / "envs"))
        tmp = dest.parent / f".tmp-{dest.name}-{secrets.token_hex(4)}"
        try:
            build(tmp, find_uv_bin(), env)
            os.rename(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        os.close(lock)
    return dest


def _uv(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        last = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise BuildError(
            f"Installing session tools failed: {last or f'uv exited {done.returncode}'}",
            hint="Check that PyPI is reachable (pip's configuration is honoured).",
        )
