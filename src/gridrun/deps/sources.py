"""Declared requirements: environment.yml, pyproject.toml and PEP 723 script metadata.

Each reader returns the requirement lines it found (through the same
:class:`~gridrun.deps.reqfile.LineReader` as requirements.txt, so every source gets
the same validation and the same canonical spelling) plus what the source says about
Python itself, which is informational: the run's interpreter is chosen elsewhere.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gridrun.deps.reqfile import Line, LineReader
from gridrun.errors import DependencyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

_PEP723_RE = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
_CONDA_PYTHON_RE = re.compile(r"^python\s*(?:={1,2}|\s)\s*(\d+)\.(\d+)(?![\d])")
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Declared:
    """What one declared source contributes to the report."""

    lines: list[Line] = field(default_factory=list)
    python_version: str | None = None
    conda_only: list[str] = field(default_factory=list)


def pinned_minor(specifier: str) -> str | None:
    """``X.Y`` when a Python specifier pins one minor version (``==3.10.*``), else None."""
    spec = specifier.strip()
    match = re.fullmatch(r"==\s*(\d+)\.(\d+)(?:\.(?:\d+|\*))?", spec)
    if match:
        return f"{match.group(1)}.{match.group(2)}"
    match = re.fullmatch(r"~=\s*(\d+)\.(\d+)\.\d+", spec)
    if match:
        return f"{match.group(1)}.{match.group(2)}"
    return None


def read_environment_yml(path: Path, reader: LineReader) -> Declared:
    """The ``- pip:`` section of a conda environment file; conda packages are listed apart."""
    display = reader.display(path)
    text = _read_text(path, display)
    try:
        root = yaml.compose(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{display}:{mark.line + 1}" if mark is not None else display
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DependencyError(f"{where}: invalid YAML: {problem}.") from exc
    out = Declared()
    if root is None:
        return out
    if not isinstance(root, yaml.MappingNode):
        raise DependencyError(
            f"{display}: expected a mapping with a 'dependencies:' list.",
            hint="See https://docs.conda.io/projects/conda/en/latest/user-guide/tasks/manage-environments.html",
        )
    deps = next((v for k, v in root.value if getattr(k, "value", None) == "dependencies"), None)
    if deps is None or (isinstance(deps, yaml.ScalarNode) and deps.value in ("", "~", "null")):
        return out
    if not isinstance(deps, yaml.SequenceNode):
        raise DependencyError(
            f"{display}:{deps.start_mark.line + 1}: 'dependencies' must be a list."
        )
    for item in deps.value:
        where = f"{display}:{item.start_mark.line + 1}"
        if isinstance(item, yaml.ScalarNode):
            spec = str(item.value).strip()
            name_match = re.match(r"[A-Za-z0-9_.-]+", spec.split("::")[-1].strip())
            name = name_match.group(0).lower() if name_match else ""
            if name == "python":
                found = _CONDA_PYTHON_RE.match(spec.split("::")[-1].strip())
                out.python_version = f"{found.group(1)}.{found.group(2)}" if found else None
            elif name != "pip" and spec:
                out.conda_only.append(spec)
        elif isinstance(item, yaml.MappingNode):
            for key, value in item.value:
                if getattr(key, "value", None) != "pip":
                    continue
                if not isinstance(value, yaml.SequenceNode):
                    raise DependencyError(f"{where}: the 'pip:' entry must be a list.")
                for entry in value.value:
                    if not isinstance(entry, yaml.ScalarNode):
                        raise DependencyError(
                            f"{display}:{entry.start_mark.line + 1}: pip entries must be strings."
                        )
                    line_where = f"{display}:{entry.start_mark.line + 1}"
                    out.lines.extend(reader.read_entry(str(entry.value), line_where, path.parent))
        else:
            raise DependencyError(f"{where}: unexpected entry in 'dependencies'.")
    return out


def read_pyproject(path: Path, reader: LineReader, explicit: bool) -> Declared | None:
    """``[project] dependencies``; None (fall through) when auto-detected without them."""
    display = reader.display(path)
    text = _read_text(path, display)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DependencyError(f"{display}: invalid TOML: {exc}.") from exc
    project = data.get("project")
    deps = project.get("dependencies") if isinstance(project, dict) else None
    out = Declared()
    if isinstance(project, dict) and isinstance(project.get("requires-python"), str):
        out.python_version = pinned_minor(project["requires-python"])
    if deps is None:
        poetry = data.get("tool", {}).get("poetry", {})
        if isinstance(poetry, dict) and poetry.get("dependencies"):
            reader.warnings.append(
                f"{display} declares dependencies under [tool.poetry], which gridrun does "
                "not read; add a requirements.txt (`poetry export`) to use them."
            )
        if not explicit:
            return None
        reader.warnings.append(f"{display} has no [project] dependencies.")
        return out
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise DependencyError(f"{display}: [project] dependencies must be a list of strings.")
    start = re.search(r"(?m)^\s*dependencies\s*=", text)
    offset = start.start() if start else 0
    for dep in deps:
        index = text.find(dep, offset)
        lineno = text.count("\n", 0, index) + 1 if index >= 0 else 1
        out.lines.extend(reader.read_entry(dep, f"{display}:{lineno}", path.parent, False))
    return out


def read_pep723(path: Path, reader: LineReader) -> Declared | None:
    """PEP 723 ``# /// script`` metadata of the entry script, or None without one."""
    display = reader.display(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    blocks = [m for m in _PEP723_RE.finditer(text) if m.group("type") == "script"]
    if not blocks:
        return None
    block = blocks[0]
    lineno = text.count("\n", 0, block.start()) + 1
    if len(blocks) > 1:
        raise DependencyError(f"{display}: more than one '# /// script' block.")
    content = "".join(
        line[2:] if line.startswith("# ") else line[1:]
        for line in block.group("content").splitlines(keepends=True)
    )
    try:
        data = tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise DependencyError(f"{display}:{lineno}: invalid PEP 723 metadata: {exc}.") from exc
    deps = data.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise DependencyError(f"{display}:{lineno}: 'dependencies' must be a list of strings.")
    out = Declared()
    if isinstance(data.get("requires-python"), str):
        out.python_version = pinned_minor(data["requires-python"])
    block_lines = block.group(0).splitlines()
    for dep in deps:
        index = next((i for i, ln in enumerate(block_lines) if dep in ln), 0)
        out.lines.extend(reader.read_entry(dep, f"{display}:{lineno + index}", path.parent, False))
    return out


def _read_text(path: Path, display: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DependencyError(f"{display} is not UTF-8 text.", hint="Save it as UTF-8.") from exc
    except OSError as exc:
        raise DependencyError(f"Cannot read {display}: {exc.strerror or exc}.") from exc
