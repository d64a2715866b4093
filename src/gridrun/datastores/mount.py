"""Showing datastores to a local-backend experiment, read-only, without copying them.

:func:`local_mount_command` wraps the experiment's command in ``nsexec.py`` (see
there) when a private mount namespace can be made, and otherwise falls back to a
symlink to the version's tree, whose files are 0444 and folders 0555: that stops
every user but root. The mode is probed once per process, end to end (namespace,
bind, read-only remount, a write that must fail with EROFS), and can be forced with
``GRIDRUN_DATASTORE_ISOLATION=root|user|none``.

Where the experiment sees a datastore: at its mount dir when that folder can be
created (``/datastores/NAME`` needs root or a writable ``/datastores``), else at
``<workdir>/datastores/NAME``; ``GRID_DATASTORE_<NAME>_DIR`` names the place in
both cases. A mount dir made on the host is left there, empty, after the run:
removing it while another experiment's namespace has a datastore mounted on it would
detach that mount (Linux >= 3.18 lazily unmounts on rmdir), and Docker leaves its
bind-mount targets the same way.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridrun.datastores.names import env_var
from gridrun.errors import DatastoreError
from gridrun.fsutil import atomic_write_text
from gridrun.specs import DatastoreMount

NSEXEC = Path(__file__).with_name("nsexec.py")
MODES = ("root", "user", "none")


def wrapper() -> list[str]:
    """How nsexec.py is started: isolated, without ``site`` (stdlib only: see its module
    doc), and imported rather than run as a script, so that its cached bytecode is used
    (a script is compiled at every start, as long as importing ``ctypes``). Its folder
    goes last on ``sys.path``: the standard library it imports is never shadowed."""
    code = (
        f"import sys; sys.path.append({str(NSEXEC.parent)!r}); import nsexec; "
        "sys.exit(nsexec.main(sys.argv[1:]))"
    )
    return [sys.executable, "-S", "-I", "-c", code]


_probed: str | None = None  # this process's probe, made once


def isolation_mode() -> str:
    """``root``, ``user`` (a private mount namespace works) or ``none``."""
    global _probed
    forced = _forced_mode()
    if forced is not None:
        return forced
    if _probed is None:
        _probed = _probe()
    return _probed


def _forced_mode() -> str | None:
    """``GRIDRUN_DATASTORE_ISOLATION``, when it names a mode (read as the Slurm runner
    reads it)."""
    from gridrun.datastores import nsexec

    return nsexec.forced_mode()


def _probe() -> str:
    candidates = ["root", "user"] if os.geteuid() == 0 else ["user"]
    for mode in candidates:
        folder = tempfile.mkdtemp(prefix="gridrun-probe-")
        try:
            proc = subprocess.run(
                [*wrapper(), "--probe", mode, folder],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            if proc.returncode == 0 and proc.stdout.strip() == "ok":
                return mode
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return "none"


def node_isolation_mode(folder: Path) -> str:
    """:func:`isolation_mode`, probed once per node and boot, remembered in ``folder``.

    For processes that each run one experiment and then exit (a Slurm task): the probe
    starts a Python of its own, more CPU than the rest of such a task. The record
    (``nsexec.node_record``) is keyed by the node's name, its boot, the user and the
    Python. ``folder`` must be private to its owner (GRID_HOME is; experiments never
    see it): whoever writes the record decides how experiments are confined.
    """
    from gridrun.datastores import nsexec

    global _probed
    forced = _forced_mode()
    if forced is not None:
        return forced
    known = nsexec.read_node_mode(str(folder))
    if known is not None:
        _probed = known
        return known
    mode = isolation_mode()
    path, key = nsexec.node_record(str(folder))
    if key.split("\n")[1]:  # without a boot id, a record could outlive a change
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write_text(Path(path), f"{mode}\n{key}\n", fsync=False)
    return mode


def _make_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return path.is_dir() and not path.is_symlink()


def _wanted(m: DatastoreMount, workdir: Path) -> Path:
    target = Path(m.mount_dir)
    return target if target.is_absolute() else workdir / target


def local_mount_command(
    argv: list[str],
    mounts: list[DatastoreMount],
    workdir: Path,
    *,
    mode: str | None = None,
    hide: Path | None = None,
    keep_ro: list[Path] | None = None,
    keep_rw: list[Path] | None = None,
    env_layer: tuple[Path, Path] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command to exec, wrapped in ``nsexec.py`` when needed, and the variables.

    For a caller that execs the command through a wrapper process; the local backend's
    supervisor uses :func:`local_confinement` instead (the same, without the wrapper).
    """
    args, env = _plan(argv, mounts, workdir, mode, hide, keep_ro, keep_rw, env_layer)
    if args is None:
        return list(argv), env
    return [*wrapper(), *args, "--", *argv], env


def local_confinement(
    argv: list[str], mounts: list[DatastoreMount], workdir: Path, **options: Any
) -> tuple[Callable[[], None] | None, dict[str, str]]:
    """What :func:`local_mount_command` does, as a ``preexec_fn`` for ``Popen(argv)``:
    :func:`confinement_args` (whose keywords it takes) made into :func:`preexec`."""
    args, env = confinement_args(argv, mounts, workdir, **options)
    return preexec(args, argv), env


def preexec(args: list[str] | None, argv: list[str]) -> Callable[[], None] | None:
    """``nsexec``'s options (:func:`confinement_args`) as a ``preexec_fn`` for ``argv``.

    The forked child makes the namespace and mounts itself (``nsexec.child_setup``)
    and then execs the experiment's own command: no second interpreter per start,
    which was most of the CPU each local experiment cost to start (issue 12). None
    when nothing is to be confined (no namespace can be made here).
    """
    from gridrun.datastores import nsexec

    if args is None:
        return None
    return functools.partial(nsexec.child_setup, nsexec.Plan([*args, "--", *argv]))


def confinement_args(
    argv: list[str],
    mounts: list[DatastoreMount],
    workdir: Path,
    *,
    mode: str | None = None,
    hide: Path | None = None,
    keep_ro: list[Path] | None = None,
    keep_rw: list[Path] | None = None,
    env_layer: tuple[Path, Path] | None = None,
    pidns: bool = False,
    scratch: tuple[str, int] | None = None,
) -> tuple[list[str] | None, dict[str, str]]:
    """``nsexec``'s options (``--mode`` first; None: nothing to confine) and the
    variables the experiment gets with them. ``pidns``: the command's first child
    starts a PID namespace (the local backend's exit witness forks the experiment's
    init there)."""
    args, env = _plan(argv, mounts, workdir, mode, hide, keep_ro, keep_rw, env_layer)
    if args is None:
        return None, env
    if pidns:  # the forked command's own child is the PID namespace's init
        args.append("--pidns")
    if scratch is not None:  # a size-capped tmpfs at that path (Grid's scratch space)
        args += ["--scratch", scratch[0], str(scratch[1])]
        env["GRID_SCRATCH_DIR"] = scratch[0]
    return args, env


def _plan(
    argv: list[str],
    mounts: list[DatastoreMount],
    workdir: Path,
    mode: str | None,
    hide: Path | None,
    keep_ro: list[Path] | None,
    keep_rw: list[Path] | None,
    env_layer: tuple[Path, Path] | None,
) -> tuple[list[str] | None, dict[str, str]]:
    """``nsexec.py``'s options (None: nothing to wrap) and the ``GRID_DATASTORE_*`` variables.

    ``hide`` (GRID_HOME) is covered in the experiment's namespace, except ``workdir`` and
    ``keep_ro`` (read-only) inside it; with a namespace, the experiment
    also loses the capabilities that could remount (see ``nsexec.py``). So an experiment
    is wrapped whenever a namespace can be made, with or without datastores.

    ``env_layer`` (the run's cached environment, a folder of the experiment's own):
    inside the namespace the environment gets a writable overlay whose changes land in
    that folder, so the cache stays as built while ``pip install`` in the run works
    (see ``nsexec.py``). Without a namespace the environment is used as it is.
    """
    mode = mode or isolation_mode()
    if mode not in MODES:
        raise ValueError(f"unknown isolation mode {mode!r}")
    env: dict[str, str] = {}
    plan: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    for m in sorted(mounts, key=lambda m: len(Path(m.mount_dir).parts)):
        source = Path(m.source)
        if not source.is_dir():
            raise DatastoreError(
                f"Datastore {m.name} version {m.version} is gone from {source}.",
                hint="It was deleted after submission; recreate it and run again.",
            )
        target = _link(m, source, workdir) if mode == "none" else _mount_point(m, workdir)
        if str(target) in seen:
            raise DatastoreError(
                f"Datastores {seen[str(target)]} and {m.name} would be mounted at the same "
                f"folder {target}.",
                hint="Give one of them another --datastore_mount_dir.",
            )
        seen[str(target)] = m.name
        env[env_var(m.name)] = str(target)
        plan.append({"name": m.name, "src": str(source), "dst": str(target)})
    if mode == "none" or not (plan or hide):
        return None, env
    args = ["--mode", mode]
    if hide is not None:
        for path in [workdir, *(keep_rw or [])]:
            if _within(Path(path), hide):
                args += ["--rw", os.path.realpath(path)]
        for path in keep_ro or []:
            if _within(Path(path), hide):
                args += ["--ro", os.path.realpath(path)]
        args += ["--hide", os.path.realpath(hide)]
    if env_layer is not None:
        args += ["--layer", os.path.realpath(env_layer[0]), os.path.realpath(env_layer[1])]
    for point in plan:
        args += ["--mount", point["name"], point["src"], point["dst"]]
    return args, env


def remove_env_layer(folder: Path) -> None:
    """Remove a run's layer (see ``env_layer``): overlayfs leaves its ``work/work``
    folder mode 0, which stops an unprivileged owner's ``rmtree``."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for dirpath, dirnames, _files in os.walk(folder, onerror=lambda exc: None):
        for d in dirnames:
            path = os.path.join(dirpath, d)
            if not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.chmod(path, 0o700)
    shutil.rmtree(folder, ignore_errors=True)


def _within(path: Path, folder: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return real.startswith(base + os.sep)


def _fallback(m: DatastoreMount, workdir: Path) -> Path:
    return workdir / "datastores" / m.name


def _mount_point(m: DatastoreMount, workdir: Path) -> Path:
    """An (empty, on the host) folder to bind-mount on inside the namespace."""
    wanted = _wanted(m, workdir)
    if _make_dir(wanted):
        return wanted
    fallback = _fallback(m, workdir)
    if not _make_dir(fallback):
        raise DatastoreError(f"Cannot create a mount point for datastore {m.name} in {workdir}.")
    return fallback


def _link(m: DatastoreMount, source: Path, workdir: Path) -> Path:
    """No namespace: a symlink to the shared read-only tree (no copy either)."""
    wanted, fallback = _wanted(m, workdir), _fallback(m, workdir)
    if fallback.is_dir() and not fallback.is_symlink():
        try:
            fallback.rmdir()  # an empty mount point of an earlier namespaced run: ours
        except OSError:
            pass
    for place in (wanted, fallback):
        if place.is_symlink():
            current = os.readlink(place)
            if current == str(source):
                return place  # another experiment of the same version made it
            if current.endswith("/files") and not place.exists():
                place.unlink()  # left by a run of a version deleted since
        if place.exists() or place.is_symlink():
            continue
        try:
            place.parent.mkdir(parents=True, exist_ok=True)
            place.symlink_to(source, target_is_directory=True)
            return place
        except OSError:
            continue
    raise DatastoreError(f"Cannot show datastore {m.name} to the experiment in {workdir}.")
