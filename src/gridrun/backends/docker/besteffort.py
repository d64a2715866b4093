"""Inferred requirements in an image: resolved here, installed there, what was dropped.

Declared requirements are installed strictly by ``pip install -r`` in the build: a
line that cannot be installed fails it, naming the line. Inferred ones are best
effort, as on the local backend, and resolved on this machine first
(:mod:`gridrun.envs.resolve`: drop, relax, repair, with the local backend's code and
caches). The image then installs that closed set of pins with :data:`INSTALLER`, a
small script run by the image's own Python (2.7 on) in the build. It installs the
whole set at once (``--no-deps``: the set is closed); when that fails, it drops the line
pip's output names (found by the local backend's own parser,
:func:`gridrun.envs.uvoutput.failing_line`, shipped beside it) and tries again, or,
when no line is named, installs each on its own. So one pin that installed here but
cannot be installed in the image (an sdist that needs a compiler the image lacks, a
wheel only this machine's find-links has) is dropped instead of failing the build,
at the cost of one more pip run. It prints plain lines with
fixed prefixes, which :class:`InstallWatcher` reads from the build output and turns
into the same ``Warning: inferred requirement dropped ...`` lines as the local
backend, with uv's (or here pip's) failure explained by
:func:`gridrun.envs.uvoutput.failure_message`.

What a build dropped or pinned is kept under ``GRID_HOME/images/builds/``: per image
tag (logged again whenever the image is reused, so ``grid status RUN`` shows it for
every run of it) and per dependency layer (the engine reuses a cached ``RUN`` step
silently, so what it dropped the first time is read back from there).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gridrun.backends.base import BuildRequest
from gridrun.envs.pipconf import PipConfig
from gridrun.envs.uvoutput import failure_message, requirement_name
from gridrun.envs.venv import inferred_warning
from gridrun.fsutil import atomic_write_json
from gridrun.specs import TorchBuild

Log = Callable[[str], None]

ATTEMPT = "gridrun: installing "  # + "N requirement(s)": each pip run starts with it
FAILED = "gridrun: could not install "  # + the line, after the attempt that failed on it

# Python 2.7 on, standard library only. Next to it in the build, the local backend's
# uvoutput.py names the line a failed install was about (pip's wording included); a
# Python too old to import it gets each line installed on its own instead.
INSTALLER = r'''
"""gridrun: install requirements into this environment, dropping what cannot be."""
import os, subprocess, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    from uvoutput import failing_line
except (ImportError, SyntaxError):
    failing_line = None
path, closed = sys.argv[1], sys.argv[2:] == ["closed"]
lines = [l.strip() for l in open(path) if l.strip() and not l.strip().startswith("#")]
options = [l for l in lines if l.startswith("-")]
wanted = [l for l in lines if not l.startswith("-")]
pip = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check"]
if closed:  # every dependency is in the list already, pinned
    pip.append("--no-deps")


def install(reqs):
    print("%s%d requirement(s)" % (ATTEMPT, len(reqs)))
    sys.stdout.flush()
    fd, tmp = tempfile.mkstemp(suffix=".txt")
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(options + reqs) + "\n")
    out = []
    try:
        proc = subprocess.Popen(pip + ["-r", tmp], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            print(line)
            sys.stdout.flush()
            out.append(line)
        return proc.wait(), out
    finally:
        os.unlink(tmp)


alone = False
while wanted:  # the whole set; then without each line a failure names
    code, out = install(wanted)
    if code == 0:
        wanted = []
        break
    culprit = failing_line(out, wanted) if failing_line else None
    if culprit is None:
        alone = True
        break
    print(FAILED + culprit)
    wanted.remove(culprit)
for req in wanted if alone else []:
    if install([req])[0] != 0:
        print(FAILED + req)
sys.stdout.flush()
'''
INSTALLER = f"ATTEMPT = {ATTEMPT!r}\nFAILED = {FAILED!r}\n" + INSTALLER


def uvoutput_source() -> str:
    """The local backend's failure parser, shipped beside the installer."""
    from gridrun.envs import uvoutput

    return Path(uvoutput.__file__).read_text(encoding="utf-8")


class InstallWatcher:
    """Reads the installer's lines in a build's output; logs what it dropped.

    ``closed``: the pins resolved on this machine, so one dropped in the image installs
    here (the warning says so). ``ran``: the installer printed anything, i.e. the engine
    did not replay the step from its cache.
    """

    def __init__(self, log: Log, closed: bool = False) -> None:
        self.log = log
        self.closed = closed
        self.ran = False
        self.warnings: list[str] = []
        self._output: list[str] = []

    def feed(self, line: str) -> None:
        if line.startswith(ATTEMPT):
            self.ran = True
            self._output = []
        elif line.startswith(FAILED) and self.ran:
            pin = line[len(FAILED) :].strip()
            reason = re.sub(r"^Could not install '[^']*': ", "", failure_message(self._output))
            text = f"dropped {requirement_name(pin)} from the image"
            if self.closed:
                text += f" ({pin} installs on this machine, not there)"
            warning = inferred_warning(f"{text}: {reason}")
            self.warnings.append(warning)
            self.log(warning)
        elif self.ran:
            self._output.append(line)


# ------------------------------------------------------------------ resolving
@dataclass
class Requirements:
    """What the image's dependency layer installs, and how."""

    lines: list[str]
    best_effort: bool = False  # inferred: what cannot be installed is dropped
    closed: bool = False  # pins resolved on this machine, their dependencies included
    warnings: list[str] = field(default_factory=list)  # from resolving them here


def resolve_inferred(
    req: BuildRequest,
    pip: PipConfig,
    home_root: Path,
    log: Log,
    torch: TorchBuild | None = None,
) -> Requirements:
    """The pins the inferred requirements resolve to on this machine (best effort).

    ``torch``: the PyTorch build whose index torch is resolved from (its exact local
    version, ``+cpu``, is then pinned).

    Without the run's Python here, the inferred lines go to the image as they are:
    still best effort there, without version repair, with a warning saying so.
    """
    from gridrun.envs.key import count_packages
    from gridrun.envs.resolve import resolve_here
    from gridrun.envs.venv import PythonNotFound
    from gridrun.home import GridHome

    count = count_packages(req.requirements)
    log(
        f"Resolving {count} inferred requirement{'' if count == 1 else 's'} on this machine "
        "first, as --backend local does: any that cannot be installed is dropped, and "
        "versions the code cannot import are stepped back"
    )
    try:
        found = resolve_here(
            GridHome(Path(home_root)).envs,
            req.python,
            req.requirements,
            req.checks,
            pip,
            log,
            torch if torch is not None and torch.index_url else None,
        )
    except PythonNotFound:
        warning = (
            f"Warning: Python {req.python} is not installed on this machine: the inferred "
            "requirements go to the image unresolved, without version repair (any that "
            "cannot be installed there is still dropped)"
        )
        log(warning)
        return Requirements(list(req.requirements), best_effort=True, warnings=[warning])
    shown = ", ".join(found.pins[:10]) + (
        f" and {len(found.pins) - 10} more" if len(found.pins) > 10 else ""
    )
    log(
        f"The image installs what resolved here (environment {found.env_key}): {shown or 'nothing'}"
    )
    return Requirements(found.pins, best_effort=True, closed=True, warnings=found.warnings)


def dropped_in_image(
    images: Path, deps_hash: str, wanted: Requirements, watcher: InstallWatcher, log: Log
) -> list[str]:
    """What the image's install step dropped; read back when the engine reused the step.

    The engine replays a cached ``RUN`` step without its output, so each dependency
    layer's outcome is kept by the layer's inputs.
    """
    layer = "layer-" + layer_id(deps_hash, wanted.lines)
    if watcher.ran:
        save_record(images, layer, watcher.warnings, wanted.lines)
        return watcher.warnings
    record = load_record(images, layer)
    dropped = record["warnings"] if record else []
    for warning in dropped:
        log(warning)
    return dropped


# -------------------------------------------------------------------- records
def _builds_dir(images: Path) -> Path:
    return images / "builds"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def layer_id(deps_hash: str, installed: Sequence[str]) -> str:
    """Names the dependency layer: what it was asked for and the pins it installs."""
    blob = json.dumps([deps_hash, list(installed)]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_record(images: Path, name: str, warnings: Sequence[str], installed: Sequence[str]) -> None:
    """Remember a build's warnings (best effort: a read-only home is not fatal)."""
    data = {"warnings": list(dict.fromkeys(warnings)), "installed": list(installed)}
    try:
        _builds_dir(images).mkdir(parents=True, exist_ok=True)
        atomic_write_json(_builds_dir(images) / f"{_safe(name)}.json", data, indent=1)
    except OSError:
        pass


def load_record(images: Path, name: str) -> dict[str, list[str]] | None:
    try:
        data = json.loads((_builds_dir(images) / f"{_safe(name)}.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {k: [str(x) for x in data.get(k) or []] for k in ("warnings", "installed")}


def forget_record(images: Path, name: str) -> None:
    (_builds_dir(images) / f"{_safe(name)}.json").unlink(missing_ok=True)
