"""Version repair: old code meets a package's newest release and finds a name gone.

Inferred requirements are unpinned where the package is not installed locally, so the
resolver picks the newest release; code written years ago imports what that release
removed (``flask.ext``, ``django.utils.encoding.python_2_unicode_compatible``). After
the environment is built, every name the code takes from a package (``from X import
name``, ``import X.sub``, ``X.attr``) is checked inside it. For each distribution with a
missing name, older releases are tried, newest first and one major (for ``0.x``, one
minor) series at a time, until the names resolve. The tries are bounded, the outcome
is cached per distribution, version, Python and names, and the chosen pin is recorded
with a warning. Names that were never there (a typo, a module of another program) are
left for the run to report: when no older release has them, the original is restored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Log = Callable[[str], None]
MAX_TRIES = 10  # release series stepped back through, per distribution
MAX_SECONDS = 300  # time spent stepping back one distribution (TensorFlow: ~1 min a try)
MAX_DEPTH = 3  # dependencies stepped back in turn for an older release to import
MAX_ADDED = 4  # rounds of adding modules that installed packages need but do not declare

# Run inside the built environment (any Python from 2.7 on): which dotted names fail,
# who owns them, and which packages fail to import for want of another module.
_CHECKER = r"""
import importlib, importlib.util, json, re, sys, warnings
try:
    from importlib.metadata import packages_distributions, version
except ImportError:
    packages_distributions = None
names = json.loads(sys.argv[1])
strict = sys.argv[2] == "strict"
owners = packages_distributions() if packages_distributions else {}
out = {}
broken = {}
gaps = {}
def absent(module):
    try:
        return importlib.util.find_spec(module.split(".")[0]) is None
    except Exception:
        return False
def lacking(exc):
    # The top-level module another distribution provides that an import could not find.
    needed = getattr(exc, "name", None)
    if not needed:  # Python 2: the name is only in the message
        found = re.match(r"No module named '?([\w.]+)", str(exc))
        needed = found.group(1) if found else None
    return needed
for name in names:
    parts = name.split(".")
    top = parts[0]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            importlib.import_module(top)
        for warning in caught:
            # torch without numpy imports, warning "Failed to initialize NumPy: No
            # module named 'numpy'", and fails later, when a tensor meets an array.
            found = re.search(r"No module named '?([\w.]+)", str(warning.message))
            if found and found.group(1).split(".")[0] != top and absent(found.group(1)):
                broken.setdefault(top, found.group(1))
    except Exception as exc:
        if strict:  # checking a step back: a release that breaks the import is no fix
            out[name] = ["", "", "import %s failed: %s" % (top, exc)]
        if isinstance(exc, ImportError):
            gone = re.match(r"cannot import name '?(\w+)'? from '?([\w.]+)'?", str(exc))
            needed = gone.group(2) + "." + gone.group(1) if gone else lacking(exc)
            if needed and needed.split(".")[0] != top:
                (broken if absent(needed) else gaps)[top] = needed
        continue  # first look: not installed, or broken for other reasons
    obj, problem, foreign = None, None, None
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError as exc:
            # torch.utils.tensorboard imports tensorboard, a distribution of its own that
            # torch does not require: the module is added, torch is not stepped back.
            # Only a name of the package itself (it has no such submodule) is a problem
            # for version repair.
            needed = lacking(exc)
            if needed and needed.split(".")[0] != top and absent(needed):
                foreign = foreign or needed
            continue
        except Exception:
            obj = None
            break
        if foreign:  # the importer is the module below the deepest one that imports
            broken.setdefault(".".join(parts[:i + 1]), foreign)
            break
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                problem = "%s has no %s" % (".".join(parts[:i]), attr)
                break
            obj = getattr(obj, attr)
        break
    if problem:
        dists = owners.get(top) or []
        if dists:
            try:
                out[name] = [dists[0], version(dists[0]), problem]
            except Exception:
                pass
print(json.dumps({"missing": out, "broken": broken, "gaps": gaps}))
"""


# Run inside the built environment (Python 3): the error each name's module raises on
# import, for the names whose module imports but fails (not the ones never installed).
_IMPORT_ERRORS = r"""
import importlib, json, sys
out = {}
for name in json.loads(sys.argv[1]):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            importlib.import_module(module)
        except ImportError as exc:
            gone = getattr(exc, "name", None)
            if gone and (module == gone or module.startswith(gone + ".")):
                continue  # that module does not exist: try its parent
            out[name] = "%s: %s" % (type(exc).__name__, exc)
        except Exception as exc:
            out[name] = "%s: %s" % (type(exc).__name__, exc)
        break
print(json.dumps(out))
"""
# Run inside the built environment: which of the modules are not installed.
_ABSENT = r"""
import importlib.util, json, sys
absent = []
for module in json.loads(sys.argv[1]):
    try:
        if importlib.util.find_spec(module) is None:
            absent.append(module)
    except Exception:
        absent.append(module)
print(json.dumps({"absent": absent}))
"""
_REMOVED_NAME = re.compile(
    r"cannot import name '?(?P<name>\w+)'? from '?(?P<mod>[\w.]+)'?"
    r"|module '(?P<amod>[\w.]+)' has no attribute '(?P<aname>\w+)'"
)


def python_needed(
    python: Path, names: Sequence[str], cwd: Path
) -> tuple[tuple[int, int], str] | None:
    """The newest Python the installed packages run on, if older than the env's, and why.

    The evidence is an installed package failing on import for a standard-library name
    its Python removed (Django 1.8 imports ``collections.Iterator``, gone in 3.10; old
    packages ``import imp``). ``(3, 9), "django.contrib.auth imports collections.Iterator"``.
    """
    from gridrun.deps.stdlib import REMOVED_NAMES, REMOVED_STDLIB

    if not names:
        return None
    data = _run_in_env(python, _IMPORT_ERRORS, [json.dumps(sorted(set(names)))], cwd)
    errors = {str(k): str(v) for k, v in (data or {}).items()}
    best: tuple[tuple[int, int], str] | None = None
    for name, error in sorted(errors.items()):
        found: tuple[int, int] | None = None
        gone = _REMOVED_NAME.search(error)
        lost = _NO_MODULE.search(error)
        if gone:
            mod = gone.group("mod") or gone.group("amod")
            stdlib_name = f"{mod}.{gone.group('name') or gone.group('aname')}"
            found = REMOVED_NAMES.get(stdlib_name)
        elif lost:
            stdlib_name = lost.group("mod")
            found = REMOVED_STDLIB.get(stdlib_name.split(".")[0])
        if found is None or found[0] < 3:
            continue
        if best is None or found < best[0]:
            module = name.rsplit(".", 1)[0] if "." in name else name
            best = (found, f"{module} imports {stdlib_name}")
    return best


@dataclass
class Check:
    """What the checker found in an environment.

    ``missing``: ``name -> [distribution, version, problem]`` for dotted names it lacks;
    ``broken``: ``top-level module -> the module its import could not find``, for an
    installed package that needs a module nothing installed provides (``keras`` without
    ``tensorflow``, ``pygame`` without a ``pkg_resources``), keyed by the submodule the
    code imports where only that one needs it (``torch.utils.tensorboard`` without
    ``tensorboard``: torch itself is not at fault, so it is not stepped back);
    ``gaps``: the same for a name that an installed dependency no longer has
    (``flask_script`` needs ``flask._compat``, gone since Flask 2).
    """

    missing: dict[str, list[str]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    gaps: dict[str, str] = field(default_factory=dict)


def check(
    python: Path, names: Sequence[str], cwd: Path, strict: bool = False, log: Log | None = None
) -> Check:
    """Import each name's package in the environment and look the names up.

    ``strict``: a top-level module that fails to import counts as missing too.
    """
    if not names:
        return Check()
    args = [json.dumps(sorted(set(names))), "strict" if strict else "lenient"]
    data = _run_in_env(python, _CHECKER, args, cwd, log)
    if data is None:
        return Check()
    missing = data.get("missing")
    broken = data.get("broken")
    gaps = data.get("gaps")
    return Check(
        {str(k): [str(x) for x in v] for k, v in dict(missing or {}).items()},
        {str(k): str(v) for k, v in dict(broken or {}).items()},
        {str(k): str(v) for k, v in dict(gaps or {}).items()},
    )


def _run_in_env(
    python: Path, script: str, args: list[str], cwd: Path, log: Log | None = None
) -> dict | None:
    """Run a checker script with the environment's Python: the last JSON object it
    printed (the packages it imports may print too), or None if it gave none.

    Importing TensorFlow or torch takes a while: ``log`` gets a line every few seconds.
    """
    from gridrun.envs.venv import HEARTBEAT_SECONDS

    started = time.monotonic()
    try:
        with subprocess.Popen(
            [str(python), "-c", script, *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_quiet_env(),
        ) as proc:
            while True:
                try:
                    stdout, _ = proc.communicate(timeout=HEARTBEAT_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    elapsed = time.monotonic() - started
                    if elapsed > 300:
                        proc.kill()
                        return None
                    if log is not None:
                        log(f"Still checking the code's imports, {elapsed:.0f} s so far")
    except OSError:
        return None
    for line in reversed(stdout.splitlines()):
        with contextlib.suppress(ValueError):
            data = json.loads(line)
            if isinstance(data, dict):
                return data
    return None


def missing_names(
    python: Path, names: Sequence[str], cwd: Path, strict: bool = False, log: Log | None = None
) -> dict[str, list[str]]:
    """``name -> [distribution, version, problem]`` for names the environment lacks."""
    return check(python, names, cwd, strict, log).missing


def _quiet_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONWARNINGS="ignore", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    return env


# ``import flask failed: cannot import name 'Markup' from 'jinja2' (/.../jinja2/__init__.py)``
_GONE = re.compile(r"cannot import name '?(?P<name>\w+)'? from '?(?P<mod>[\w.]+)'?")
_NO_MODULE = re.compile(r"No module named '?(?P<mod>[\w.]+)'?")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _last(output: list[str]) -> str:
    from gridrun.envs.uvoutput import failure_message

    return failure_message(output)


def older_bound(version: str, minor: bool = False) -> str | None:
    """The bound below ``version``'s series: ``3.2.1`` -> ``<3``, ``0.24.2`` -> ``<0.24``.

    ``minor``: the series is the minor one, ``1.11.29`` -> ``<1.11`` (once no older
    major release is left: Django 1.8 still had what 1.11 had dropped).
    """
    nums = [int(n) for n in re.findall(r"\d+", version)[:2]]
    if not nums:
        return None
    if minor:  # (a 0.x series is stepped by minor releases already)
        return f"<{nums[0]}.{nums[1]}" if nums[0] > 0 and len(nums) > 1 and nums[1] > 0 else None
    if nums[0] > 0:
        return f"<{nums[0]}"
    if len(nums) > 1 and nums[1] > 0:
        return f"<0.{nums[1]}"
    return None


class Repairer:
    """Steps packages back inside a built environment; results cached under ``cache``."""

    def __init__(
        self,
        python: Path,
        install: Callable[[list[str]], tuple[int, list[str]]],
        cache: Path | None,
        python_version: str,
        log: Log,
        cwd: Path,
    ) -> None:
        self.python = python
        self.install = install
        self.cache = cache
        self.python_version = python_version
        self.log = log
        self.cwd = cwd

    def repair(self, names: Sequence[str], warnings: list[str]) -> list[str]:
        """Pins chosen (``dist==version``), each with a warning; the env is left repaired.

        First the modules that installed packages import without declaring them are
        added (:meth:`complete`), since a package that cannot be imported cannot be
        checked for names either.
        """
        self.log(f"Checking the code's imports in the environment ({len(set(names))} names)")
        if self.complete(names, warnings):
            self.log("Checking the code's imports again, with what was added")
        found = check(self.python, names, self.cwd, log=self.log)
        missing = dict(found.missing)
        importers: set[str] = set()
        for top, lacking in sorted(found.gaps.items()):
            # A package the code imports fails on a name its dependency dropped: repair
            # the dependency, and check that the package imports after it.
            gap = missing_names(self.python, [lacking], self.cwd).get(lacking)
            if gap and gap[0]:
                missing[lacking] = gap
                missing[top] = [gap[0], gap[1], f"import {top} failed"]
                importers.add(top)
        by_dist: dict[str, tuple[str, list[str]]] = {}
        for name, (dist, version, _problem) in sorted(missing.items()):
            by_dist.setdefault(dist, (version, []))[1].append(name)
        pins: list[str] = []
        for dist, (version, wanted) in sorted(by_dist.items()):
            pin, needed = self._repair_one(dist, version, wanted)
            lacks = [n for n in wanted if n not in importers]
            shown = ", ".join(lacks[:3]) + (" ..." if len(lacks) > 3 else "")
            if pin:
                pins.append(pin)
                texts = [*needed, f"pinned {pin}: {dist} {version} has no {shown}"]
            else:
                texts = [f"no release of {dist} checked provides {shown}; kept {version}"]
            for text in texts:
                line = f"Warning: version repair {text}"
                warnings.append(line)
                self.log(line)
        return pins

    def complete(self, names: Sequence[str], warnings: list[str]) -> list[str]:
        """Add what installed packages need but do not declare; the requirements added.

        ``keras`` imports ``tensorflow`` (or another backend) without requiring it, old
        ``pygame`` imports ``pkg_resources``, ``torch.utils.tensorboard`` imports
        ``tensorboard`` and ``torch`` warns without ``numpy``: the package installs, then
        an import of it or of the submodule the code uses fails (or warns) with ``No
        module named ...``. Each such module is mapped to its distribution as
        an import in the code would be and installed, a few rounds at most (what it
        brings may need more). One that cannot be installed is left for the run to
        report.
        """
        from gridrun.deps import is_stdlib, requirement_for_import

        added: list[str] = []
        tried: set[str] = set()
        for module, name in sorted(self._absent_callees(names).items()):
            # pandas.read_excel without openpyxl: no import fails, the call will.
            tried.add(module)
            requirement = requirement_for_import(module)
            if requirement:
                top = name.split(".")[0]
                why = f"{name} needs {module}, which {top} does not require"
                added += self._add(requirement, why, warnings)
        for _ in range(MAX_ADDED):
            wanted: dict[str, str] = {}  # requirement -> the package that needs it
            found = check(self.python, names, self.cwd, log=self.log)
            for importer, needed in sorted(found.broken.items()):
                module = needed.split(".")[0]
                if module in tried or is_stdlib(module):
                    continue
                tried.add(module)
                requirement = requirement_for_import(needed)
                if requirement:
                    why = f"{importer} imports {module} without requiring it"
                    wanted.setdefault(requirement, why)
            if not wanted:
                break
            for requirement, why in wanted.items():
                added += self._add(requirement, why, warnings)
        return added

    def _add(self, requirement: str, why: str, warnings: list[str]) -> list[str]:
        """Install one requirement a package needs without declaring it: ``[it]`` or []."""
        self.log(f"Adding {requirement}: {why}")
        rc, output = self.install([requirement])
        if rc == 0:
            line = f"Warning: inferred requirement added {requirement}: {why}"
        else:
            line = f"Warning: inferred requirement {requirement} ({why}) could not"
            line += f" be installed: {_last(output)}"
        warnings.append(line)
        self.log(line)
        return [requirement] if rc == 0 else []

    def _absent_callees(self, names: Sequence[str]) -> dict[str, str]:
        """``module -> name`` for each name the code uses (:data:`NAME_NEEDS`) whose
        module the environment lacks."""
        from gridrun.deps.mapping import NAME_NEEDS

        needed: dict[str, str] = {}
        for name in sorted(set(names)):
            for key, module in NAME_NEEDS.items():
                if name == key or name.startswith(key + "."):
                    needed.setdefault(module, name)
        if not needed:
            return {}
        data = _run_in_env(self.python, _ABSENT, [json.dumps(sorted(needed))], self.cwd)
        absent = data.get("absent") if data else None
        return {m: needed[m] for m in absent or [] if m in needed}

    def _repair_one(
        self, dist: str, version: str, names: list[str], depth: int = 0
    ) -> tuple[str | None, list[str]]:
        """Step ``dist`` back until ``names`` resolve: the pin (None: ``version`` kept),
        and what its dependencies needed for it (``pinned X==v: why`` each).

        An older release often fails to import because a dependency has moved on since
        (``Flask`` 0.12 with ``Jinja2`` 3 lacks ``jinja2.Markup``): the same repair is then
        applied to that dependency, a few levels deep at most.
        """
        key = self._cache_key(dist, version, names)
        cached = self._cache_get(key)
        if cached:
            rc, _ = self.install([f"{dist}=={cached}"])
            if rc == 0 and not missing_names(self.python, names, self.cwd, strict=True):
                return f"{dist}=={cached}", []
        current = version
        needed: list[str] = []  # dependency pins made on the way (they stay installed)
        # Major series first. Minor ones only inside an older major series that stepping
        # back reached (Django 1.11 -> 1.8): within the newest one (TensorFlow 2.x for
        # tensorflow.contrib) every minor release lacks what the major step found gone.
        minor = False
        deadline = time.monotonic() + MAX_SECONDS
        for _ in range(MAX_TRIES):
            if time.monotonic() > deadline:
                self.log(f"Version repair: gave up on {dist} after {MAX_SECONDS} s")
                break
            bound = older_bound(current, minor)
            if bound is None and not minor and current != version:
                minor = True
                bound = older_bound(current, minor)
            if bound is None:
                break
            self.log(f"Version repair: trying {dist}{bound} for {', '.join(names[:3])}")
            rc, _ = self.install([f"{dist}{bound}"])
            installed = self._installed_version(dist) if rc == 0 else None
            if installed is None or installed == current:
                if minor or current == version:
                    break  # no older release installs here
                minor = True
                continue
            current = installed
            problems = missing_names(self.python, names, self.cwd, True, self.log)
            if problems and depth < MAX_DEPTH:
                deeper = self._repair_dependency(dist, problems, depth)
                if deeper:
                    needed += deeper
                    problems = missing_names(self.python, names, self.cwd, strict=True)
            if not problems:
                if not needed:  # replaying the pin alone is enough only then
                    self._cache_put(key, installed)
                return f"{dist}=={installed}", needed
        self.install([f"{dist}=={version}"])  # nothing better: back to what resolved first
        return None, []

    def _repair_dependency(
        self, dist: str, problems: dict[str, list[str]], depth: int
    ) -> list[str]:
        """Repair the package whose missing name broke ``dist``'s import: the pins made."""
        for _dist, _version, problem in problems.values():
            gone = _GONE.search(problem)
            lost = _NO_MODULE.search(problem)
            if gone:
                name = f"{gone.group('mod')}.{gone.group('name')}"
            elif lost and "." in lost.group("mod"):
                name = lost.group("mod")
            else:
                continue
            gap = missing_names(self.python, [name], self.cwd).get(name)
            if not gap or not gap[0] or canonical(gap[0]) == canonical(dist):
                continue
            pin, deeper = self._repair_one(gap[0], gap[1], [name], depth + 1)
            if pin:
                why = f"pinned {pin}: {dist} needs {name}, which {gap[0]} {gap[1]} lacks"
                return [*deeper, why]
        return []

    def _installed_version(self, dist: str) -> str | None:
        code = "import sys\nfrom importlib.metadata import version\nprint(version(sys.argv[1]))"
        proc = subprocess.run(
            [str(self.python), "-c", code, dist], capture_output=True, text=True, cwd=self.cwd
        )
        return proc.stdout.strip() or None if proc.returncode == 0 else None

    # ------------------------------------------------------------------ cache
    def _cache_key(self, dist: str, version: str, names: list[str]) -> str:
        blob = json.dumps([dist.lower(), version, self.python_version, sorted(names)])
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def _cache_file(self) -> Path | None:
        return self.cache / "version-repairs.json" if self.cache is not None else None

    def _cache_get(self, key: str) -> str | None:
        path = self._cache_file()
        if path is None:
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        found = data.get(key) if isinstance(data, dict) else None
        return str(found) if found else None

    def _cache_put(self, key: str, version: str) -> None:
        path = self._cache_file()
        if path is None:
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        data[key] = version
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".repairs-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
            os.replace(tmp, path)
