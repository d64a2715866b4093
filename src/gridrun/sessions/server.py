"""A session's JupyterLab server: its command, its start, its activity and its stop.

The server runs from the cached JupyterLab environment (``tools.py``); its one
kernel runs the session's environment's Python. It is confined as a local
experiment is (``datastores.mount.local_confinement``): GRID_HOME hidden except
the working copy, the session's Jupyter folders and the tools (read-only), datastores
mounted read-only, and the cached environment under a copy-on-write layer of the
session's own (``pip install`` in a notebook reaches only the session).

Bound to 127.0.0.1 with a random token, under ``/sessions/<name>/``, the prefix the
dashboard proxies. The token travels in ``JUPYTER_TOKEN``, never on the command line
(where ``ps`` shows it). Every process of the session carries ``GRID_SESSION_ID``
in its environment, which is how :func:`stop` finds kernels and terminals too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridrun.errors import BackendError
from gridrun.home import GridHome
from gridrun.processes import ProcessRef, terminate_all
from gridrun.specs import RunSpec

SESSION_MARK = "GRID_SESSION_ID"
START_TIMEOUT = 180.0  # JupyterLab's first start on a loaded 2-core machine


@dataclass(frozen=True)
class Layout:
    """Where one session keeps its files, under ``GRID_HOME/sessions/<name>``."""

    root: Path

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def jupyter(self) -> Path:
        return self.root / "jupyter"

    @property
    def layer(self) -> Path:
        return self.root / "env-layer"

    @property
    def shell_layer(self) -> Path:
        return self.root / "shell-layer"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @classmethod
    def of(cls, home: GridHome, name: str) -> Layout:
        return cls(home.session_dir(name))


def base_url(name: str) -> str:
    return f"/sessions/{name}/"


def python_minor(venv: Path) -> str:
    """The environment's Python as "3.11", from ``pyvenv.cfg`` (no interpreter started)."""
    for line in (venv / "pyvenv.cfg").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version_info", "version"):
            return ".".join(value.strip().split(".")[:2])
    raise BackendError(f"{venv} has no Python version in its pyvenv.cfg.")


def write_kernel_spec(layout: Layout, argv: list[str], minor: str) -> None:
    """The session's only kernel, in its own JUPYTER_DATA_DIR: the run's Python."""
    kdir = layout.jupyter / "data" / "kernels" / "python3"
    kdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": argv,
        "display_name": f"Python {minor} (run environment)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    (kdir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")


def server_argv(tool: Path, name: str, port: int, work: Path) -> list[str]:
    """JupyterLab's command line (a pure function: what it is asked is tested as text)."""
    argv = [
        # Not bin/jupyter-lab: its #! names the folder the environment was built in
        # before it was renamed into place.
        str(tool / "bin" / "python"),
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={base_url(name)}",
        f"--ServerApp.root_dir={work}",
        # Only the session's kernel: not the one of JupyterLab's own environment.
        "--KernelSpecManager.ensure_native_kernel=False",
        "--MappingKernelManager.default_kernel_name=python3",
        # No calls home from a machine that may have no network.
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    return argv


def server_env(
    base: dict[str, str],
    layout: Layout,
    venv: Path,
    home: GridHome,
    session_id: int,
    token: str,
    gpus: int = 0,
) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith(("JUPYTER", "PYTHON"))}
    env.pop("__PYVENV_LAUNCHER__", None)
    env.update(
        JUPYTER_TOKEN=token,
        JUPYTER_CONFIG_DIR=str(layout.jupyter / "config"),
        JUPYTER_DATA_DIR=str(layout.jupyter / "data"),
        JUPYTER_RUNTIME_DIR=str(layout.jupyter / "runtime"),
        IPYTHONDIR=str(layout.jupyter / "ipython"),
        # Inside a virtualenv jupyter_core puts the environment's folders before the
        # user's: JupyterLab's own ipykernel "python3" would hide the session's.
        JUPYTER_PREFER_ENV_PATH="0",
        VIRTUAL_ENV=str(venv),
        PATH=f"{venv / 'bin'}{os.pathsep}{base.get('PATH', '/usr/bin:/bin')}",
        GRID_HOME=str(home.root),
        **{SESSION_MARK: str(session_id)},
    )
    if gpus == 0:  # as an experiment without GPUs: an empty value hides every device
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    home: GridHome,
    name: str,
    session_id: int,
    spec: RunSpec,
    venv: Path,
    tool: Path,
    packages: Path,
    token: str,
    code_server: Path | None = None,
) -> tuple[str, int]:
    """Start the server detached, confined; return its process handle and port.

    With ``code_server`` (the cached tool), JupyterLab also serves VS Code under
    ``vscode/``, started by jupyter-server-proxy as its own child (``vscode.py``).
    """
    from gridrun.datastores import local_confinement

    layout = Layout.of(home, name)
    for sub in ("config", "data", "runtime", "ipython"):
        (layout.jupyter / sub).mkdir(parents=True, exist_ok=True)
    from gridrun.sessions.tools import kernel_argv

    write_kernel_spec(layout, kernel_argv(venv / "bin" / "python", packages), python_minor(venv))
    config = layout.jupyter / "config" / "jupyter_server_config.json"
    config.unlink(missing_ok=True)  # a session resumed without VS Code serves none
    if code_server is not None:
        from gridrun.sessions.vscode import write_proxy_config

        write_proxy_config(config.parent, code_server, layout.jupyter / "vscode", layout.work)
    port = free_port()
    argv = server_argv(tool, name, port, layout.work)
    env = server_env(dict(os.environ), layout, venv, home, session_id, token, spec.resources.gpus)
    confine, extra = local_confinement(
        argv,
        list(spec.datastores),
        layout.work,
        hide=home.root,
        keep_ro=[tool, packages, *([code_server] if code_server is not None else [])],
        keep_rw=[layout.jupyter],
        env_layer=(venv, layout.layer),
    )
    env.update(extra)
    with open(layout.log, "ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=layout.work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `grid session create`
            preexec_fn=confine,
        )
    ref = ProcessRef.of(proc.pid)
    return (ref.dump() if ref is not None else f"{proc.pid} 0"), port


def api_status(port: int, name: str, token: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """Jupyter's ``/api/status`` (last_activity, connections, kernels); None if no answer."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{base_url(name)}api/status",
        headers={"Authorization": f"token {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = json.loads(resp.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return data if isinstance(data, dict) else None


def wait_ready(home: GridHome, name: str, handle: str, port: int, token: str) -> None:
    """Until JupyterLab answers; a server that dies first is an error with its log's end."""
    ref = ProcessRef.parse(handle)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if api_status(port, name, token, timeout=2.0) is not None:
            return
        if ref is None or not ref.alive():
            break
        time.sleep(0.1)
    log = Layout.of(home, name).log
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
    raise BackendError(
        f"JupyterLab for session {name} did not start: {' '.join(tail) or 'no output'}",
        hint=f"Its whole log is {log}.",
    )


def session_processes(home: GridHome, session_id: int) -> list[ProcessRef]:
    """Every process carrying the session's mark: the server, kernels, terminals."""
    from gridrun.processes import marked_processes

    return marked_processes({"GRID_HOME": str(home.root), SESSION_MARK: str(session_id)})


def stop(home: GridHome, session_id: int, handle: str | None, grace: float = 10.0) -> None:
    """SIGTERM the server (it shuts its kernels down), then whatever of it is left."""
    ref = ProcessRef.parse(handle) if handle else None
    if ref is not None:
        terminate_all([ref], grace)
    terminate_all(session_processes(home, session_id), grace)
