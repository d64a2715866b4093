"""``grid session ssh``: a shell or a command in a session.

On docker it is ``docker exec`` in the session's container (interactive, with a TTY
when this side has one), in its working copy: the container is the confinement, and
its image's environment is first on ``PATH`` already. A paused session has no
container, so it is refused with the command that resumes it.

On local:
No sshd: on this machine the user already has a shell, so the command is started
directly, confined as the session's JupyterLab is (GRID_HOME hidden, datastores
read-only), in its working copy, with its environment first on ``PATH``. The
environment gets a copy-on-write layer of its own (``shell-layer``): overlayfs does
not allow one upper folder under two live mounts, so what ``pip install`` does in
a shell reaches later shells, not the notebooks' kernel.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gridrun.errors import UsageError
from gridrun.home import GridHome
from gridrun.sessions import server
from gridrun.specs import RunSpec
from gridrun.store import sessions as table
from gridrun.store.db import Store
from gridrun.store.models import SessionStatus


def run_in_session(store: Store, home: GridHome, name: str, argv: list[str]) -> int:
    """Run ``argv`` (a login shell when empty) in the session; its exit status."""
    from gridrun.datastores import local_confinement

    session = table.get(store, name)
    if session.status == SessionStatus.STARTING:
        raise UsageError(f"Session {name} is still starting.", hint="Try again in a moment.")
    if session.backend == "docker":
        return _docker_exec(home, session.name, session.status, argv)
    layout = server.Layout.of(home, name)
    venv = Path(session.env_ref or "")
    if not layout.work.is_dir() or not venv.is_dir():
        raise UsageError(
            f"Session {name} has no working copy or environment.",
            hint="Delete it and create it again.",
        )
    spec = RunSpec.from_dict(session.spec)
    command = argv or [os.environ.get("SHELL") or "/bin/bash"]
    env = server.server_env(
        dict(os.environ), layout, venv, home, session.id, "", spec.resources.gpus
    )
    env.pop("JUPYTER_TOKEN", None)
    confine, extra = local_confinement(
        command,
        list(spec.datastores),
        layout.work,
        hide=home.root,
        keep_rw=[layout.jupyter],
        env_layer=(venv, layout.shell_layer),
    )
    env.update(extra)
    try:
        return subprocess.call(command, cwd=layout.work, env=env, preexec_fn=confine)
    except FileNotFoundError:
        raise UsageError(f"No command '{command[0]}' in session {name}.") from None


def _docker_exec(home: GridHome, name: str, status: SessionStatus, argv: list[str]) -> int:
    import shutil
    import sys

    from gridrun.sessions.container import exec_argv, host_user

    if status != SessionStatus.RUNNING:
        raise UsageError(
            f"Session {name} is {status.value}: it has no container to run in.",
            hint=f"`grid session resume {name}` starts it again.",
        )
    if shutil.which("docker") is None:
        raise UsageError(
            "`grid session ssh` on a docker session runs `docker exec`, and there is no "
            "docker command on PATH.",
            hint="Install Docker's CLI (Debian: docker.io or docker-cli).",
        )
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    return subprocess.call(exec_argv(home.root, name, argv, tty, host_user()))
