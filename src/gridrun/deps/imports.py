"""Which modules the project imports, read from the AST of every snapshot ``.py`` file.

Regular expressions miss imports inside functions, misread strings and comments, and
cannot tell an optional ``try: import x / except ImportError`` from a required one, so
each file is parsed once. Parsing is the expensive part of ``grid run`` (about a
millisecond per file), so results are kept per process and, when a cache folder is
given, on disk keyed by each file's content digest: an unchanged project is re-read,
never re-parsed.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gridrun.deps.reqfile import STDLIB

_CACHE_VERSION = 1
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
_EXTENSION_SUFFIXES = (".so", ".pyd")

# digest -> (imports as (dotted name, optional), syntax error or None)
FileScan = tuple[list[tuple[str, bool]], str | None]
_MEMORY: dict[str, FileScan] = {}
_MEMORY_LIMIT = 50_000


@dataclass
class ScanResult:
    """Third-party imports of a project: dotted name -> required (False: optional only)."""

    imports: dict[str, bool] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # "path (line N: message)"


def scan_source(data: bytes, filename: str = "<file>") -> FileScan:
    """Non-stdlib, absolute imports of one file's source, or the syntax error met."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes warn while parsing
            tree = ast.parse(data, filename=filename)
    except SyntaxError as exc:
        return [], f"line {exc.lineno or 0}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:
        return [], str(exc) or type(exc).__name__
    found: dict[str, bool] = {}
    deep = b"import_module" in data or b"__import__" in data
    _visit(tree.body, False, deep, found)
    return sorted(found.items()), None


def _add(found: dict[str, bool], name: str, optional: bool) -> None:
    if not name or name.startswith(".") or name.split(".")[0] in STDLIB:
        return
    found[name] = found.get(name, True) and optional


def _visit(stmts: list[ast.stmt], optional: bool, deep: bool, found: dict[str, bool]) -> None:
    for node in stmts:
        if isinstance(node, ast.Import):
            for alias in node.names:
                _add(found, alias.name, optional)
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                # `from google import protobuf` may name a submodule: the dotted name lets
                # namespace packages resolve to the right distribution (longest prefix).
                for alias in node.names:
                    dotted = node.module if alias.name == "*" else f"{node.module}.{alias.name}"
                    _add(found, dotted, optional)
            continue
        if deep:
            _scan_calls(node, optional, found)
        handlers: list[ast.ExceptHandler] | None = getattr(node, "handlers", None)
        if handlers is not None:  # try / try-except* (Python 3.11)
            catches = any(_catches_import_error(h) for h in handlers)
            _visit(getattr(node, "body", []), optional or catches, deep, found)
            for handler in handlers:
                _visit(handler.body, optional, deep, found)
            _visit(getattr(node, "orelse", []), optional, deep, found)
            _visit(getattr(node, "finalbody", []), optional, deep, found)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            # Imports only a type checker sees never run, so they are not requirements.
            _visit(node.orelse, optional, deep, found)
        elif isinstance(node, ast.Match):
            for case in node.cases:
                _visit(case.body, optional, deep, found)
        else:
            for attr in ("body", "orelse", "finalbody"):
                children = getattr(node, attr, None)
                if isinstance(children, list):
                    _visit(children, optional, deep, found)


def _scan_calls(node: ast.stmt, optional: bool, found: dict[str, bool]) -> None:
    """``importlib.import_module("x")`` and ``__import__("x")`` in a statement's expressions."""
    stack = [c for c in ast.iter_child_nodes(node) if not _is_block(c)]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Call) and item.args:
            func = item.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            arg = item.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
            ):
                _add(found, arg.value, optional)
        stack.extend(c for c in ast.iter_child_nodes(item) if not _is_block(c))


def _is_block(node: ast.AST) -> bool:
    return isinstance(node, (ast.stmt, ast.excepthandler, ast.match_case))


def _catches_import_error(handler: ast.excepthandler) -> bool:
    kind = getattr(handler, "type", None)
    if kind is None:
        return True
    names = kind.elts if isinstance(kind, ast.Tuple) else [kind]
    for item in names:
        name = item.id if isinstance(item, ast.Name) else getattr(item, "attr", None)
        if name in _IMPORT_ERRORS:
            return True
    return False


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def local_names(files: list[str], script: str) -> tuple[set[str], dict[str, set[str]]]:
    """Top-level names the project itself provides.

    Returns the names importable from the project root, the script's folder and
    ``src/`` (a ``.py`` file or a folder holding ``.py`` files at any depth), and the
    names found in each folder, because a file run or imported from its own folder
    sees its siblings too.
    """
    children: dict[str, set[str]] = {}
    for rel in files:
        parts = PurePosixPath(rel).parts
        if not parts:
            continue
        leaf = parts[-1]
        if leaf.endswith(".py"):
            module = leaf[:-3]
        elif leaf.endswith(_EXTENSION_SUFFIXES):
            module = leaf.split(".")[0]
        else:
            continue
        for depth in range(len(parts)):
            folder = "/".join(parts[:depth])
            name = module if depth == len(parts) - 1 else parts[depth]
            children.setdefault(folder, set()).add(name)
    script_dir = PurePosixPath(script).parent.as_posix()
    script_dir = "" if script_dir == "." else script_dir
    common = set()
    for base in ("", script_dir, "src"):
        common |= children.get(base, set())
    return common, children


def scan_project(
    root: Path, files: list[str], script: str, cache_dir: Path | None = None
) -> ScanResult:
    """Third-party imports of every ``.py`` file in ``files`` (paths relative to ``root``)."""
    common, children = local_names(files, script)
    cached = _load_cache(root, cache_dir)
    fresh: dict[str, list[object]] = {}
    result = ScanResult()
    for rel in sorted(f for f in files if f.endswith(".py")):
        try:
            data = (root / rel).read_bytes()
        except OSError as exc:
            result.skipped.append(f"{rel} ({exc.strerror or exc})")
            continue
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        scan = _MEMORY.get(digest)
        entry = cached.get(rel)
        if scan is None and entry and entry[0] == digest:
            scan = ([(str(n), bool(o)) for n, o in entry[1]], entry[2])
        if scan is None:
            scan = scan_source(data, rel)
        if len(_MEMORY) > _MEMORY_LIMIT:
            _MEMORY.clear()
        _MEMORY[digest] = scan
        fresh[rel] = [digest, [[n, int(o)] for n, o in scan[0]], scan[1]]
        if scan[1] is not None:
            result.skipped.append(f"{rel} ({scan[1]})")
            continue
        folder = PurePosixPath(rel).parent.as_posix()
        local = common | children.get("" if folder == "." else folder, set())
        for name, optional in scan[0]:
            if name.split(".")[0] in local:
                continue
            result.imports[name] = result.imports.get(name, False) or not optional
    if cache_dir is not None and fresh != cached:
        _save_cache(root, cache_dir, fresh)
    return result


def _cache_file(root: Path, cache_dir: Path) -> Path:
    key = hashlib.blake2b(str(root.resolve()).encode(), digest_size=8).hexdigest()
    return cache_dir / f"imports-{key}.json"


def _load_cache(root: Path, cache_dir: Path | None) -> dict[str, list]:
    if cache_dir is None:
        return {}
    try:
        data = json.loads(_cache_file(root, cache_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _cache_version():
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _save_cache(root: Path, cache_dir: Path, files: dict[str, list[object]]) -> None:
    """Best effort and atomic: a cache that cannot be written is only slower."""
    tmp: str | None = None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".imports-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"version": _cache_version(), "files": files}, handle)
        os.replace(tmp, _cache_file(root, cache_dir))
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _cache_version() -> str:
    # The stdlib filter depends on the interpreter, so the cache does too.
    return f"{_CACHE_VERSION}-py{sys.version_info[0]}.{sys.version_info[1]}"
