"""Inferred requirements resolved on this machine, for an environment built elsewhere.

The rules for inferred requirements (drop what cannot be installed, relax a pin copied
from this machine, try the next namesake, add what a package imports without declaring
it, step a release back until the code's names import) need many install-and-import
tries, pigar's index of PyPI and the repair cache, all of which live here. A Docker
build can only run the steps it is given. So an image of inferred requirements is
resolved first, exactly as the local backend does it: :func:`build_venv` builds an
ordinary cached environment of the same Python minor with ``best_effort`` and the
code's ``checks``. What got installed there, one ``name==version`` per distribution,
is what the image installs, with its warnings recorded for the run.

Why resolve here rather than inside the build: one copy of the logic (a second one,
shipped into the build, would have to run on any image's Python and without pigar's
77 MB index); the environment and repair caches are shared with the local backend, so
a project that ran locally gets the same pins in its image; and the image installs a
closed, exact set of pins, which is what version repair checked.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gridrun.envs.key import environment_key
from gridrun.envs.pipconf import PipConfig
from gridrun.envs.uvoutput import requirement_name
from gridrun.envs.venv import build_venv, build_warnings, venv_python
from gridrun.errors import BuildError
from gridrun.specs import TorchBuild

Log = Callable[[str], None]

# Run by the environment's own Python (2.7 on): every installed distribution, its
# version and the names it requires.
_FREEZE = r"""
import json, re
try:
    from importlib.metadata import distributions
    found = [(d.metadata["Name"], d.version, d.requires or []) for d in distributions()]
except ImportError:
    import pkg_resources
    found = [
        (d.project_name, d.version, [r.project_name for r in d.requires()])
        for d in pkg_resources.working_set
    ]
names = lambda reqs: [re.match(r"[A-Za-z0-9._-]*", str(r)).group(0) for r in reqs]
print(json.dumps([[n, v, names(r)] for n, v, r in found if n]))
"""
# What seeding put into the environment (uv's --seed) is not part of what the code
# needs, and the target brings its own installer: pinned only when a requirement or
# an installed distribution asks for it (``pkg_resources`` -> setuptools).
_SEEDS = {"pip", "setuptools", "wheel"}
_REPAIRED = re.compile(r"(?:requirement added|version repair pinned) ([A-Za-z0-9._-]+)")


@dataclass(frozen=True)
class Resolution:
    """What the inferred requirements came to on this machine."""

    pins: list[str]  # ``name==version`` of every installed distribution, sorted
    warnings: list[str]  # the build's ``Warning: ...`` lines: dropped, relaxed, pinned
    env_key: str  # the cached local environment it was resolved in


def resolution_key(
    python: str,
    requirements: Sequence[str],
    pip: PipConfig,
    checks: Sequence[str],
    torch_build: TorchBuild | None = None,
) -> str:
    """The local environment's key; the local backend's formula, so both share it."""
    extra = pip.fingerprint() + "|best-effort|" + "\n".join(sorted(checks))
    if torch_build is not None:
        extra += f"|torch|{torch_build.key()}"
    return environment_key(python, list(requirements), extra)


def resolve_here(
    envs_dir: Path,
    python: str,
    requirements: Sequence[str],
    checks: Sequence[str],
    pip: PipConfig,
    log: Log,
    torch_build: TorchBuild | None = None,
) -> Resolution:
    """Build (or reuse) the best-effort environment here; what it installed.

    ``torch_build``: the PyTorch index torch comes from (the local backend's mechanism,
    so the pins hold its local version, ``+cpu``). Raises
    :class:`~gridrun.envs.venv.PythonNotFound` when this machine lacks the Python,
    :class:`BuildError` when even best effort fails (as the local backend).
    """
    key = resolution_key(python, requirements, pip, checks, torch_build)
    env = build_venv(
        envs_dir,
        key,
        python,
        list(requirements),
        log,
        pip=pip,
        best_effort=True,
        checks=checks,
        torch_build=torch_build,
    )
    key = env.name  # "<key>-pypi-torch" where the index stopped answering meanwhile
    warnings = build_warnings(env)
    # What version repair added or pinned is wanted too (repair.py's wording).
    asked = [*requirements, *(m.group(1) for w in warnings if (m := _REPAIRED.search(w)))]
    return Resolution(installed_pins(env, asked), warnings, key)


def installed_pins(env: Path, requirements: Sequence[str] = ()) -> list[str]:
    """``name==version`` for each distribution in ``env``, sorted; seeds only if needed.

    Seeding (pip, setuptools, wheel, and what they require, such as packaging) is left
    out unless ``requirements`` name it or a distribution outside it requires it.
    """
    try:
        proc = subprocess.run(
            [str(venv_python(env)), "-c", _FREEZE],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        found = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        raise BuildError(f"Could not list what was installed in {env}: {exc}") from exc
    pins: dict[str, str] = {}
    needs: dict[str, set[str]] = {}
    for name, version, requires in found:
        canon = _canonical(str(name))
        pins.setdefault(canon, f"{name}=={version}")
        needs.setdefault(canon, set()).update(_canonical(str(r)) for r in requires)
    seeded = _reach(_SEEDS & pins.keys(), needs)
    asked = {_canonical(requirement_name(line)) for line in requirements}
    wanted = _reach(asked | {n for d in pins.keys() - seeded for n in needs[d]}, needs)
    return [pins[k] for k in sorted(pins) if k not in seeded or k in wanted]


def _reach(start: set[str], needs: dict[str, set[str]]) -> set[str]:
    """``start`` and everything it requires, transitively."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(needs.get(name, ()))
    return seen


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
