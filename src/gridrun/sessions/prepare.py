"""A session's environment and working copy, made exactly as a run's.

A session from a project goes through the submission pipeline of ``grid run``
(:func:`gridrun.submission.prepare`: snapshot, dependency inference, the same
environment key), so a session and a run of the same code share one cached
environment. Given a folder rather than a script, the dependencies are inferred
from every ``.py`` file in it. ``--from RUN|EXPERIMENT`` takes that run's recorded
spec (snapshot, environment, datastores) instead, to debug an experiment where it
failed: an experiment's working directory, where it still exists, becomes the
session's working copy, with what the experiment left in it; once it is gone, the
files the experiment wrote (its artifacts) are laid over the snapshot.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from gridrun.errors import UnsupportedError, UsageError
from gridrun.home import GridHome
from gridrun.specs import BuildRequest, RunSpec
from gridrun.submission import Confirm, RunRequest, Warn

# Where a session can run: this machine's processes, or a container of the run's image
# (``sessions/container.py``). Ray and Slurm would need a server on a node and a
# tunnel to it; they are refused at submission.
BACKENDS = ("local", "docker")


@dataclass
class SessionRequest:
    """What ``grid session create`` was asked, CLI options merged."""

    target: str | None = None  # a script or a folder; None: the current folder
    name: str | None = None
    backend: str | None = None  # None: local, or the backend of the run given --from
    from_ref: str | None = None  # a run or an experiment name
    cpus: float | None = None
    gpus: int | None = None
    memory: str | None = None
    instance_type: str | None = None
    datastores: list[tuple[str, int | None, str | None]] = field(default_factory=list)
    idle_seconds: float | None = None
    vscode: bool = False  # VS Code in the browser too (code-server, ``vscode.py``)
    base_image: str | None = None  # docker: the run image's base, as ``grid run --base_image``


@dataclass
class Prepared:
    """The session's spec and environment key, and the run it came from, if any."""

    spec: RunSpec
    env_key: str
    env_ref: str | None  # the run's environment, already built (--from)
    from_run: str | None
    from_workdir: Path | None  # an experiment's working directory to start from
    backend: str = "local"


def check_backend(name: str) -> None:
    if name not in BACKENDS:
        raise UnsupportedError(
            f"Sessions run on the local and docker backends only; '{name}' cannot host one yet.",
            hint="Pass --backend local (the default) or --backend docker.",
        )


def prepare(req: SessionRequest, home: GridHome, warn: Warn, confirm: Confirm) -> Prepared:
    """Resolve the session's spec; build nothing, record nothing."""
    if req.backend is not None:
        check_backend(req.backend)
    if req.vscode and req.backend == "docker":
        raise UnsupportedError(
            "--vscode: VS Code runs in local sessions only, not yet in a container.",
            hint="Leave out --vscode, or pass --backend local.",
        )
    if req.base_image and req.backend != "docker":
        raise UsageError("--base_image names a Docker image: pass --backend docker with it.")
    if req.from_ref:
        if req.target:
            raise UsageError("Give either --from or a script or folder, not both.")
        return _from_run(req, home)
    target = Path(req.target) if req.target else Path.cwd()
    if not target.exists():
        raise UsageError(f"{target} does not exist.", hint="Pass a script or a project folder.")
    if target.is_dir():
        localdir, script = target.absolute(), ""
    else:
        localdir, script = target.absolute().parent, target.name
    from gridrun.submission import prepare as prepare_run

    run_req = RunRequest(
        script=script,
        script_args=[],
        localdir=str(localdir),
        backend=req.backend or "local",
        cpus=req.cpus if req.cpus is not None or req.gpus else 1,
        gpus=req.gpus,
        memory=req.memory,
        instance_type=req.instance_type,
        datastores=list(req.datastores),
        ignore_warnings=True,
        base_image=req.base_image,
    )
    sub = prepare_run(run_req, home, warn, confirm)
    return Prepared(sub.spec, sub.env_key, None, None, None, run_req.backend)


def _from_run(req: SessionRequest, home: GridHome) -> Prepared:
    """A recorded run's spec and environment, with any datastores asked on top."""
    from gridrun.backends import get_backend
    from gridrun.datastores import resolve
    from gridrun.store.db import Store

    store = Store.reader(home.db_path)
    try:
        ref = req.from_ref or ""
        run = store.find_run(ref)
        workdir = None
        if run is None:
            exp = store.find_experiment(ref)
            if exp is None:
                raise UsageError(
                    f"No run or experiment named '{ref}'.",
                    hint="`grid history` lists runs; `grid status RUN` their experiments.",
                )
            run = store.get_run_by_id(exp.run_id)
            # Where it failed: its working directory while it exists, else the files
            # it wrote (its artifacts) over the snapshot.
            for candidate in (
                home.experiment(exp.name).workdir,
                home.experiment(exp.name).artifacts,
            ):
                if candidate.is_dir():
                    workdir = candidate
                    break
    finally:
        store.close()
    backend = req.backend or run.backend
    if run.backend not in BACKENDS or backend != run.backend:
        raise UnsupportedError(
            f"Run {run.name} ran on {run.backend}; a session from it runs where it ran, "
            "on the local or docker backend only.",
            hint=f"Leave out --backend, or pass --backend {run.backend}."
            if run.backend in BACKENDS
            else None,
        )
    if req.base_image:
        raise UsageError("--base_image with --from: the run's image is used as it is.")
    spec = run.spec
    extra = [resolve(home, n, v, m) for n, v, m in req.datastores]
    if extra:
        spec = replace(spec, datastores=(*spec.datastores, *extra))
    key = get_backend(backend, home).environment_key(
        BuildRequest.for_run(run.name, spec, home.objects)
    )
    # A local run's environment is reused while its folder exists; an image is found
    # (or rebuilt) by its tag when the session starts.
    reusable = backend == "local" and run.env_ref and Path(run.env_ref).is_dir()
    env_ref = run.env_ref if reusable else None
    return Prepared(spec, key, env_ref, run.name, workdir, backend)


def build_environment(home: GridHome, name: str, prepared: Prepared, log: Warn) -> str:
    """The session's environment: the run's own, or built (or found cached) as a run's:
    a virtualenv's folder on local, the run's image tag on docker."""
    if prepared.env_ref:
        return prepared.env_ref
    from gridrun.backends import get_backend

    backend = get_backend(prepared.backend, home)
    return backend.build(BuildRequest.for_run(name, prepared.spec, home.objects), log)


def make_working_copy(home: GridHome, spec: RunSpec, dest: Path, workdir: Path | None) -> None:
    """The session's own copy of the code: the snapshot, or an experiment's leftovers."""
    if dest.exists():
        return  # a resumed session keeps what was written in it
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if workdir is not None and workdir.name == "workdir":
        shutil.copytree(workdir, tmp, symlinks=True)
    else:
        from gridrun.project import materialize

        materialize(spec.snapshot_manifest, home.objects, tmp)
        if workdir is not None:  # an ended experiment's artifacts, over its code
            shutil.copytree(workdir, tmp, symlinks=True, dirs_exist_ok=True)
    tmp.rename(dest)
