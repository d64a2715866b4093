"""The Docker backend: one cached image per run, one container per experiment.

Images come from :mod:`gridrun.backends.docker.image`. Each experiment is a container labelled
with its run, experiment and GRID_HOME (so it is found again by labels after any
process died), with the job's CPU, memory and GPU limits, env vars and read-only
datastore mounts, running ``python <script> <args>`` (or ``bash``) in
``/gridai/project`` exactly as the local backend does. Output comes from the engine
with its timestamps, stdout and stderr each in their own thread. When the experiment
ends, ``/gridai/project`` is copied out and compared with the snapshot to save the
artifacts, then the container is removed.

The engine may restart under a running experiment: every blocking call then breaks,
:meth:`DockerBackend.execute` waits (at most ``ENGINE_GRACE`` seconds) for the engine
to answer again and returns the exit code it recorded for the container, as a
preemption (``TerminationReason.ENGINE_RESTARTED``). A preempted container's ``/gridai/project`` is
copied out and put back into the restarted one, so it resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gridrun.backends.base import (
    AttemptResult,
    Backend,
    BuildLog,
    BuildRequest,
    Capabilities,
    Job,
    TerminationReason,
    collect_workdir,
)
from gridrun.backends.docker.dockerfile import PROJECT_DIR
from gridrun.datastores.names import env_var
from gridrun.errors import BackendError
from gridrun.home import GridHome
from gridrun.logs import LogSink

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
ENGINE_GRACE = 60.0  # seconds to wait for a restarting engine
API_TIMEOUT = 60  # seconds for one control call (not for log streams or wait)
API_VERSION = "1.41"  # Docker 20.10 (Debian's docker.io) and every later engine speak it


def engine_url() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def connect(timeout: int | None = API_TIMEOUT) -> Any:
    """A low-level client for the engine at DOCKER_HOST (TLS settings from the env)."""
    import docker

    try:
        return docker.APIClient(
            **docker.utils.kwargs_from_env(), version=API_VERSION, timeout=timeout
        )
    except docker.errors.DockerException as exc:
        raise _unavailable(exc) from exc


def _unavailable(exc: BaseException) -> BackendError:
    url = engine_url()
    text = str(exc)
    if "Permission denied" in text or "PermissionError" in text:
        return BackendError(
            f"Permission denied on the Docker engine at {url}.",
            hint="Add your user to the 'docker' group (then log in again) or pass --backend local.",
        )
    return BackendError(
        f"No Docker engine answers at {url}. Start one (sudo systemctl start docker, "
        "or dockerd &) or pass --backend local."
    )


def _probe_socket() -> None:
    """Fail fast, and without leaking a socket (the SDK does), on a dead unix socket."""
    import socket

    url = engine_url()
    if not url.startswith("unix://"):
        return
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(3)
    try:
        sock.connect(url[len("unix://") :])
    except OSError as exc:
        raise _unavailable(exc) from exc
    finally:
        sock.close()


def home_label(home_root: Path) -> str:
    """A short hash of GRID_HOME: containers of two homes never meet."""
    return hashlib.sha256(str(Path(home_root).absolute()).encode()).hexdigest()[:12]


def container_name(job: Job, home_root: Path) -> str:
    raw = f"gridrun-{home_label(home_root)[:8]}-{job.experiment_name}"
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", raw)


DROPPED_CAPS = ("SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_MODULE", "SYS_RAWIO")


def job_labels(job: Job, home_root: Path) -> dict[str, str]:
    return {
        "gridrun": "1",
        "gridrun.run": job.run_name,
        "gridrun.experiment": job.experiment_name,
        "gridrun.experiment_id": str(job.experiment_id),
        "gridrun.home": home_label(home_root),
    }


def datastore_mounts(datastores: list[Any]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Read-only binds of a job's (or a session's) datastores, and the variables that
    name where each is inside the container."""
    binds: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for d in datastores:
        inside = d.mount_dir if d.mount_dir.startswith("/") else f"{PROJECT_DIR}/{d.mount_dir}"
        binds[str(Path(d.source).absolute())] = {"bind": inside, "mode": "ro"}
        # The experiment finds each datastore as on every backend (gridrun.datastores).
        env[env_var(d.name)] = inside
    return binds, env


def parse_timestamp(stamp: str) -> float | None:
    """Epoch seconds of the engine's RFC 3339 (nanosecond) log timestamps."""
    try:
        head, _, frac = stamp.partition(".")
        frac = frac.rstrip("Z")
        when = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        return when.timestamp() + (float(f"0.{frac}") if frac.isdigit() else 0.0)
    except ValueError:
        return None


def _transient(exc: BaseException) -> bool:
    """An error that means the engine went away (as opposed to a refusal)."""
    import docker.errors
    import requests.exceptions

    if isinstance(exc, requests.exceptions.RequestException | ConnectionError | OSError):
        return True
    if isinstance(exc, BackendError):  # from _probe_socket: nothing listens (yet)
        return True
    if isinstance(exc, docker.errors.APIError) and not isinstance(exc, docker.errors.NotFound):
        return exc.is_server_error()
    return False


class DockerBackend(Backend):
    name = "docker"
    # Containers share this machine's CPUs, memory and GPUs, and keep running when
    # their supervisor dies: the engine still knows them and their exit codes.
    capabilities = Capabilities(
        gpus=True,
        datastores=True,
        dockerfile=True,
        shares_machine=True,
        survives_supervisor=True,
        torch_builds=True,
        scratch=True,  # a tmpfs mount of the container, size-capped by the engine
    )

    def __init__(self, home: GridHome | None = None) -> None:
        super().__init__(home)
        self._lock = threading.Lock()
        self._api: Any = None
        self._pumps: dict[str, tuple[list[threading.Thread], threading.Event]] = {}

    @property
    def api(self) -> Any:
        with self._lock:  # terminate() runs in another thread than execute()
            if self._api is None:
                self._api = connect()
            return self._api

    def close(self) -> None:
        """Close the engine connection (reopened on the next call)."""
        with self._lock:
            if self._api is not None:
                self._api.close()
                self._api = None

    def _check_available(self) -> None:
        _probe_socket()
        client = connect(timeout=5)
        try:
            client.ping()
        except Exception as exc:
            raise _unavailable(exc) from exc
        finally:
            client.close()

    def engine_answers(self) -> bool:
        try:
            _probe_socket()
            client = connect(timeout=3)
        except BackendError:
            return False
        try:
            client.ping()
            return True
        except Exception:
            return False
        finally:
            client.close()

    def wait_for_engine(
        self, limit: float = ENGINE_GRACE, give_up: threading.Event | None = None
    ) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and not (give_up and give_up.is_set()):
            if self.engine_answers():
                return True
            time.sleep(1.0)
        return False

    # ------------------------------------------------------------------ build
    def environment_key(self, req: BuildRequest) -> str:
        """The image tag: ``<project>-<cpu|gpu>:<snapshot hash>-<dependency hash>``."""
        from gridrun.backends.docker.image import container_pip, image_tag
        from gridrun.envs.pipconf import load_pip_config

        # The tag the build means to make: one whose PyTorch index does not answer
        # then is tagged as PyPI's build (gridrun.backends.docker.image.torch_source).
        own = req.python_env and not req.dockerfile and not req.conda_file
        build = req.torch_build if own else None
        return image_tag(req, container_pip(load_pip_config(), build))

    def _build(self, req: BuildRequest, log: BuildLog) -> str:
        from gridrun.backends.docker.image import build_image

        self.check_available()
        try:
            return build_image(self.api, req, log, self.home.root)
        finally:
            self.close()

    # -------------------------------------------------------------------- run
    def container_name(self, job: Job) -> str:
        return container_name(job, self.home.root)

    def find_container(self, job: Job) -> dict | None:
        """This experiment's container (any state), found by its labels."""
        labels = job_labels(job, self.home.root)
        found = self.api.containers(
            all=True,
            filters={"label": [f"{k}={labels[k]}" for k in ("gridrun.home", "gridrun.experiment")]},
        )
        return found[0] if found else None

    def _create(self, job: Job) -> str:
        from docker.types import DeviceRequest

        from gridrun.specs import script_command

        api = self.api
        name = self.container_name(job)
        with contextlib.suppress(Exception):  # a leftover of an earlier attempt
            api.remove_container(name, force=True)
        # Only --env values and a short allow-list (proxies, locale) cross into the
        # container; the host shell's PATH, HOME and credentials do not (gridrun.runenv).
        from gridrun.runenv import container_environment

        env = {**container_environment(self.home.root, job.run_name), **job.env}
        # GPU visibility is this backend's business: none unless granted (below).
        env["CUDA_VISIBLE_DEVICES"] = ""
        device_requests = None
        if job.gpus > 0:
            ids = [str(g) for g in job.gpu_ids]
            device_requests = [
                DeviceRequest(device_ids=ids, capabilities=[["gpu"]])
                if ids
                else DeviceRequest(count=job.gpus, capabilities=[["gpu"]])
            ]
            # Inside the container the granted GPUs are numbered from 0.
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(ids) or job.gpus))
        binds, found = datastore_mounts(list(job.datastores))
        env.update(found)
        if job.scratch_bytes:
            env["GRID_SCRATCH_DIR"] = job.scratch_path
        host_config = api.create_host_config(
            tmpfs={job.scratch_path: f"size={job.scratch_bytes},mode=1777"}
            if job.scratch_bytes
            else None,
            nano_cpus=int(job.cpus * 1e9) if job.cpus else None,
            mem_limit=job.memory or None,
            device_requests=device_requests,
            binds=binds or None,
            init=True,  # tini as PID 1: SIGTERM reaches the script, zombies are reaped
            # Read-only datastore binds must hold against root in the container: no
            # capability that can remount (or reach the host's mounts), and no setuid
            # program to get one back. Docker's defaults omit these; say so explicitly.
            cap_drop=list(DROPPED_CAPS),
            security_opt=["no-new-privileges"],
        )
        created = api.create_container(
            image=job.env_ref,
            command=[*script_command(job.script, "python"), *job.args],
            working_dir=PROJECT_DIR,
            environment=env,
            labels=job_labels(job, self.home.root),
            host_config=host_config,
            name=name,
            stdin_open=False,
            tty=False,
        )
        if job.restart_count and job.resume_dir.is_dir():
            restore_project(api, created["Id"], job.resume_dir)
        return created["Id"]

    def _launch(self, job: Job, sink: LogSink) -> str:
        import docker.errors

        from gridrun.backends.docker.image import record_use

        try:
            cid = self._create(job)
        except docker.errors.ImageNotFound as exc:
            raise BackendError(
                f"Image {job.env_ref} is not in the engine any more.",
                hint="It was pruned: submit the run again to rebuild it.",
            ) from exc
        except docker.errors.APIError as exc:
            raise BackendError(f"Docker refused the container: {exc.explanation}") from exc
        record_use(self.home.root, job.env_ref)
        self.api.start(cid)
        done = threading.Event()
        pumps = [
            threading.Thread(target=self._pump, args=(cid, s, sink, done), daemon=True)
            for s in ("stdout", "stderr")
        ]
        for t in pumps:
            t.start()
        self._pumps[cid] = (pumps, done)
        return str(cid)

    def _wait(self, job: Job, handle: str, sink: LogSink) -> AttemptResult:
        pumps, done = self._pumps.pop(handle, ([], threading.Event()))
        try:
            result = self._wait_container(handle, sink)
        finally:
            for t in pumps:
                t.join(timeout=10.0)
            done.set()  # a pump still waiting for the engine gives up
            for t in pumps:
                t.join(timeout=5.0)
        self._report_oom(handle, job, sink)
        self.close()  # its connections may predate an engine restart; reopened on demand
        return result

    def _poll(self, job: Job, handle: str) -> AttemptResult:
        """Ask the engine on a fresh connection; "unknown" when it does not answer."""
        try:
            state = self._state(handle)
        except Exception as exc:
            if _transient(exc):
                return AttemptResult.unknown(f"no Docker engine answers at {engine_url()}")
            raise
        if state is None:
            return AttemptResult.gone("its container is not in the engine any more")
        if state.get("Running") or state.get("Restarting"):
            return AttemptResult.running()
        if state.get("Status") == "created":
            return AttemptResult.gone("its container was created but never started")
        return AttemptResult.exited(int(state.get("ExitCode", -1)))

    def _wait_container(self, cid: str, sink: LogSink) -> AttemptResult:
        """How the container ended; survives an engine restart, never waits forever."""
        while True:
            waiter = connect(timeout=None)
            try:
                code = int(waiter.wait(cid)["StatusCode"])
                if self.engine_answers():
                    return AttemptResult.exited(code)
                # dockerd shutting down closes its listeners first, then stops its
                # containers, and a wait already open still gets the exit code: a
                # fresh connection refused now means the engine ended the container
                # (a script that saves on SIGTERM exits 0). Wait for the engine, then
                # record the attempt as preempted below.
                sink.write(
                    "stderr",
                    f"gridrun: the Docker engine went away as the container ended (exit"
                    f" code {code}); waiting up to {ENGINE_GRACE:.0f}s for it to come back",
                )
            except Exception as exc:
                if not _transient(exc):
                    raise BackendError(f"Lost the experiment's container: {exc}") from exc
                sink.write(
                    "stderr",
                    f"gridrun: lost the Docker engine ({type(exc).__name__});"
                    f" waiting up to {ENGINE_GRACE:.0f}s for it to come back",
                )
            finally:
                waiter.close()
            if not self.wait_for_engine():
                raise BackendError(
                    f"The Docker engine at {engine_url()} did not come back within "
                    f"{ENGINE_GRACE:.0f}s; the experiment's exit code is unknown."
                )
            state = self._state(cid)
            if state is None:
                raise BackendError("The experiment's container is gone after an engine restart.")
            if not state.get("Running") and state.get("Status") != "created":
                code = int(state.get("ExitCode", -1))
                sink.write(
                    "stderr",
                    f"gridrun: the engine came back; the container ended with exit code {code}",
                )
                # dockerd closes its API before it stops its containers, so a container
                # that ended while the engine was away was ended by the engine: a
                # preemption (resumed under --auto_resume), not a failure of the script.
                return AttemptResult.exited(
                    code,
                    reason=TerminationReason.ENGINE_RESTARTED,
                    detail=f"the Docker engine restarted (exit code {code})",
                )

    def _state(self, cid: str) -> dict | None:
        """The container's State, on a fresh connection (pooled ones may predate a restart)."""
        import docker.errors

        _probe_socket()  # the SDK leaks a socket when it cannot connect
        client = connect()
        try:
            return client.inspect_container(cid)["State"]
        except docker.errors.NotFound:
            return None
        finally:
            client.close()

    def _report_oom(self, cid: str, job: Job, sink: LogSink) -> None:
        with contextlib.suppress(Exception):
            state = self._state(cid) or {}
            if state.get("OOMKilled"):
                sink.write(
                    "stderr",
                    f"gridrun: the container was killed for using more than "
                    f"its memory limit ({job.memory} bytes)",
                )

    def _pump(self, cid: str, stream: str, sink: LogSink, done: threading.Event) -> None:
        """Copy one of the container's streams to the sink with the engine's timestamps.

        After a broken connection it waits for the engine and follows again from the
        last timestamp seen, skipping lines already written.
        """
        last = ""
        for _attempt in range(10):
            if done.is_set():
                return
            client = None
            logs = None
            try:
                _probe_socket()
                client = connect(timeout=None)
                since = int(parse_timestamp(last) or 0) if last else None
                logs = client.logs(
                    cid,
                    stream=True,
                    follow=True,
                    timestamps=True,
                    stdout=stream == "stdout",
                    stderr=stream == "stderr",
                    since=since,
                )
                for chunk in logs:
                    for raw in chunk.decode("utf-8", errors="replace").splitlines():
                        stamp, _, text = raw.partition(" ")
                        if last and stamp <= last:
                            continue
                        sink.write(stream, text, ts=parse_timestamp(stamp))
                        last = stamp
                # Its own client: self.api belongs to the thread running execute.
                if not client.inspect_container(cid)["State"].get("Running"):
                    return
            except Exception as exc:
                if not _transient(exc) or not self.wait_for_engine(give_up=done):
                    return
            finally:
                # Close the stream's own socket too: the client does not own it.
                if logs is not None:
                    with contextlib.suppress(Exception):
                        logs.close()
                if client is not None:
                    client.close()

    def _stop(self, job: Job, handle: str, grace: float) -> None:
        """SIGTERM the container's script (tini forwards it), SIGKILL after ``grace``."""
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound):
            self.api.stop(handle, timeout=max(0, math.ceil(grace)))

    def _container_id(self, job: Job, handle: str | None) -> str | None:
        if handle is not None:
            return handle
        found = self.find_container(job)
        return found["Id"] if found is not None else None

    # -------------------------------------------------------------- artifacts
    def _collect(self, job: Job, handle: str | None, keep_workdir: bool) -> list[str]:
        """Copy /gridai/project out and keep what differs from the snapshot.

        With ``keep_workdir`` the whole copy stays in ``job.workdir``: a restarted
        container gets it back (see :func:`restore_project`).
        """
        import docker.errors

        cid = self._container_id(job, handle)
        if cid is None:
            return []
        try:
            copy_project_out(self.api, cid, job)
        except docker.errors.NotFound:
            return []
        return collect_workdir(job)

    def _release(self, job: Job, handle: str | None) -> None:
        import docker.errors

        try:
            with contextlib.suppress(docker.errors.NotFound):
                cid = self._container_id(job, handle)
                if cid is not None:
                    self.api.remove_container(cid, force=True, v=True)
        finally:
            shutil.rmtree(job.workdir, ignore_errors=True)
            self.close()


def _mount_points(job: Job) -> list[str]:
    """Datastore mount dirs inside the project, relative to it: not artifacts."""
    out = []
    for d in job.datastores:
        path = d.mount_dir if d.mount_dir.startswith("/") else f"{PROJECT_DIR}/{d.mount_dir}"
        if path.startswith(PROJECT_DIR + "/"):
            out.append(path[len(PROJECT_DIR) + 1 :].strip("/"))
    return out


def restore_project(api: Any, cid: str, folder: Path) -> None:
    """Put a preempted attempt's working directory back into a new container.

    The restart then runs the same command in the same directory, checkpoints
    included, as the local backend does by keeping the folder itself.
    """
    with tempfile.TemporaryFile() as tmp:
        with tarfile.open(fileobj=tmp, mode="w:") as tar:
            tar.add(folder, arcname=os.path.basename(PROJECT_DIR), filter=_owned_by_root)
        tmp.seek(0)
        api.put_archive(cid, os.path.dirname(PROJECT_DIR), tmp.read())


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def copy_project_out(api: Any, cid: str, job: Job) -> None:
    """Extract the container's /gridai/project into ``job.workdir``, safely.

    Regular files keep their mode and mtime; symlinks are recreated last (never
    followed while extracting); devices, fifos and paths that would escape are skipped.
    """
    dest = job.workdir
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    skip = _mount_points(job)
    stream, _stat = api.get_archive(cid, PROJECT_DIR)
    links: list[tuple[Path, str]] = []
    with tempfile.TemporaryFile(dir=job.exp_dir) as tmp:
        for chunk in stream:
            tmp.write(chunk)
        tmp.seek(0)
        with tarfile.open(fileobj=tmp, mode="r:") as tar:
            for member in tar:
                parts = member.name.split("/")[1:]  # drop the leading "project/"
                rel = "/".join(p for p in parts if p not in ("", "."))
                if (
                    not rel
                    or ".." in parts
                    or any(rel == s or rel.startswith(s + "/") for s in skip)
                ):
                    continue
                target = dest / rel
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isreg() or member.islnk():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(member)
                    if src is None:
                        continue
                    with src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
                    os.chmod(target, member.mode & 0o777)
                    os.utime(target, (member.mtime, member.mtime))
                elif member.issym():
                    links.append((target, member.linkname))
    for target, linkname in links:
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.symlink(linkname, target)
