"""The ``deps`` stage: which Python requirements a run's environment needs.

A declared source wins, in this order: an explicit ``dependency_file``, then
``requirements.txt``, ``environment.yml``/``environment.yaml`` (its ``- pip:``
section), ``pyproject.toml`` ``[project] dependencies`` and PEP 723 metadata in the
entry script. Without one, requirements are inferred from the imports of every
``.py`` file in the snapshot and pinned to the versions installed where ``grid run``
was invoked, as Grid.ai did, with a warning: the user's machine is the best evidence
of what the code was last run with. Imports are always read, so that a declared file
missing a package the code imports is reported before the build, not after it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import warnings as _warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gridrun.deps.imports import ScanResult, is_stdlib, scan_project
from gridrun.deps.installed import Environment
from gridrun.deps.mapping import IMPORT_REQUIREMENT
from gridrun.deps.pep508 import canonicalize_name, parse_requirement
from gridrun.deps.reqfile import Line, LineReader, map_import_names, normalize
from gridrun.deps.sources import (
    Declared,
    read_environment_yml,
    read_pep723,
    read_pyproject,
)
from gridrun.deps.stdlib import ADDED_STDLIB, PY2_STDLIB, REMOVED_NAMES, REMOVED_STDLIB
from gridrun.errors import DependencyError

__all__ = [
    "INFERRED_WARNING",
    "DependencyReport",
    "alternative_for",
    "check_script_syntax",
    "infer_requirements",
    "is_stdlib",
    "requirement_for_import",
    "resolve_dependencies",
    "write_requirements",
]

INFERRED_WARNING = (
    "No requirements.txt or environment.yml found but we identified below dependencies "
    "from your source. Your build could crash or not start."
)


@dataclass
class DependencyReport:
    requirements: list[str]  # normalised requirement lines (options first)
    source: str  # 'dependency_file:<path>' | 'requirements.txt' | 'environment.yml' | ...
    warnings: list[str] = field(default_factory=list)
    inferred: list[str] = field(default_factory=list)
    optional: list[str] = field(default_factory=list)
    conda_only: list[str] = field(default_factory=list)
    python_version: str | None = None
    # Names the code takes from packages (`from X import y`, `X.attr`), checked in the
    # built environment by version repair.
    checks: list[str] = field(default_factory=list)
    # The newest Python the code can run on, and why (a removed stdlib name), or None.
    python_max: tuple[int, int] | None = None
    python_reason: str = ""
    # The oldest Python the code can run on, and why (its syntax, a new stdlib module).
    python_min: tuple[int, int] = (3, 0)
    python_min_reason: str = ""


@dataclass
class _Inference:
    lines: list[str]  # pinned where installed; optional ones only when installed
    required: dict[str, str]  # PEP 503 name -> distribution name, required imports only
    optional: list[str]  # distributions imported only under try/except ImportError
    optional_missing: list[str]
    skipped: list[str]
    listing: list[str] = field(default_factory=list)  # lines with the import they serve
    notes: list[str] = field(default_factory=list)
    scan: ScanResult | None = None


def _posix(path: str) -> str:
    text = PurePosixPath(str(path).replace("\\", "/")).as_posix()
    return text[2:] if text.startswith("./") else text


def _infer(root: Path, files: list[str], script: str, cache_dir: Path | None) -> _Inference:
    scan = scan_project(root, files, script, cache_dir)
    _add_redirected(scan.imports)
    env = Environment.current(cache_dir)
    required: dict[str, str] = {}
    optional: dict[str, str] = {}
    origin: dict[str, str] = {}  # PEP 503 name -> the import that brought it in
    tops = sorted({module.split(".")[0] for module in scan.imports})
    for module, is_required in sorted(scan.imports.items()):
        dist = env.distribution_for(module, tops)
        target = required if is_required else optional
        target.setdefault(canonicalize_name(dist), dist)
        origin.setdefault(canonicalize_name(dist), module.split(".")[0])
    optional = {k: v for k, v in optional.items() if k not in required}
    lines: list[Line] = []
    missing: list[str] = []
    shown: dict[str, str] = {}
    for key, dist in [*required.items(), *optional.items()]:
        pinned = env.pinned(dist)
        if pinned is None and key in optional:
            missing.append(dist)
            continue
        text = pinned or dist
        held = IMPORT_REQUIREMENT.get(origin[key])
        if held is not None and not _satisfies(pinned, held):
            text = held  # e.g. pkg_resources: a setuptools that still ships it
        lines.append(Line(text, "requirement", pinned.split("==")[0] if pinned else dist))
        if canonicalize_name(origin[key]) != key:
            shown[text] = origin[key]
    env.save()
    normalized = normalize(lines, "", [])
    return _Inference(
        lines=normalized,
        required=required,
        optional=sorted(optional.values(), key=canonicalize_name),
        optional_missing=sorted(missing, key=canonicalize_name),
        skipped=scan.skipped,
        listing=[f"{ln}  (import {shown[ln]})" if ln in shown else ln for ln in normalized],
        notes=list(env.notes),
        scan=scan,
    )


def _add_redirected(imports: dict[str, bool]) -> None:
    """Imports that a redirect serves from another package: ``flask.ext.foo`` is ``flask_foo``.

    Flask before 1.0 forwarded ``flask.ext.<name>`` to the extension ``flask_<name>``, so
    old code names Flask-SQLAlchemy as ``flask.ext.sqlalchemy``: the extension is a
    requirement of its own (version repair then finds a Flask that still forwards).
    """
    for name, required in list(imports.items()):
        parts = name.split(".")
        if parts[:2] == ["flask", "ext"] and len(parts) > 2 and parts[2].isidentifier():
            target = f"flask_{parts[2]}"
            imports[target] = imports.get(target, False) or required


def requirement_for_import(module: str) -> str | None:
    """The requirement that provides ``module`` on the index, or None if none is known.

    For imports found outside the user's code (a package that needs a module it does
    not declare), so the invoking environment is not consulted: the held-back
    requirements (``pkg_resources``), the table, then pigar's index of the whole index.
    """
    from gridrun.deps.installed import table_lookup
    from gridrun.deps.pypimodules import module_index

    top = module.split(".")[0]
    if is_stdlib(top):
        return None
    held = IMPORT_REQUIREMENT.get(top)
    if held:
        return held
    found = table_lookup(module)
    if found:
        return found
    index = module_index()
    return index.distribution(top) if index is not None else None


def alternative_for(
    dropped: str, imports: Sequence[str], tried: Sequence[str]
) -> tuple[str, str] | None:
    """``(distribution, import)`` to try in place of an inferred one that failed to install.

    ``imports``: the code's top-level imports; the ones ``dropped`` was chosen for (pigar's
    index lists it among their candidates) get the next candidate named after them
    (:func:`~gridrun.deps.pypimodules.choose_fallback`), excluding ``tried``. For the
    build, where an old ``graphql`` sdist fails and ``graphql-core`` provides the module.
    """
    from gridrun.deps.pypimodules import choose_fallback, module_index

    index = module_index()
    if index is None:
        return None
    gone = {canonicalize_name(d) for d in [dropped, *tried]}
    for module in sorted(set(imports)):
        rows = index.candidates(module)
        if canonicalize_name(dropped) not in {canonicalize_name(r[0]) for r in rows}:
            continue
        left = [r for r in rows if canonicalize_name(r[0]) not in gone]
        chosen = choose_fallback(module, left, imports)
        if chosen:
            return chosen, module
    return None


def _satisfies(pinned: str | None, held: str) -> bool:
    """Whether ``Name==X.Y`` meets an upper bound like ``setuptools<82``."""
    match = re.fullmatch(r"[^<]+<(\d+)", held)
    if pinned is None or match is None:
        return False
    major = re.match(r"\d+", pinned.split("==", 1)[-1])
    return bool(major) and int(major.group(0)) < int(match.group(1))  # type: ignore[union-attr]


def infer_requirements(
    project_root: Path, files: Sequence[str], script: str, *, cache_dir: Path | None = None
) -> list[str]:
    """The requirement lines inferred from imports, pinned to this environment.

    What ``grid sync-env`` writes. Optional imports are included only when installed
    here (an unresolvable optional package would make the build fail for nothing).
    """
    root = Path(project_root)
    return _infer(root, [_posix(f) for f in files], _posix(script), cache_dir).lines


def _declared(
    root: Path, files: list[str], script: str, dependency_file: str | None, reader: LineReader
) -> tuple[Declared | None, str, str]:
    """The declared source in priority order: (contents, source tag, label for messages)."""
    if dependency_file:
        rel = _posix(dependency_file)
        path = root / rel
        if not path.is_file():
            raise DependencyError(
                f"Dependency file {rel} does not exist in {root}.",
                hint="Give a path relative to the project folder.",
            )
        name = path.name.lower()
        if name.endswith((".yml", ".yaml")):
            declared = read_environment_yml(path, reader)
        elif name.endswith(".toml"):
            declared = read_pyproject(path, reader, explicit=True) or Declared()
        else:
            declared = Declared(lines=reader.read_file(path))
        return declared, f"dependency_file:{rel}", rel
    present = set(files)
    # The nearest declared file wins: an examples repository has one requirements.txt
    # per example, and the one beside the script describes what the script needs.
    for folder in _folders_up(script):
        prefix = f"{folder}/" if folder else ""
        rel = f"{prefix}requirements.txt"
        if rel in present:
            return Declared(lines=reader.read_file(root / rel)), rel, rel
        for name in ("environment.yml", "environment.yaml"):
            rel = prefix + name
            if rel in present:
                return read_environment_yml(root / rel, reader), rel, rel
        rel = f"{prefix}pyproject.toml"
        if rel in present:
            found = read_pyproject(root / rel, reader, explicit=False)
            if found is not None:
                return found, rel, rel
    if script.endswith(".py") and (root / script).is_file():
        found = read_pep723(root / script, reader)
        if found is not None:
            return found, "pep723", script
    return None, "inferred", ""


def _checks(scan: ScanResult) -> list[str]:
    """Names the code needs from third-party packages, required ones only.

    The top-level modules themselves are among them: a package that installs but
    cannot be imported (it needs a module it does not declare) is found that way.
    """
    names = {n for n, required in scan.imports.items() if required and "." in n}
    names |= {u for u in scan.uses if not is_stdlib(u)}
    tops = {n.split(".")[0] for n, required in scan.imports.items() if required}
    names |= tops
    return sorted(n for n in names if n.split(".")[0] in tops)[:500]


def python_evidence(scan: ScanResult) -> tuple[tuple[int, int] | None, str]:
    """The newest Python the code runs on, from the standard-library names it needs."""
    if scan.python2:
        return (2, 7), f"Python 2 syntax in {scan.python2[0]}"
    newest: tuple[int, int] | None = None
    reason = ""
    required = {n for n, req in scan.stdlib.items() if req} | {u for u in scan.uses if is_stdlib(u)}
    for name in sorted(required):
        top = name.split(".")[0]
        if top in PY2_STDLIB:
            found: tuple[int, int] | None = (2, 7)
        elif top in REMOVED_STDLIB:
            found = REMOVED_STDLIB[top]
        else:
            found = REMOVED_NAMES.get(name)
        if found is not None and (newest is None or found < newest):
            newest, reason = found, name
    return newest, reason


def python_floor(scan: ScanResult) -> tuple[tuple[int, int], str]:
    """The oldest Python 3 the code runs on: its grammar, and stdlib modules added later.

    A build that steps down to an older Python for an old package never goes below it.
    """
    oldest, reason = scan.syntax[:2], scan.syntax[2]
    required = {n for n, req in scan.stdlib.items() if req}
    for name in sorted(required):
        for prefix, added in ADDED_STDLIB.items():
            if (name == prefix or name.startswith(prefix + ".")) and added > oldest:
                oldest, reason = added, f"the {prefix} module"
    return (oldest[0], oldest[1]), reason


def _folders_up(script: str) -> list[str]:
    """The script's folder, then each parent up to the project root (``""``)."""
    parts = PurePosixPath(script).parts[:-1]
    return ["/".join(parts[:n]) for n in range(len(parts), -1, -1)]


def _declared_names(lines: list[Line]) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for line in lines:
        if line.kind == "option" or not line.name:
            continue
        extras: tuple[str, ...] = ()
        with contextlib.suppress(ValueError):
            extras = parse_requirement(line.text).extras
        out.append((line.name, extras))
    return out


def resolve_dependencies(
    project_root: Path,
    files: Sequence[str],
    script: str,
    dependency_file: str | None = None,
    *,
    cache_dir: Path | None = None,
) -> DependencyReport:
    """Find the run's requirements; raise :class:`DependencyError` for a broken source.

    ``files`` are the snapshot's paths relative to ``project_root``; ``script`` is the
    entry script's. ``cache_dir`` (e.g. ``GRID_HOME/cache``) keeps parsed imports and
    the environment index between processes.
    """
    root = Path(project_root)
    rel_files = [_posix(f) for f in files]
    script = _posix(script)
    warnings: list[str] = []
    reader = LineReader(root, warnings)
    declared, source, label = _declared(root, rel_files, script, dependency_file, reader)
    inference = _infer(root, rel_files, script, cache_dir)
    report = DependencyReport(
        requirements=[],
        source=source,
        inferred=inference.lines,
        optional=inference.optional,
    )
    if inference.scan is not None:
        report.checks = _checks(inference.scan)
        report.python_max, report.python_reason = python_evidence(inference.scan)
        report.python_min, report.python_min_reason = python_floor(inference.scan)
    if declared is None:
        report.requirements = list(inference.lines)
        if inference.lines:
            listing = "\n".join(f"  {line}" for line in inference.listing)
            warnings.insert(0, f"{INFERRED_WARNING}\n{listing}")
        if inference.optional_missing:
            warnings.append(
                "Optional imports (inside try/except ImportError) that are not installed "
                f"here were left out: {', '.join(inference.optional_missing)}."
            )
    else:
        declared.lines = map_import_names(declared.lines, label, warnings)
        report.requirements = normalize(declared.lines, label, warnings)
        report.conda_only = list(declared.conda_only)
        report.python_version = declared.python_version
        if declared.conda_only:
            warnings.append(
                f"{label} lists conda packages that gridrun does not install (only its "
                f"'- pip:' section is used): {', '.join(declared.conda_only)}. Add the ones "
                "your code needs to the pip section or to requirements.txt."
            )
        _warn_missing(label, declared, inference, cache_dir, warnings)
    warnings.extend(inference.notes)
    if inference.skipped:
        shown = ", ".join(inference.skipped[:5])
        more = f" and {len(inference.skipped) - 5} more" if len(inference.skipped) > 5 else ""
        warnings.append(
            f"Skipped files that Python cannot parse while reading imports: {shown}{more}."
        )
    report.warnings = warnings
    return report


def _warn_missing(
    label: str,
    declared: Declared,
    inference: _Inference,
    cache_dir: Path | None,
    warnings: list[str],
) -> None:
    """Warn about imported distributions the declared source does not list."""
    if not inference.required:
        return
    env = Environment.current(cache_dir)
    covered = env.closure(_declared_names(declared.lines))
    for spec in declared.conda_only:
        name = re.match(r"[A-Za-z0-9_.-]*", spec.split("::")[-1].strip())
        if name and name.group(0):
            covered.add(canonicalize_name(name.group(0)))
    missing = [dist for key, dist in inference.required.items() if key not in covered]
    env.save()
    if missing:
        names = ", ".join(sorted(missing, key=canonicalize_name))
        warnings.append(
            f"{label} does not list packages your code imports: {names}. Add them, or the "
            "run may stop with ModuleNotFoundError."
        )


def check_script_syntax(path: Path, display: str | None = None) -> str | None:
    """``train.py:3: invalid syntax`` when the script would not compile, else None."""
    path = Path(path)
    name = display or _display(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"{name}: cannot be read ({exc.strerror or exc})"
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        try:
            compile(data, name, "exec", dont_inherit=True)
        except SyntaxError as exc:
            return f"{name}:{exc.lineno or 0}: {exc.msg}"
        except ValueError as exc:  # source with null bytes
            return f"{name}: {exc}"
    return None


def _display(path: Path) -> str:
    try:
        return path.absolute().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.name


def write_requirements(path: Path, requirements: Sequence[str]) -> None:
    """Write a requirements.txt atomically (for ``grid sync-env``); one line each."""
    path = Path(path)
    body = "".join(f"{line}\n" for line in requirements)
    text = "# Written by `grid sync-env`: imports of this project, pinned to your environment.\n"
    tmp: str | None = None
    try:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + body)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise DependencyError(
            f"Cannot write {path}: {exc.strerror or exc}.",
            hint="Check that the folder exists and is writable.",
        ) from exc
