"""A session on the Docker backend: JupyterLab in a container of the session image.

The container (of ``sessions/image.py``'s image, so the kernel is the run's Python
with the run's packages) is confined as an experiment's container is
(``backends/docker/backend.py``): GRID_HOME is not in it at all, datastores are bound
read-only where runs find them, the same dropped capabilities and
``no-new-privileges``, tini as PID 1. The session's working copy
(``GRID_HOME/sessions/NAME/work``) is bound over ``/gridai/project``, and its Jupyter
folders over ``/gridai/jupyter``, so both outlive the container: pause removes it,
resume starts a new one on the same files.

JupyterLab listens on the container's port 8888, published on 127.0.0.1 only, on a
port the engine chooses (no race with another process for a port picked here),
under ``/sessions/<name>/``, the prefix the dashboard proxies, with its token in
``JUPYTER_TOKEN`` (not on a command line). Labels mark the container with the
session and GRID_HOME, which is how gridrun finds it again.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridrun.backends.docker.dockerfile import PROJECT_DIR
from gridrun.errors import BackendError
from gridrun.home import GridHome
from gridrun.sessions.image import JUPYTERLAB
from gridrun.sessions.server import START_TIMEOUT, Layout, api_status, base_url
from gridrun.specs import RunSpec

PORT = 8888
JUPYTER_DIR = "/gridai/jupyter"
HANDLE = "docker:"  # the store's pid column holds "docker:<container id>"


@dataclass(frozen=True)
class ContainerSpec:
    """Everything the engine is asked for one session container (a pure value)."""

    name: str
    image: str
    command: list[str]
    environment: dict[str, str]
    labels: dict[str, str]
    binds: dict[str, dict[str, str]]
    nano_cpus: int | None = None
    mem_limit: int | None = None  # bytes
    gpus: int = 0
    user: str | None = None  # "uid:gid" of a non-root host user; None: the image's (root)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def container_name(home_root: Path, name: str) -> str:
    from gridrun.backends.docker.backend import home_label

    return f"gridrun-{home_label(home_root)[:8]}-session-{name}"


def session_labels(home_root: Path, name: str, session_id: int) -> dict[str, str]:
    from gridrun.backends.docker.backend import home_label

    return {
        "gridrun": "1",
        "gridrun.session": name,
        "gridrun.session_id": str(session_id),
        "gridrun.home": home_label(home_root),
    }


def host_user() -> str | None:
    """Who the container runs as: this user's uid:gid, unless that is root.

    The working copy is bound from the host, so what JupyterLab and the kernel write
    there must belong to whoever runs gridrun, or `grid session delete` could not
    remove it. Root keeps the image's user (root), as an experiment's container does.
    """
    uid = os.geteuid()
    return None if uid == 0 else f"{uid}:{os.getegid()}"


def server_command(name: str, root: bool = True) -> list[str]:
    """JupyterLab's command line in the container (as ``server.server_argv`` on local)."""
    return [
        f"{JUPYTERLAB}/bin/python",
        "-m",
        "jupyterlab",
        "--no-browser",
        *(["--allow-root"] if root else []),  # the container's root, confined as an experiment's
        "--ServerApp.ip=0.0.0.0",  # the container's side; the host publishes on loopback
        f"--ServerApp.port={PORT}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={base_url(name)}",
        f"--ServerApp.root_dir={PROJECT_DIR}",
        "--KernelSpecManager.ensure_native_kernel=False",
        "--MappingKernelManager.default_kernel_name=python3",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]


def jupyter_environment() -> dict[str, str]:
    return {
        "JUPYTER_CONFIG_DIR": f"{JUPYTER_DIR}/config",
        "JUPYTER_DATA_DIR": f"{JUPYTER_DIR}/data",
        "JUPYTER_RUNTIME_DIR": f"{JUPYTER_DIR}/runtime",
        "IPYTHONDIR": f"{JUPYTER_DIR}/ipython",
    }


def container_spec(
    home_root: Path,
    name: str,
    session_id: int,
    spec: RunSpec,
    image: str,
    layout: Layout,
    user: str | None = None,
) -> ContainerSpec:
    """The session container's request; the token is added at start, never recorded.

    ``user``: :func:`host_user`; such a user gets ``HOME`` in the session's Jupyter
    folder, the one place it may write besides the working copy."""
    from gridrun.backends.docker.backend import datastore_mounts

    binds, env = datastore_mounts(list(spec.datastores))
    binds[str(layout.work.absolute())] = {"bind": PROJECT_DIR, "mode": "rw"}
    binds[str(layout.jupyter.absolute())] = {"bind": JUPYTER_DIR, "mode": "rw"}
    env.update(jupyter_environment())
    if user is not None:
        env["HOME"] = f"{JUPYTER_DIR}/home"
    gpus = spec.resources.gpus
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(gpus)) if gpus else ""
    cpus = spec.resources.cpus
    return ContainerSpec(
        name=container_name(home_root, name),
        image=image,
        command=server_command(name, root=user is None),
        environment=dict(sorted(env.items())),
        labels=session_labels(home_root, name, session_id),
        binds=binds,
        nano_cpus=int(cpus * 1e9) if cpus else None,
        mem_limit=spec.resources.memory or None,
        gpus=gpus,
        user=user,
    )


def start(api: Any, cs: ContainerSpec, token: str) -> tuple[str, int]:
    """Create and start the container; its id and the host port JupyterLab answers on."""
    import docker.errors
    from docker.types import DeviceRequest

    from gridrun.backends.docker.backend import DROPPED_CAPS

    with contextlib.suppress(docker.errors.APIError):  # a leftover of an earlier start
        api.remove_container(cs.name, force=True)
    host_config = api.create_host_config(
        binds=cs.binds,
        port_bindings={PORT: ("127.0.0.1",)},  # the engine picks a free host port
        nano_cpus=cs.nano_cpus,
        mem_limit=cs.mem_limit,
        device_requests=[DeviceRequest(count=cs.gpus, capabilities=[["gpu"]])] if cs.gpus else None,
        init=True,
        cap_drop=list(DROPPED_CAPS),
        security_opt=["no-new-privileges"],
    )
    try:
        created = api.create_container(
            image=cs.image,
            command=cs.command,
            working_dir=PROJECT_DIR,
            environment={**cs.environment, "JUPYTER_TOKEN": token},
            labels=cs.labels,
            host_config=host_config,
            name=cs.name,
            ports=[PORT],
            user=cs.user or "",
            stdin_open=False,
            tty=False,
        )
        cid = str(created["Id"])
        api.start(cid)
        published = api.port(cid, PORT) or []
    except docker.errors.APIError as exc:
        raise BackendError(
            f"The session container could not start: {exc.explanation or exc}."
        ) from exc
    ports = [int(p["HostPort"]) for p in published if p.get("HostIp") in ("127.0.0.1", "")]
    if not ports:
        raise BackendError(f"The engine published no port for container {cs.name}.")
    return cid, ports[0]


def container_id(handle: str | None) -> str | None:
    return handle[len(HANDLE) :] if handle and handle.startswith(HANDLE) else None


def find(api: Any, home_root: Path, session_id: int) -> list[dict[str, Any]]:
    """The session's containers (any state), by their labels."""
    labels = session_labels(home_root, "", session_id)
    wanted = [f"{k}={labels[k]}" for k in ("gridrun.home", "gridrun.session_id")]
    return list(api.containers(all=True, filters={"label": wanted}))


def running(home_root: Path, session_id: int) -> bool | None:
    """Whether the session's container runs; None when the engine does not answer."""
    from gridrun.backends.docker.backend import connect

    try:
        api = connect(timeout=10)
    except BackendError:
        return None
    try:
        return any(c.get("State") == "running" for c in find(api, home_root, session_id))
    except Exception:
        return None
    finally:
        api.close()


def remove(home_root: Path, session_id: int, grace: float = 10.0) -> None:
    """Stop (SIGTERM, then SIGKILL after ``grace``) and remove the session's containers."""
    import docker.errors

    from gridrun.backends.docker.backend import connect

    api = connect()
    try:
        for c in find(api, home_root, session_id):
            with contextlib.suppress(docker.errors.NotFound):
                api.stop(c["Id"], timeout=max(1, int(grace)))
                api.remove_container(c["Id"], force=True)
    except docker.errors.APIError as exc:
        raise BackendError(f"Removing the session's container failed: {exc}.") from exc
    finally:
        api.close()


def wait_ready(api: Any, name: str, cid: str, port: int, token: str) -> None:
    """Until JupyterLab answers; a container that exits first is an error with its log."""
    import docker.errors

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if api_status(port, name, token, timeout=2.0) is not None:
            return
        try:
            if api.inspect_container(cid)["State"]["Status"] != "running":
                break
        except docker.errors.NotFound:
            break
        time.sleep(0.1)
    try:
        tail = api.logs(cid, tail=3).decode(errors="replace").split()
    except docker.errors.APIError:
        tail = []
    raise BackendError(
        f"JupyterLab for session {name} did not start: {' '.join(tail) or 'no output'}",
        hint=f"`docker logs {cid[:12]}` shows its whole log.",
    )


def image_present(tag: str) -> bool:
    """Whether the engine has ``tag`` (an engine that does not answer says so itself)."""
    from gridrun.backends.docker.backend import DockerBackend, connect
    from gridrun.backends.docker.image import find_image

    DockerBackend().check_available()
    api = connect()
    try:
        return bool(tag) and find_image(api, tag) is not None
    finally:
        api.close()


def start_session(
    home: GridHome, name: str, session_id: int, spec: RunSpec, run_tag: str, token: str, log: Any
) -> tuple[str, int]:
    """The session image (built once), then its container; (handle, port) once it answers."""
    from gridrun.backends.docker.backend import DockerBackend, connect
    from gridrun.sessions.image import build_session_image

    DockerBackend(home).check_available()
    layout = Layout.of(home, name)
    for sub in ("config", "data", "runtime", "ipython", "home"):
        (layout.jupyter / sub).mkdir(parents=True, exist_ok=True)
    api = connect()
    try:
        image = build_session_image(api, run_tag, home.root, log)
        cs = container_spec(home.root, name, session_id, spec, image, layout, host_user())
        cid, port = start(api, cs, token)
        wait_ready(api, name, cid, port, token)
    finally:
        api.close()
    return HANDLE + cid, port


def exec_argv(
    home_root: Path, name: str, argv: list[str], tty: bool, user: str | None = None
) -> list[str]:
    """``docker exec`` of ``argv`` (a shell when empty) in the session's container, as
    the user its JupyterLab runs as."""
    shell = ["/bin/sh", "-c", "command -v bash >/dev/null && exec bash || exec sh"]
    flags = ["-i", "-t"] if tty else ["-i"]
    if user is not None:
        flags += ["-u", user]
    return [
        "docker",
        "exec",
        *flags,
        "-w",
        PROJECT_DIR,
        container_name(home_root, name),
        *(argv or shell),
    ]
