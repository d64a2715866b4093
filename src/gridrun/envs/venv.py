"""Cached, content-addressed virtualenvs built with uv: ``GRID_HOME/envs/<key>/``.

An environment is built once per key and then shared by every run and experiment
that asks for the same key, so the rules are about never using a broken one:

* the build happens in ``envs/.tmp-<key>-<random>`` and is published with one
  ``os.rename``; the completion marker (``.grid-complete``, JSON metadata) is written
  before that rename, so a folder named ``<key>`` without it is a leftover from
  something else and is replaced, never used;
* ``envs/<key>.lock`` (``fcntl.flock``, released by the kernel when a builder dies)
  makes a second builder of the same key wait and then reuse the first one's result;
* a cached environment is found with one ``stat``: no lock, no subprocess.

uv is the one shipped in the ``uv`` Python package (``uv.find_uv_bin()``); it never
downloads interpreters (``UV_PYTHON_DOWNLOADS=never``) and keeps its cache in
``GRID_HOME/cache/uv`` (:func:`uv_cache_dir`), never the user's ``~/.cache/uv``.

Why a cache of our own: uv hard-links an environment's files from its cache, so a file
of the cache and the same file of every environment built from it are one inode. The
user's cache is writable by every experiment (it runs as the user): one run appending
to ``~/.cache/uv/archive-v0/*/six.py`` changed ``six`` for every later run (issue 21).
``GRID_HOME`` is covered by an empty tmpfs inside each experiment's namespace
(``datastores/nsexec.py``), so a cache there is out of every run's reach, and the
run's environment is an overlay whose cached lower layer it cannot write either.
Copying instead of linking (``UV_LINK_MODE=copy``) would leave the user's cache itself
writable, and so every later build poisoned, and costs each environment a full copy:
``benchmarks/bench_env_cache.py`` measured, for numpy and pandas, 1.03 s and 122 MB
per environment copied against 0.61 s and 0.6 MB linked from a warm private cache,
whose own first build took 0.94 s (downloading) and which holds 114 MB once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gridrun.envs.key import count_packages, python_minor
from gridrun.envs.pipconf import PipConfig
from gridrun.envs.uvoutput import (
    Chatter,
    failing_line,
    failure_message,
    last_meaningful,
    requirement_name,
)
from gridrun.errors import BuildError, NotFoundError, StateError
from gridrun.specs import TorchBuild

MARKER = ".grid-complete"
# The key of an environment that got PyPI's torch because the chosen build's index
# could not be reached: the key proper, with this after it.
TORCH_FALLBACK_SUFFIX = "-pypi-torch"
LAST_USED = ".grid-last-used"
REQUIREMENTS_FILE = ".grid-requirements.txt"
TMP_PREFIX = ".tmp-"

Log = Callable[[str], None]

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NO_PYTHON = re.compile(
    r"No interpreter found|Failed to inspect Python interpreter|No Python found|"
    r"not found in managed installations|Python downloads are not allowed"
)


class PythonNotFound(BuildError):
    """The Python asked for is not installed on this machine (uv downloads none)."""


@dataclass(frozen=True)
class EnvInfo:
    """One cached environment, as ``grid`` lists it."""

    key: str
    path: Path
    size: int  # bytes on disk (files counted once per environment)
    created: float  # epoch seconds
    last_used: float
    python: str  # the interpreter version inside, e.g. "3.11.7"
    requirements: tuple[str, ...]


def venv_python(env_path: Path) -> Path:
    """The interpreter of an environment built here."""
    return env_path / "bin" / "python"


def build_venv(
    envs_dir: Path,
    key: str,
    python: str,
    requirements: Sequence[str],
    log: Log,
    pip: PipConfig | None = None,
    best_effort: bool = False,
    checks: Sequence[str] = (),
    oldest_python: str = "",
    torch_build: TorchBuild | None = None,
) -> Path:
    """Return ``envs_dir/<key>``, building it first unless a complete one exists.

    ``python`` is what ``uv venv --python`` accepts ("3.11", a path); ``requirements``
    are requirements-file lines, option lines included. ``pip`` is the user's pip
    configuration to honour (None: uv's own defaults). ``best_effort`` (requirements
    inferred from imports, never declared ones): a line that cannot be installed is
    relaxed, then dropped with a warning, and the build goes on with the rest.
    ``checks``: dotted names the code imports, made to resolve by version repair
    (:mod:`gridrun.envs.repair`). ``oldest_python`` ("3.6"; best effort only): when an
    installed package fails on a standard-library name its Python removed, the build
    starts again with the newest installed Python that has it, not older than this.
    ``torch_build``: the PyTorch index the torch packages come from
    (:mod:`gridrun.envs.torchbuild`). Raises :class:`BuildError`.
    """
    if not _KEY.fullmatch(key):
        raise ValueError(f"invalid environment key {key!r}")
    fallback = ""
    if torch_build is not None and torch_build.index_url:
        if pip is not None and pip.effective().no_index:  # no index at all: not PyTorch's
            torch_build = None
        else:
            fallback = _torch_fallback(torch_build, python, pip)
    if fallback:
        # PyPI's build stands in under a key of its own: the environment of the key
        # proper holds the chosen build, so the run after the index answers again
        # builds that instead of reusing this stand-in (and one that keeps failing
        # to answer reuses the stand-in rather than download it again).
        key = f"{key}{TORCH_FALLBACK_SUFFIX}"
    final = envs_dir / key
    if (final / MARKER).is_file():
        return _reuse(final, key, log)
    try:
        envs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(
            f"Cannot create the environments folder {envs_dir} ({exc.strerror or exc}).",
            hint="Set GRID_HOME to a folder you can write to.",
        ) from exc
    with _key_lock(envs_dir, key, log):
        if (final / MARKER).is_file():  # built by the process we waited for
            return _reuse(final, key, log)
        _clean_leftovers(envs_dir, key, log)
        return _build(
            envs_dir,
            key,
            python,
            list(requirements),
            log,
            pip,
            best_effort,
            list(checks),
            oldest_python,
            torch_build,
            fallback,
        )


def _torch_fallback(build: TorchBuild, python: str, pip: PipConfig | None) -> str:
    """The warning a build logs when ``build``'s index cannot be reached now; else "".

    Asked on every build, reuses included: one request for the index's torch page
    (milliseconds when it answers), the price of never reusing a stand-in once it does.
    """
    from gridrun.envs.torchbuild import default_build_download, fallback_warning, reachable

    why = reachable(build.index_url)
    if why is None:
        return ""
    return fallback_warning(build, why, default_build_download(python, pip))


def list_envs(envs_dir: Path) -> list[EnvInfo]:
    """Every complete environment, most recently used first."""
    if not envs_dir.is_dir():
        return []
    out = []
    for entry in envs_dir.iterdir():
        marker = entry / MARKER
        if entry.name.startswith(".") or not marker.is_file():
            continue
        try:
            meta = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        created = float(meta.get("created") or marker.stat().st_mtime)
        used = entry / LAST_USED
        out.append(
            EnvInfo(
                key=entry.name,
                path=entry,
                size=_disk_usage(entry),
                created=created,
                last_used=used.stat().st_mtime if used.exists() else created,
                python=str(meta.get("python_version", "")),
                requirements=tuple(meta.get("requirements", ())),
            )
        )
    return sorted(out, key=lambda e: e.last_used, reverse=True)


def remove_env(envs_dir: Path, key: str) -> None:
    """Delete one environment; waits for a build of the same key to finish first."""
    final = envs_dir / key
    if not _KEY.fullmatch(key) or not final.is_dir():
        raise NotFoundError(f"No cached environment {key!r}.", hint="See `grid envs` for keys.")
    with _key_lock(envs_dir, key, lambda _line: None):
        if final.is_dir():
            _discard(final, envs_dir, key)


def remove_idle_env(envs_dir: Path, key: str) -> bool:
    """Delete one environment unless a build of that key holds its lock now (``grid gc``).

    Never waits: a key being built is in use by a run about to be recorded. True when
    it was removed.
    """
    final = envs_dir / key
    if not _KEY.fullmatch(key) or not final.is_dir():
        return False
    fd = os.open(envs_dir / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not final.is_dir():
            return False
        _discard(final, envs_dir, key)
        return True
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- internals
def _reuse(final: Path, key: str, log: Log) -> Path:
    log(f"Reusing cached environment {key}")
    for warning in build_warnings(final):
        log(warning)  # what the build dropped or pinned holds for every run using it
    used = final / LAST_USED
    try:
        os.utime(used)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            used.touch()
    except OSError:
        pass  # a read-only cache is still usable
    return final


@contextlib.contextmanager
def _key_lock(envs_dir: Path, key: str, log: Log) -> Iterator[None]:
    """Hold ``envs_dir/<key>.lock`` exclusively (the kernel drops it if we die)."""
    fd = os.open(envs_dir / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"Waiting for another process that is building environment {key}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _clean_leftovers(envs_dir: Path, key: str, log: Log) -> None:
    """Remove what interrupted builds left: ours now, others' when nobody holds them."""
    final = envs_dir / key
    if final.exists():
        log(f"Replacing incomplete environment {key} (no completion marker)")
        _discard(final, envs_dir, key)
    for entry in envs_dir.iterdir():
        if not entry.name.startswith(TMP_PREFIX):
            continue
        owner = entry.name[len(TMP_PREFIX) :].rsplit("-", 1)[0].removesuffix("-rm")
        if owner == key:
            log(f"Removing unfinished build {entry.name} left by an interrupted build")
            shutil.rmtree(entry, ignore_errors=True)
        elif _KEY.fullmatch(owner) and _unlocked(envs_dir / f"{owner}.lock"):
            shutil.rmtree(entry, ignore_errors=True)


def _unlocked(lock: Path) -> bool:
    """True when no process is building that key (checked without waiting)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _discard(path: Path, envs_dir: Path, key: str) -> None:
    """Unpublish atomically (rename), then delete at leisure."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    doomed = envs_dir / f"{TMP_PREFIX}{key}-rm-{secrets.token_hex(4)}"
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def uv_cache_dir(envs_dir: Path) -> Path:
    """The uv cache environments are built from: in ``GRID_HOME``, hidden from runs.

    Never the user's own (``UV_CACHE_DIR``, ``~/.cache/uv``), which experiments can
    write (see the module doc). On the same file system as ``envs/``, so uv's hard
    links work and an environment takes no space beyond what the cache holds.
    """
    path = envs_dir.parent / "cache" / "uv"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _build(
    envs_dir: Path,
    key: str,
    python: str,
    requirements: list[str],
    log: Log,
    pip: PipConfig | None,
    best_effort: bool = False,
    checks: list[str] | None = None,
    oldest_python: str = "",
    torch_build: TorchBuild | None = None,
    torch_fallback: str = "",
) -> Path:
    from uv import find_uv_bin

    uv = find_uv_bin()
    count = count_packages(requirements)
    log(
        f"Building environment {key} with Python {python_minor(python)}: "
        f"{count} package{'' if count == 1 else 's'}"
    )
    env = dict(os.environ)
    if pip is not None:
        if pip.sources:
            log(f"Using pip configuration from {', '.join(pip.sources)}")
        for note in pip.missing():
            log(note)
        env.update(pip.uv_env())
    env.update(UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1", NO_COLOR="1")
    env.update(UV_CACHE_DIR=str(uv_cache_dir(envs_dir)), UV_LINK_MODE="hardlink")
    started = time.time()
    notes: list[str] = []  # why the Python was stepped down, kept for every later run
    if torch_fallback:  # kept with the environment: every run reusing it says so
        notes.append(torch_fallback)
        log(torch_fallback)
        torch_build = None
    torch_args = _torch_args(torch_build, requirements, envs_dir, key, log)
    for step in range(MAX_PYTHON_STEPS + 1):
        tmp = envs_dir / f"{TMP_PREFIX}{key}-{secrets.token_hex(4)}"
        try:
            warnings, pins = _populate(
                uv,
                tmp,
                python,
                requirements,
                env,
                envs_dir,
                log,
                pip,
                best_effort,
                checks,
                torch_args,
            )
            older = None
            if best_effort and checks and oldest_python and step < MAX_PYTHON_STEPS:
                older = _older_python(tmp, python, checks, oldest_python, envs_dir)
            if older is not None and older[0] is None:
                warnings.append(older[1])
                log(older[1])
            elif older is not None and older[0] is not None:
                notes.append(older[1])
                log(older[1])
                shutil.rmtree(tmp, ignore_errors=True)
                python = older[0]
                # The pins version repair chose hold there too (and spare it the steps).
                requirements = [*requirements, *(p for p in pins if p not in requirements)]
                continue
            _write_marker(tmp, key, python, requirements, pip, started, [*notes, *warnings])
            os.rename(tmp, envs_dir / key)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        break
    if torch_args:
        shutil.rmtree(Path(torch_args[1]).parent, ignore_errors=True)
    _fsync_dir(envs_dir)
    return envs_dir / key


def _populate(
    uv: str,
    tmp: Path,
    python: str,
    requirements: list[str],
    env: dict[str, str],
    envs_dir: Path,
    log: Log,
    pip: PipConfig | None,
    best_effort: bool,
    checks: list[str] | None,
    torch_args: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """Create the virtualenv in ``tmp`` and install into it: (warnings, repair pins)."""
    python2 = python_minor(python).startswith("2.")
    if python2:
        _create_python2_venv(uv, python, tmp, env, envs_dir, log)
    else:
        _create_venv(uv, python, tmp, env, envs_dir, log)
    warnings: list[str] = []
    pins: list[str] = []
    if not count_packages(requirements):
        (tmp / REQUIREMENTS_FILE).write_text("", encoding="utf-8")
        return warnings, pins
    extra = pip.uv_args() if pip is not None else []
    argv = [uv, "pip", "install", "--python", str(venv_python(tmp)), *extra, *torch_args]
    if python2:  # uv does not install into Python 2; the env's own pip does
        argv = [str(venv_python(tmp)), "-m", "pip", "install", "--no-input"]
        argv += ["--disable-pip-version-check", "--progress-bar", "off"]
    installer = _Installer(argv, tmp / REQUIREMENTS_FILE, env, envs_dir, log)
    imports = sorted({c.split(".")[0] for c in checks or []})
    installer.install(requirements, best_effort, warnings, imports)
    if checks:
        from gridrun.envs.repair import Repairer

        repairer = Repairer(
            venv_python(tmp),
            installer.add,
            envs_dir.parent / "cache",
            python_minor(python),
            log,
            envs_dir,
        )
        pins = repairer.repair(checks, warnings)
    return warnings, pins


MAX_PYTHON_STEPS = 2  # older Pythons tried in turn for packages that need one


def _torch_args(
    build: TorchBuild | None,
    requirements: Sequence[str],
    envs_dir: Path,
    key: str,
    log: Log,
) -> list[str]:
    """``-r <pyproject.toml>`` that takes torch from the build's index.

    The file lives beside the environments (``<key>.torch/``), outside the folder that
    is renamed into place, so every install of the build (version repair's too) reads
    it. (:func:`build_venv` checked that the index answers.)
    """
    from gridrun.envs.torchbuild import sources_project

    if build is None or not build.index_url:
        if build is not None:
            log(build.describe())
        return []
    log(f"{build.describe()}, from {build.index_url}")
    folder = envs_dir / f"{TMP_PREFIX}{key}-torch"
    folder.mkdir(parents=True, exist_ok=True)
    names = [requirement_name(r) for r in requirements if not r.startswith("-")]
    project = folder / "pyproject.toml"
    project.write_text(sources_project(build, names), encoding="utf-8")
    return ["-r", str(project)]


def _older_python(
    env_path: Path, python: str, checks: list[str], oldest: str, cwd: Path
) -> tuple[str | None, str] | None:
    """An older installed Python the environment's packages need: (X.Y, warning).

    None when the packages import (or fail for other reasons); ``(None, warning)`` when
    the Python they need is older than the code allows or is not installed here.
    """
    from gridrun.envs.pyselect import choose_python
    from gridrun.envs.repair import python_needed

    current = _minor_tuple(python_minor(python))
    floor = _minor_tuple(oldest)
    if current is None or floor is None:
        return None
    need = python_needed(venv_python(env_path), checks, cwd)
    if need is None or need[0] >= current:
        return None
    newest, why = need
    needed = f"{newest[0]}.{newest[1]}"
    why = f"{why}, which Python {needed} is the last to have"
    warning = f"Warning: the environment needs Python {needed} or older ({why}); "
    if floor > newest:
        return None, warning + f"the code itself needs Python {floor[0]}.{floor[1]} or newer"
    chosen = choose_python(newest, max(floor, (3, 6)))
    if chosen is None:
        return None, warning + "none is installed here"
    return chosen, f"Warning: using Python {chosen} for the environment: {why}"


def _minor_tuple(minor: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d+)\.(\d+)", minor)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _create_venv(uv: str, python: str, tmp: Path, env: dict[str, str], cwd: Path, log: Log) -> None:
    # --seed: the run's environment has its own pip, so `pip install x` in a run's
    # script (or `python -m pip`, `pip freeze`) acts on that environment, not on ours.
    argv = [uv, "venv", "--python", python, "--relocatable", "--seed", str(tmp)]
    rc, lines = _run(argv, env, cwd, log)
    if rc != 0 and _NO_PYTHON.search("\n".join(lines)):
        # uv stops at the first ``pythonX.Y`` on PATH; a pyenv shim for a version
        # that is installed but not selected fails there, so try pyenv's copy.
        alt = _pyenv_python(python)
        if alt is not None:
            log(f"Using {alt} instead")
            shutil.rmtree(tmp, ignore_errors=True)
            argv[3] = str(alt)
            rc, lines = _run(argv, env, cwd, log)
    if rc == 0:
        return
    minor = python_minor(python)
    if _NO_PYTHON.search("\n".join(lines)):
        raise PythonNotFound(
            f"Python {python} was not found on this machine.",
            hint=f"To fix: install Python {minor} or pass --python with an installed version.",
        )
    raise BuildError(f"Could not create a virtualenv: {last_meaningful(lines)}")


def _create_python2_venv(
    uv: str, python: str, tmp: Path, env: dict[str, str], cwd: Path, log: Log
) -> None:
    """A Python 2.7 environment: uv cannot make one, virtualenv before 20.22 can.

    virtualenv runs through ``uv tool run`` (fetched once into uv's tool cache) and
    seeds pip 20.3, the last pip for Python 2, which then installs the requirements.
    """
    from gridrun.envs.pyselect import python_path

    exe = python_path(python_minor(python))
    if exe is None:
        raise PythonNotFound(
            f"Python {python} was not found on this machine.",
            hint="Install Python 2.7 (e.g. with pyenv) or pass --python with another version.",
        )
    argv = [uv, "tool", "run", "--from", "virtualenv<20.22", "virtualenv"]
    argv += ["--python", str(exe), str(tmp)]
    rc, lines = _run(argv, env, cwd, log)
    if rc != 0:
        raise BuildError(f"Could not create a Python 2 virtualenv: {last_meaningful(lines)}")


def _pyenv_python(python: str) -> Path | None:
    minor = python_minor(python)
    if not re.fullmatch(r"\d+\.\d+", minor):
        return None
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            exe = entry / "bin" / f"python{minor}"
            if re.fullmatch(rf"{re.escape(minor)}\.\d+", entry.name) and exe.exists():
                found.append((int(entry.name.rsplit(".", 1)[1]), exe))
    return max(found)[1] if found else None


HEARTBEAT_SECONDS = 3.0  # the longest a long step goes without a line in the build log


def _run(
    argv: list[str], env: dict[str, str], cwd: Path, log: Log, progress: Log | None = None
) -> tuple[int, list[str]]:
    """Run uv, logging every stdout and stderr line the moment it arrives.

    A step that prints nothing for a while (uv downloads and installs quietly with
    ``UV_NO_PROGRESS``: torch's CUDA wheels take minutes) gets a line every
    :data:`HEARTBEAT_SECONDS` on ``progress`` (``log`` unless given), saying what it is
    doing and for how long, so a build never looks stuck. uv's chatter is dropped.
    """
    lines: queue.Queue[str | None] = queue.Queue()
    heartbeat = progress if progress is not None else log
    chatter = Chatter()
    started = time.monotonic()
    last = ""  # what uv said last: what it is doing now

    def pump(stream: IO[str]) -> None:
        for line in stream:
            lines.put(line.rstrip("\r\n"))
        lines.put(None)

    seen: list[str] = []
    with subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    ) as proc:  # closes both pipes and waits, whatever happens
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            threading.Thread(target=pump, args=(stream,), daemon=True)
            for stream in (proc.stdout, proc.stderr)
        ]
        for t in pumps:
            t.start()
        try:
            open_streams = len(pumps)
            while open_streams:
                try:
                    line = lines.get(timeout=HEARTBEAT_SECONDS)
                except queue.Empty:
                    heartbeat(_still(argv, last, time.monotonic() - started))
                    continue
                if line is None:
                    open_streams -= 1
                    continue
                seen.append(line)
                if not chatter.drop(line):
                    last = line
                    log(line)
        except BaseException:
            proc.kill()
            raise
        finally:
            for t in pumps:
                t.join(timeout=5)
    return proc.returncode, seen


def _still(argv: Sequence[str], last: str, elapsed: float) -> str:
    """``Still downloading and installing, 35 s so far``: a heartbeat line."""
    if "venv" in argv[1:3]:
        doing = "creating the virtualenv"
    elif "--dry-run" in argv:
        doing = "checking a requirement"
    elif last.startswith("Resolved"):
        doing = "downloading and installing"
    elif last.startswith(("Prepared", "Installed", "Uninstalled", "Audited")):
        doing = "installing"
    else:
        doing = "resolving and installing"
    return f"Still {doing}, {elapsed:.0f} s so far"


def _write_marker(
    tmp: Path,
    key: str,
    python: str,
    requirements: list[str],
    pip: PipConfig | None,
    started: float,
    warnings: list[str] | None = None,
) -> None:
    meta = {
        "warnings": warnings or [],
        "key": key,
        "python": python,
        "python_version": _pyvenv_value(tmp, "version_info"),
        "uv": _pyvenv_value(tmp, "uv"),
        "requirements": requirements,
        "pip_fingerprint": pip.fingerprint() if pip is not None else None,
        "created": time.time(),
        "build_seconds": round(time.time() - started, 3),
    }
    (tmp / LAST_USED).touch()
    with open(tmp / MARKER, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())


def build_warnings(env_path: Path) -> list[str]:
    """The warnings its build recorded (requirements dropped, pins relaxed or repaired)."""
    try:
        meta = json.loads((env_path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    found = meta.get("warnings") if isinstance(meta, dict) else None
    return [str(w) for w in found] if isinstance(found, list) else []


class _Installer:
    """``uv pip install -r`` of the requirement lines, best effort where asked."""

    def __init__(self, argv: list[str], req_file: Path, env: dict[str, str], cwd: Path, log: Log):
        self.argv = argv
        self.req_file = req_file
        self.env = env
        self.cwd = cwd
        self.log = log

    def run(self, lines: list[str]) -> tuple[int, list[str]]:
        self.req_file.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        return _run([*self.argv, "-r", str(self.req_file)], self.env, self.cwd, self.log)

    def add(self, lines: list[str]) -> tuple[int, list[str]]:
        """Install more into the environment (version repair's tries), quietly."""
        probe = self.req_file.with_name(".grid-repair.txt")
        probe.write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
        try:
            return _run(
                [*self.argv, "-r", str(probe)], self.env, self.cwd, lambda _l: None, self.log
            )
        finally:
            probe.unlink(missing_ok=True)

    def install(
        self,
        requirements: list[str],
        best_effort: bool,
        warnings: list[str],
        imports: Sequence[str] = (),
    ) -> None:
        """Install the lines; best effort: relax, drop, or try another distribution.

        ``imports``: the code's top-level imports. A dropped distribution that was
        chosen for one of them gives way to the next candidate for that import (a few
        at most), since the first choice among namesakes is sometimes an old stub.
        """
        lines = list(requirements)
        tried: list[str] = []
        # Each round removes, relaxes or replaces one line (replacements are bounded),
        # so this ends; the bound is a safeguard.
        for _ in range(2 * len(lines) + 2 + 2 * MAX_ALTERNATIVES):
            rc, output = self.run(lines)
            if rc == 0:
                return
            message = failure_message(output)
            culprit = failing_line(output, lines)
            if not best_effort:  # declared: the message names the failing requirement
                raise BuildError(message, hint=_STRICT_HINT)
            if culprit is None:
                pinned = [ln for ln in lines if "==" in ln and not ln.startswith("-")]
                if not pinned:
                    culprit = self.first_failing_alone(lines)
                if culprit is None and not pinned:
                    raise BuildError(message, hint=_STRICT_HINT)
            if culprit is None:
                # A conflict among pins copied from this machine: let the resolver choose.
                lines = [ln.split("==")[0] if ln in pinned else ln for ln in lines]
                self._warn(warnings, f"relaxed the pins {', '.join(pinned)}: {message}")
                continue
            name = requirement_name(culprit)
            message = re.sub(r"^Could not install '[^']*': ", "", message)
            if "==" in culprit and not culprit.startswith("-"):
                lines[lines.index(culprit)] = name
                self._warn(warnings, f"relaxed {culprit} to {name}: {message}")
                continue
            lines.remove(culprit)
            tried.append(name)
            alternative = None
            if imports and len(tried) <= MAX_ALTERNATIVES:
                from gridrun.deps import alternative_for

                alternative = alternative_for(name, imports, tried)
            if alternative is not None:
                lines.append(alternative[0])
                message += f"; trying {alternative[0]} for import {alternative[1]} instead"
            self._warn(warnings, f"dropped {name}: {message}")
            if not any(not ln.startswith("-") for ln in lines):
                return
        raise BuildError("Too many failed attempts to install the inferred requirements.")

    def first_failing_alone(self, lines: list[str]) -> str | None:
        """The first line that fails on its own (the cause named was a dependency of it)."""
        options = [ln for ln in lines if ln.startswith("-")]
        for line in lines:
            if line.startswith("-"):
                continue
            probe = self.req_file.with_name(".grid-probe.txt")
            probe.write_text("".join(f"{x}\n" for x in [*options, line]), encoding="utf-8")
            rc, _ = _run(
                [*self.argv, "--dry-run", "-r", str(probe)], self.env, self.cwd, lambda _l: None
            )
            probe.unlink(missing_ok=True)
            if rc != 0:
                return line
        return None

    def _warn(self, warnings: list[str], text: str) -> None:
        line = inferred_warning(text)
        warnings.append(line)
        self.log(line)


def inferred_warning(text: str) -> str:
    """The build-log line for what best effort did to an inferred requirement.

    ``Warning: `` lines are what the agent keeps for ``grid status RUN``; the Docker
    backend words what an image build dropped the same way.
    """
    return f"Warning: inferred requirement {text}"


MAX_ALTERNATIVES = 3  # other distributions tried for imports whose first choice failed
_STRICT_HINT = "Fix the requirement (see the build log for uv's output)."


def _pyvenv_value(env_path: Path, name: str) -> str:
    with contextlib.suppress(OSError):
        for line in (env_path / "pyvenv.cfg").read_text(encoding="utf-8").splitlines():
            k, _, v = line.partition("=")
            if k.strip() == name:
                return v.strip()
    return ""


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _disk_usage(path: Path) -> int:
    total = 0
    seen: set[tuple[int, int]] = set()
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total
