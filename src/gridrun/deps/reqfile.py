"""Requirement lines, as pip reads them, turned into the run's canonical list.

The list is what the environment builder installs and what the environment key
hashes, so it is normalised here: one canonical spelling per line, installer options
first (in the order given: index order matters to resolvers), then requirements sorted
by PEP 503 name, duplicates removed. Standard-library names, which real repositories
do list (``os``, ``sys``, ``time``), are dropped with a warning rather than failing
the build ten minutes later.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from gridrun.deps.pep508 import (
    NAME,
    NAME_RE,
    InvalidRequirement,
    canonicalize_name,
    is_url,
    parse_requirement,
)
from gridrun.errors import DependencyError

STDLIB = frozenset(sys.stdlib_module_names) | {"__future__", "__main__"}
_STDLIB_DISTS = frozenset(canonicalize_name(n) for n in STDLIB if NAME_RE.match(n))

# Installer options kept as their own lines for the environment builder.
_VALUED = {
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
    "--trusted-host": "--trusted-host",
    "--only-binary": "--only-binary",
    "--no-binary": "--no-binary",
}
_FLAGS = {"--no-index", "--pre", "--prefer-binary"}
_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".tar.bz2", ".zip")
_EGG_RE = re.compile(rf"#(?:.*&)?egg=({NAME})")
_NAMED_URL_RE = re.compile(rf"^\s*{NAME}\s*(?:\[[^\]]*\]\s*)?@")
_HINT = "Fix or remove the line (pip's requirements format: https://pip.pypa.io/en/stable/reference/requirements-file-format/)."


@dataclass(frozen=True)
class Line:
    """One line of the result: an option, a named requirement or a direct reference."""

    text: str
    kind: str  # "option" | "requirement" | "direct"
    name: str | None = None  # distribution name, when known

    @property
    def key(self) -> str:
        """What makes two lines the same: the text with the name normalised."""
        if self.name and self.text.startswith(self.name):
            return canonicalize_name(self.name) + self.text[len(self.name) :]
        return self.text


class LineReader:
    """Reads requirement lines from files and from single entries, collecting warnings."""

    def __init__(self, project_root: Path, warnings: list[str]) -> None:
        self.root = project_root
        self.warnings = warnings
        self._stack: list[Path] = []

    def display(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def read_file(self, path: Path) -> list[Line]:
        """Every line of a requirements.txt-style file, ``-r`` includes inlined."""
        resolved = path.resolve()
        if resolved in self._stack:
            raise DependencyError(
                f"{self.display(path)} includes itself through -r.", hint="Remove the cycle."
            )
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DependencyError(
                f"{self.display(path)} is not UTF-8 text.", hint="Save it as UTF-8."
            ) from exc
        except OSError as exc:
            raise DependencyError(
                f"Cannot read {self.display(path)}: {exc.strerror or exc}."
            ) from exc
        self._stack.append(resolved)
        try:
            out: list[Line] = []
            hashed = False
            for lineno, logical in _logical_lines(text):
                where = f"{self.display(path)}:{lineno}"
                if re.search(r"(^|\s)--hash[=\s]", logical):
                    hashed = True
                out.extend(self.read_entry(logical, where, path.parent))
            if hashed:
                self.warnings.append(
                    f"{self.display(path)}: --hash options were dropped; the environment "
                    "is pinned by version, not by hash."
                )
            return out
        finally:
            self._stack.pop()

    def read_entry(self, raw: str, where: str, base: Path, options: bool = True) -> list[Line]:
        """One logical requirement line; may be empty. ``options=False``: PEP 508 only."""
        text = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not text:
            return []
        if text.startswith("-"):
            if not options:
                raise DependencyError(
                    f"{where}: {text!r} is a pip option, not a PEP 508 requirement.", hint=_HINT
                )
            return self._option(text, where, base)
        # Per-requirement options (--hash, --config-settings) trail the requirement.
        text = re.split(r"\s+(?=--?[A-Za-z])", text, maxsplit=1)[0]
        if is_url(text):
            return [self._direct(text, text, where)]
        if not _NAMED_URL_RE.match(text) and _looks_like_path(text):
            return [self._local(text, text, where)]
        try:
            req = parse_requirement(text)
        except InvalidRequirement as exc:
            raise DependencyError(f"{where}: {exc}.", hint=_HINT) from exc
        return [Line(str(req), "direct" if req.url else "requirement", req.name)]

    def _option(self, text: str, where: str, base: Path) -> list[Line]:
        if text.startswith("--"):
            match = re.match(r"^(--[A-Za-z0-9-]+)(?:\s*=\s*|\s+|$)(.*)$", text)
            option, value = (match.group(1), match.group(2).strip()) if match else (text, "")
        else:
            option, value = text[:2], text[2:].lstrip(" \t=")
        if option in ("-r", "--requirement"):
            if not value:
                raise DependencyError(f"{where}: -r needs a file name.", hint=_HINT)
            included = (base / value).expanduser()
            if not included.is_file():
                raise DependencyError(
                    f"{where}: included file {value} does not exist.",
                    hint="Fix the -r path (it is relative to the file that includes it).",
                )
            return self.read_file(included)
        if option in ("-e", "--editable"):
            if not value:
                raise DependencyError(f"{where}: -e needs a path or URL.", hint=_HINT)
            if is_url(value):
                return [self._direct(f"-e {value}", value, where)]
            return [self._local(f"-e {value}", value, where)]
        if option in _FLAGS:
            return [Line(option, "option")]
        if option in _VALUED:
            if not value:
                raise DependencyError(f"{where}: {option} needs a value.", hint=_HINT)
            return [Line(f"{_VALUED[option]} {value}", "option")]
        self.warnings.append(
            f"{where}: the option {option} is not supported by gridrun and was ignored."
        )
        return []

    def _direct(self, text: str, url: str, where: str) -> Line:
        egg = _EGG_RE.search(url)
        return Line(text, "direct", egg.group(1) if egg else None)

    def _local(self, text: str, path: str, where: str) -> Line:
        target = (self.root / path).resolve()
        inside = target == self.root.resolve() or self.root.resolve() in target.parents
        if inside and target.exists():
            self.warnings.append(
                f"{where}: {path!r} is a local path; it is installed from the run's "
                "snapshot of the project, not from your machine."
            )
        else:
            self.warnings.append(
                f"{where}: {path!r} is a local path outside the project snapshot; the "
                "build will not find it. Move it into the project or publish it."
            )
        egg = _EGG_RE.search(path)
        return Line(text, "direct", egg.group(1) if egg else None)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Physical lines joined at a trailing backslash, numbered by their first line."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not pending:
            start = lineno
        if line.endswith("\\") and not re.search(r"(^|\s)#", line):
            pending.append(line[:-1])
            continue
        pending.append(line)
        out.append((start, " ".join(part.strip() for part in pending)))
        pending = []
    if pending:
        out.append((start, " ".join(part.strip() for part in pending)))
    return out


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith((".", "/", "~"))
        or "/" in text
        or "\\" in text
        or text.lower().endswith(_ARCHIVE_SUFFIXES)
    )


def map_import_names(lines: list[Line], label: str, warnings: list[str]) -> list[Line]:
    """Requirement lines that name an import rather than its distribution, mapped.

    Real requirements files list ``sklearn``, ``cv2`` or ``pkg_resources``: names of what
    the code imports, which the index either lacks or serves as a placeholder that refuses
    to install. Only bare names are mapped (a line with a version specifier pins a real
    distribution's release, so its author meant that distribution).
    """
    from gridrun.deps.mapping import IMPORT_REQUIREMENT, IMPORT_TO_DIST

    by_key = {canonicalize_name(k): k for k in IMPORT_TO_DIST if "." not in k}
    out: list[Line] = []
    mapped: list[str] = []
    for line in lines:
        name = line.name or ""
        module = by_key.get(canonicalize_name(name)) if line.kind == "requirement" else None
        dist = IMPORT_TO_DIST.get(module or "")
        try:
            req = parse_requirement(line.text) if module else None
        except InvalidRequirement:
            req = None
        if (
            module is None
            or dist is None
            or req is None
            or req.specifier
            or canonicalize_name(dist) == canonicalize_name(name)
        ):
            out.append(line)
            continue
        target = IMPORT_REQUIREMENT.get(module, dist)
        extras = f"[{','.join(req.extras)}]" if req.extras else ""
        marker = f"; {req.marker}" if req.marker else ""
        text = str(parse_requirement(f"{target}{extras}{marker}"))
        out.append(Line(text, "requirement", dist))
        mapped.append(f"{name} -> {target}")
    if mapped:
        warnings.append(
            f"{label} lists import names, not distribution names; installing their "
            f"distributions instead: {', '.join(mapped)}."
        )
    return out


def normalize(lines: list[Line], label: str, warnings: list[str]) -> list[str]:
    """Options first (as given), then requirements by PEP 503 name; stdlib names dropped."""
    options: list[str] = []
    named: dict[str, Line] = {}
    unnamed: dict[str, Line] = {}
    stdlib: list[str] = []
    for line in lines:
        if line.kind == "option":
            if line.text not in options:
                options.append(line.text)
        elif line.kind == "requirement" and canonicalize_name(line.name or "") in _STDLIB_DISTS:
            if line.name not in stdlib:
                stdlib.append(line.name or "")
        elif line.name:
            named.setdefault(line.key, line)
        else:
            unnamed.setdefault(line.key, line)
    if stdlib:
        warnings.append(
            f"{label} lists standard-library modules, which are part of Python and cannot be "
            f"installed with pip: {', '.join(sorted(stdlib, key=str.lower))}. They were ignored."
        )
    ordered = sorted(named.values(), key=lambda ln: (canonicalize_name(ln.name or ""), ln.key))
    return options + [ln.text for ln in ordered] + sorted(unnamed)
