"""Which modules a run imports, read from the AST of the entry script's import closure.

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
from typing import NamedTuple

from gridrun.deps.reqfile import STDLIB
from gridrun.deps.stdlib import PY2_STDLIB, REMOVED_STDLIB

_CACHE_VERSION = 4
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
_EXTENSION_SUFFIXES = (".so", ".pyd")
# Evaluating ``sys.version_info`` tests as a current Python 3 would: the branch Python 3
# takes is required, the other is a fallback (usually for Python 2) and optional.
_PY3 = (3, 12, 0)
_PY2_FLAGS = {"PY2": True, "PY3": False, "IS_PY2": True, "IS_PY3": False, "PY26": True}


class FileScan(NamedTuple):
    """What one file imports.

    ``imports``: absolute non-stdlib dotted names and relative ones (leading dots), with
    ``True`` where optional; ``stdlib``: standard-library names it uses (``collections.Set``),
    the evidence for the Python it needs; ``uses``: attribute paths on imported modules
    (``flask.ext``), checked against the built environment.
    """

    imports: list[tuple[str, bool]]
    error: str | None
    stdlib: list[tuple[str, bool]]
    uses: list[str]
    python2: bool = False  # parsed by Python 2.7: Python 3 cannot read it
    # The oldest Python 3 whose grammar reads the file, and the construct that needs it.
    syntax: tuple[int, int, str] = (3, 0, "")


_MEMORY: dict[str, FileScan] = {}
_MEMORY_LIMIT = 50_000


@dataclass
class ScanResult:
    """Third-party imports of a project: dotted name -> required (False: optional only)."""

    imports: dict[str, bool] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # "path (line N: message)"
    stdlib: dict[str, bool] = field(default_factory=dict)  # stdlib names -> required
    uses: set[str] = field(default_factory=set)  # attribute paths on third-party modules
    files: list[str] = field(default_factory=list)  # the files read (the closure)
    python2: list[str] = field(default_factory=list)  # files only Python 2 can parse
    # The newest grammar any file of the closure needs: (3, 8, "an assignment expression
    # (:=) in x.py"); the build never steps down below it.
    syntax: tuple[int, int, str] = (3, 0, "")


def scan_source(data: bytes, filename: str = "<file>") -> FileScan:
    """Non-stdlib imports of one file's source, or the syntax error met."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes warn while parsing
            tree = ast.parse(data, filename=filename)
    except SyntaxError as exc:
        return FileScan([], f"line {exc.lineno or 0}: {exc.msg}", [], [])
    except (ValueError, RecursionError, MemoryError) as exc:
        return FileScan([], str(exc) or type(exc).__name__, [], [])
    visitor = _Visitor(b"import_module" in data or b"__import__" in data)
    try:
        visitor.visit(tree.body, False)
        uses = visitor.attribute_uses(tree)
    except RecursionError:
        return FileScan([], "nested too deeply to read", [], [])
    return FileScan(
        sorted(visitor.found.items()),
        None,
        sorted(visitor.stdlib.items()),
        uses,
        syntax=syntax_floor(tree),
    )


# The grammar each Python 3 release added that an older one cannot parse, by AST node.
_SYNTAX: list[tuple[tuple[int, int], str, str]] = [
    ((3, 12), "TypeAlias", "a type statement"),
    ((3, 11), "TryStar", "except*"),
    ((3, 10), "Match", "a match statement"),
    ((3, 8), "NamedExpr", "an assignment expression (:=)"),
    ((3, 6), "JoinedStr", "an f-string"),
    ((3, 6), "AnnAssign", "a variable annotation"),
]


def syntax_floor(tree: ast.AST) -> tuple[int, int, str]:
    """The oldest Python 3 that parses ``tree``'s source, and the construct that needs it.

    Read from the tree already parsed (one walk, no parse per version): the constructs
    that matter when stepping down to an installed 3.6-3.11 for an old package. Finer
    points (3.9's relaxed decorators, 3.12's f-string quoting) are not told apart.
    """
    wanted = {
        getattr(ast, name): (version, what) for version, name, what in _SYNTAX if hasattr(ast, name)
    }
    best: tuple[int, int, str] = (3, 0, "")
    for node in ast.walk(tree):
        found = wanted.get(type(node))
        if found is None:
            args = getattr(node, "posonlyargs", None) if isinstance(node, ast.arguments) else None
            params = getattr(node, "type_params", None)
            if args:
                found = ((3, 8), "a positional-only parameter (/)")
            elif params:
                found = ((3, 12), "a type parameter list")
            elif isinstance(node, (ast.AsyncFunctionDef, ast.Await)):
                found = ((3, 5), "async/await")
            else:
                continue
        if found[0] > best[:2]:
            best = (*found[0], found[1])
    return best


def is_stdlib(name: str) -> bool:
    """Part of some Python's standard library (this one's, 2.7's, or since removed)."""
    top = name.split(".")[0]
    return top in STDLIB or top in PY2_STDLIB or top in REMOVED_STDLIB


class _Visitor:
    def __init__(self, deep: bool) -> None:
        self.deep = deep
        self.found: dict[str, bool] = {}
        self.stdlib: dict[str, bool] = {}
        self.aliases: dict[str, str] = {}  # local name -> module bound by `import`

    def add(self, name: str, optional: bool) -> None:
        if not name or name.startswith("__future__"):
            return
        target = self.stdlib if not name.startswith(".") and is_stdlib(name) else self.found
        target[name] = target.get(name, True) and optional

    def visit(self, stmts: list[ast.stmt], optional: bool) -> None:
        for node in stmts:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.add(alias.name, optional)
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.aliases[top] = top
                continue
            if isinstance(node, ast.ImportFrom):
                self._import_from(node, optional)
                continue
            if self.deep:
                self._scan_calls(node, optional)
            handlers: list[ast.ExceptHandler] | None = getattr(node, "handlers", None)
            if handlers is not None:  # try / try-except* (Python 3.11)
                catches = any(_catches_import_error(h) for h in handlers)
                self.visit(getattr(node, "body", []), optional or catches)
                for handler in handlers:
                    # A fallback for a failed import runs only when the first choice is
                    # missing: ``except ImportError: import simplejson`` is optional.
                    self.visit(handler.body, optional or _catches_import_error(handler))
                self.visit(getattr(node, "orelse", []), optional)
                self.visit(getattr(node, "finalbody", []), optional)
            elif isinstance(node, ast.If):
                taken = _python3_takes(node.test)
                if taken == "type-checking":
                    # Imports only a type checker sees never run: not requirements.
                    self.visit(node.orelse, optional)
                else:
                    # An unknown condition leaves both branches as they are.
                    self.visit(node.body, optional or taken is False)
                    self.visit(node.orelse, optional or taken is True)
            elif isinstance(node, ast.Match):
                for case in node.cases:
                    self.visit(case.body, optional)
            else:
                for attr in ("body", "orelse", "finalbody"):
                    children = getattr(node, attr, None)
                    if isinstance(children, list):
                        self.visit(children, optional)

    def _import_from(self, node: ast.ImportFrom, optional: bool) -> None:
        dots = "." * node.level
        base = f"{dots}{node.module}" if node.module else dots
        for alias in node.names:
            if alias.name == "*":
                self.add(base, optional)
                continue
            # `from google import protobuf` may name a submodule: the dotted name lets
            # namespace packages resolve to the right distribution (longest prefix).
            sep = "" if base.endswith(".") else "."
            self.add(f"{base}{sep}{alias.name}", optional)

    def _scan_calls(self, node: ast.stmt, optional: bool) -> None:
        """``importlib.import_module("x")`` and ``__import__("x")`` in a statement."""
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
                    and not arg.value.startswith(".")
                ):
                    self.add(arg.value, optional)
            stack.extend(c for c in ast.iter_child_nodes(item) if not _is_block(c))

    def attribute_uses(self, tree: ast.Module) -> list[str]:
        """``module.attr`` for names bound by imports: ``collections.Set``, ``flask.ext``."""
        if not self.aliases:
            return []
        out: set[str] = set()
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in self.aliases
                and isinstance(node.ctx, ast.Load)
            ):
                out.add(f"{self.aliases[node.value.id]}.{node.attr}")
        return sorted(out)


def _python3_takes(test: ast.expr) -> bool | str | None:
    """Whether Python 3 runs an ``if`` body: True, False, None (unknown), "type-checking"."""
    if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
        return "type-checking"
    if isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING":
        return "type-checking"
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _python3_takes(test.operand)
        return (not inner) if isinstance(inner, bool) else None
    name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
    if isinstance(test, ast.Name | ast.Attribute) and name in _PY2_FLAGS:
        return not _PY2_FLAGS[name]
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left = _version_value(test.left)
        right = _constant(test.comparators[0])
        if left is not None and right is not None:
            try:
                return bool(_COMPARE[type(test.ops[0])](left, right))
            except (KeyError, TypeError):
                return None
    return None


_COMPARE = {
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}


def _version_value(node: ast.expr) -> object:
    """``sys.version_info`` (or ``[0]``, ``.major``, ``[:2]``) as Python 3 would see it."""

    def is_version_info(n: ast.expr) -> bool:
        return (isinstance(n, ast.Attribute) and n.attr == "version_info") or (
            isinstance(n, ast.Name) and n.id == "version_info"
        )

    if is_version_info(node):
        return _PY3
    if isinstance(node, ast.Attribute) and is_version_info(node.value):
        return {"major": _PY3[0], "minor": _PY3[1]}.get(node.attr)
    if isinstance(node, ast.Subscript) and is_version_info(node.value):
        index = node.slice
        if isinstance(index, ast.Constant) and isinstance(index.value, int):
            return _PY3[index.value] if index.value < len(_PY3) else None
        if isinstance(index, ast.Slice) and index.lower is None and index.step is None:
            upper = _constant(index.upper) if index.upper is not None else None
            return _PY3[:upper] if isinstance(upper, int) else None
    return None


def _constant(node: ast.expr | None) -> object:
    try:
        value = ast.literal_eval(node) if node is not None else None
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return None
    return value if isinstance(value, int | tuple) else None


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


class _Layout:
    """The project's files as Python's import system would find them."""

    def __init__(self, files: list[str], script: str) -> None:
        self.files = set(files)
        self.dirs: set[str] = set()  # folders with Python files below them
        # Compiled extensions by module path: native/fast.cpython-311-x86_64-linux-gnu.so
        self.extensions = {
            f.split(".", 1)[0]
            if "/" not in f
            else f.rsplit("/", 1)[0] + "/" + f.rsplit("/", 1)[1].split(".", 1)[0]
            for f in files
            if f.endswith(_EXTENSION_SUFFIXES)
        }
        for rel in files:
            if rel.endswith((".py", *_EXTENSION_SUFFIXES)):
                parts = PurePosixPath(rel).parts
                for depth in range(1, len(parts)):
                    self.dirs.add("/".join(parts[:depth]))
        folder = _folder(script)
        # Python puts the script's folder first on sys.path; the project root and a
        # src/ layout stand for the project installed or run as a package.
        self.bases = list(dict.fromkeys([folder, "", "src"]))

    def module_files(self, folder: str, parts: list[str]) -> list[str] | None:
        """Files that importing ``parts`` from ``folder`` runs, or None if not there."""
        prefix = f"{folder}/" if folder else ""
        out: list[str] = []
        for i in range(len(parts)):
            path = prefix + "/".join(parts[: i + 1])
            init = f"{path}/__init__.py"
            if init in self.files:
                out.append(init)
            elif f"{path}.py" in self.files:
                out.append(f"{path}.py")
                return out  # a module: the rest are attributes
            elif path in self.dirs:
                continue  # a namespace package
            elif i == 0 and path in self.extensions:
                return out
            else:
                return out if i else None
        return out

    def resolve(self, name: str, importer: str) -> list[str] | None:
        """The project files an import of ``name`` in ``importer`` runs; None: not local."""
        if name.startswith("."):
            level = len(name) - len(name.lstrip("."))
            package = PurePosixPath(importer).parent.parts
            package = package[: len(package) - (level - 1)] if level > 1 else package
            rest = [p for p in name.lstrip(".").split(".") if p]
            base = "/".join(package)
            found = self.module_files(base, rest) if rest else []
            init = f"{base}/__init__.py" if base else "__init__.py"
            return [*([init] if init in self.files else []), *(found or [])]
        parts = name.split(".")
        # Python 2 code imports siblings without a dot: the importer's folder comes last.
        for base in [*self.bases, _folder(importer)]:
            found = self.module_files(base, parts)
            if found is not None:
                return found
        return None


def _folder(rel: str) -> str:
    folder = PurePosixPath(rel).parent.as_posix()
    return "" if folder == "." else folder


def scan_project(
    root: Path, files: list[str], script: str, cache_dir: Path | None = None
) -> ScanResult:
    """Third-party imports of the script's import closure (paths relative to ``root``).

    Starts from the entry script and follows the project modules it imports, resolved as
    Python would. Docs, examples and tools the script never imports are not read. With
    no Python entry script (``grid sync-env`` without ``--script``, a ``.sh`` script)
    every ``.py`` file is an entry point.
    """
    layout = _Layout(files, script)
    py_files = sorted(f for f in files if f.endswith(".py"))
    roots = [script] if script.endswith(".py") and script in layout.files else py_files
    cached = _load_cache(root, cache_dir)
    fresh: dict[str, list[object]] = {}
    result = ScanResult()
    queue = list(roots)
    seen = set(queue)
    while queue:
        rel = queue.pop(0)
        scan = _scan_file(root, rel, cached, fresh, result)
        if scan is None:
            continue
        result.files.append(rel)
        if scan.syntax[:2] > result.syntax[:2]:
            result.syntax = (scan.syntax[0], scan.syntax[1], f"{scan.syntax[2]} in {rel}")
        for name, optional in scan.imports:
            local = layout.resolve(name, rel)
            if local is None:
                result.imports[name] = result.imports.get(name, False) or not optional
                continue
            for follow in local:
                if follow not in seen and follow in layout.files:
                    seen.add(follow)
                    queue.append(follow)
        for name, optional in scan.stdlib:
            result.stdlib[name] = result.stdlib.get(name, False) or not optional
        for use in scan.uses:
            if layout.resolve(use, rel) is None:
                result.uses.add(use)
    result.imports = {
        n: r for n, r in result.imports.items() if not n.startswith(".")
    }  # a relative import that leads nowhere is a missing file, not a package
    if cache_dir is not None and fresh and any(cached.get(k) != v for k, v in fresh.items()):
        _save_cache(root, cache_dir, {**cached, **fresh})
    return result


def _scan_file(
    root: Path,
    rel: str,
    cached: dict[str, list],
    fresh: dict[str, list[object]],
    result: ScanResult,
) -> FileScan | None:
    try:
        data = (root / rel).read_bytes()
    except OSError as exc:
        result.skipped.append(f"{rel} ({exc.strerror or exc})")
        return None
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    scan = _MEMORY.get(digest)
    entry = cached.get(rel)
    if scan is None and entry and entry[0] == digest:
        with contextlib.suppress(ValueError, TypeError, IndexError):
            scan = FileScan(
                [(str(n), bool(o)) for n, o in entry[1]],
                entry[2],
                [(str(n), bool(o)) for n, o in entry[3]],
                [str(u) for u in entry[4]],
                bool(entry[5]),
                (int(entry[6][0]), int(entry[6][1]), str(entry[6][2])),
            )
    if scan is None:
        scan = scan_source(data, rel)
        if scan.error is not None:
            from gridrun.deps.py2scan import python2_imports

            old = python2_imports(root / rel)
            if old is not None:  # Python 2 source: its imports count, and it is evidence
                scan = FileScan(
                    [(n, o) for n, o in old if not is_stdlib(n)],
                    None,
                    [(n, o) for n, o in old if is_stdlib(n)],
                    [],
                    True,
                )
    if len(_MEMORY) > _MEMORY_LIMIT:
        _MEMORY.clear()
    _MEMORY[digest] = scan
    fresh[rel] = [
        digest,
        [[n, int(o)] for n, o in scan.imports],
        scan.error,
        [[n, int(o)] for n, o in scan.stdlib],
        list(scan.uses),
        int(scan.python2),
        list(scan.syntax),
    ]
    if scan.error is not None:
        result.skipped.append(f"{rel} ({scan.error})")
        return None
    if scan.python2:
        result.python2.append(rel)
    return scan


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
