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
from collections.abc import Callable, Sequence
from pathlib import Path

Log = Callable[[str], None]
MAX_TRIES = 6  # release series stepped back through, per distribution

# Run inside the built environment: which dotted names fail, and who owns them.
_CHECKER = r"""
import importlib, json, sys
try:
    from importlib.metadata import packages_distributions, version
except ImportError:
    packages_distributions = None
names = json.loads(sys.argv[1])
strict = sys.argv[2] == "strict"
owners = packages_distributions() if packages_distributions else {}
out = {}
for name in names:
    parts = name.split(".")
    top = parts[0]
    try:
        importlib.import_module(top)
    except Exception as exc:
        if strict:  # checking a step back: a release that breaks the import is no fix
            out[name] = ["", "", "import %s failed: %s" % (top, exc)]
        continue  # first look: not installed, or broken for other reasons
    obj, problem = None, None
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        except Exception:
            obj = None
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
print(json.dumps(out))
"""


def missing_names(
    python: Path, names: Sequence[str], cwd: Path, strict: bool = False
) -> dict[str, list[str]]:
    """``name -> [distribution, version, problem]`` for names the environment lacks.

    ``strict``: a top-level module that fails to import counts as missing too.
    """
    if not names:
        return {}
    try:
        proc = subprocess.run(
            [
                str(python),
                "-c",
                _CHECKER,
                json.dumps(sorted(set(names))),
                "strict" if strict else "lenient",
            ],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            env=_quiet_env(),
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    for line in reversed(proc.stdout.splitlines()):
        with contextlib.suppress(ValueError):
            data = json.loads(line)
            if isinstance(data, dict):
                return data
    return {}


def _quiet_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONWARNINGS="ignore", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    return env


def older_bound(version: str) -> str | None:
    """The bound below ``version``'s series: ``3.2.1`` -> ``<3``, ``0.24.2`` -> ``<0.24``."""
    nums = [int(n) for n in re.findall(r"\d+", version)[:2]]
    if not nums:
        return None
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
        """Pins chosen (``dist==version``), each with a warning; the env is left repaired."""
        missing = missing_names(self.python, names, self.cwd)
        by_dist: dict[str, tuple[str, list[str]]] = {}
        for name, (dist, version, _problem) in sorted(missing.items()):
            by_dist.setdefault(dist, (version, []))[1].append(name)
        pins: list[str] = []
        for dist, (version, wanted) in sorted(by_dist.items()):
            pin = self._repair_one(dist, version, wanted)
            shown = ", ".join(wanted[:3]) + (" ..." if len(wanted) > 3 else "")
            if pin:
                pins.append(pin)
                text = f"pinned {pin}: {dist} {version} has no {shown}"
            else:
                text = f"no release of {dist} checked provides {shown}; kept {version}"
            line = f"Warning: version repair {text}"
            warnings.append(line)
            self.log(line)
        return pins

    def _repair_one(self, dist: str, version: str, names: list[str]) -> str | None:
        key = self._cache_key(dist, version, names)
        cached = self._cache_get(key)
        if cached:
            rc, _ = self.install([f"{dist}=={cached}"])
            if rc == 0 and not missing_names(self.python, names, self.cwd, strict=True):
                return f"{dist}=={cached}"
        current = version
        for _ in range(MAX_TRIES):
            bound = older_bound(current)
            if bound is None:
                break
            self.log(f"Version repair: trying {dist}{bound} for {', '.join(names[:3])}")
            rc, _ = self.install([f"{dist}{bound}"])
            installed = self._installed_version(dist) if rc == 0 else None
            if installed is None or installed == current:
                break  # no older release installs here
            current = installed
            if not missing_names(self.python, names, self.cwd, strict=True):
                self._cache_put(key, installed)
                return f"{dist}=={installed}"
        self.install([f"{dist}=={version}"])  # nothing better: back to what resolved first
        return None

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
