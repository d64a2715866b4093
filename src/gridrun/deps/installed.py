"""The invoking environment: which distribution provides an import, at which version.

``importlib.metadata.packages_distributions()`` reads every installed distribution's
metadata (about 100 ms for 100 packages), far too slow to pay on every ``grid run``.
It is computed once per process and, when a cache folder is given, kept on disk with
everything looked up since (versions, requirements, import owners), keyed by the
modification times of the ``sys.path`` folders: installing or removing a package
rewrites its site-packages folder, which invalidates the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as metadata
import importlib.util
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gridrun.deps.mapping import IMPORT_TO_DIST
from gridrun.deps.pep508 import InvalidRequirement, canonicalize_name, parse_requirement
from gridrun.deps.pypimodules import choose, is_placeholder

_CACHE_VERSION = 3
_ENVIRONMENTS: dict[str, Environment] = {}
_EXTRA_RE = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def table_lookup(module: str) -> str | None:
    """The mapping table's entry for the longest dotted prefix of ``module``."""
    parts = module.split(".")
    for size in range(len(parts), 0, -1):
        dist = IMPORT_TO_DIST.get(".".join(parts[:size]))
        if dist:
            return dist
    return None


def _signature() -> list[list[Any]]:
    try:
        cwd = os.getcwd()
    except OSError:  # run from a folder that was deleted: sys.path's '' means nothing
        cwd = ""
    out: list[list[Any]] = [[sys.executable, sys.version]]
    for entry in sys.path:
        if not entry or entry == cwd:
            continue
        with contextlib.suppress(OSError):
            out.append([entry, os.stat(entry).st_mtime_ns])
    return out


class Environment:
    """Distributions of the running interpreter, looked up lazily and remembered."""

    def __init__(self, cache_dir: Path | None) -> None:
        self.cache_file = None
        if cache_dir is not None:
            key = hashlib.blake2b(sys.executable.encode(), digest_size=8).hexdigest()
            self.cache_file = cache_dir / f"environment-{key}.json"
        self.signature = _signature()
        self.data: dict[str, Any] = {}
        self._dirty = False
        self._files: dict[str, set[str]] = {}
        self._namespaces: dict[str, bool] = {}
        self.notes: list[str] = []  # problems worth a warning (the module index offline)
        self._load()

    @classmethod
    def current(cls, cache_dir: Path | None = None) -> Environment:
        """One per process and cache folder, rebuilt when ``sys.path`` folders change."""
        key = str(cache_dir)
        env = _ENVIRONMENTS.get(key)
        if env is None or env.signature != _signature():
            env = _ENVIRONMENTS[key] = cls(cache_dir)
        return env

    # ----------------------------------------------------------------- cache
    def _load(self) -> None:
        if self.cache_file is not None:
            try:
                data = json.loads(self.cache_file.read_text(encoding="utf-8"))
                if data.get("version") == _CACHE_VERSION and data.get("signature") == (
                    self.signature
                ):
                    self.data = data
                    return
            except (OSError, ValueError, AttributeError):
                pass
        self.data = {
            "version": _CACHE_VERSION,
            "signature": self.signature,
            "packages": None,
            "resolved": {},
            "dists": {},
            "plugins": {},
        }

    def save(self) -> None:
        """Write what was looked up; best effort, a failed write only costs time."""
        if self.cache_file is None or not self._dirty:
            return
        tmp: str | None = None
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.cache_file.parent, prefix=".env-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.data, handle)
            os.replace(tmp, self.cache_file)
            self._dirty = False
        except OSError:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    # ---------------------------------------------------------------- lookups
    @property
    def packages(self) -> dict[str, list[str]]:
        if self.data["packages"] is None:
            found = metadata.packages_distributions()
            self.data["packages"] = {k: list(dict.fromkeys(v)) for k, v in found.items()}
            self._dirty = True
        return self.data["packages"]

    def distribution_for(self, module: str, context: Iterable[str] = ()) -> str:
        """The distribution an import needs: installed owner, then the table, then the name.

        ``context``: the code's other top-level imports. For a module installed nowhere
        here and unknown to the table, a plug-in of one of them (``django-haystack``
        when ``django`` is imported too) wins over a namesake on the index.
        """
        resolved = self.data["resolved"]
        if module not in resolved:
            resolved[module] = self._resolve(module)
            self._dirty = True
        plugin = self._plugin(module, context) if context else None
        return plugin or resolved[module]

    def _plugin(self, module: str, context: Iterable[str]) -> str | None:
        top = module.split(".")[0]
        if self.packages.get(top) or table_lookup(module):
            return None
        plugins = self.data["plugins"]
        if top not in plugins:
            from gridrun.deps.pypimodules import module_index

            index = module_index(self.notes)
            key = canonicalize_name(top)
            rows = index.candidates(top) if index is not None else []
            # Only the rows that can be a framework's plug-in: ``<something>-<module>``.
            plugins[top] = [r for r in rows if canonicalize_name(r[0]).endswith(key)]
            self._dirty = True
        key = canonicalize_name(top)
        names = {f"{canonicalize_name(c)}{sep}{key}" for c in context for sep in ("-", "")}
        names.discard(key)
        rows = [
            (str(r[0]), int(r[1]), str(r[2]))
            for r in plugins[top]
            if canonicalize_name(r[0]) in names and not is_placeholder(str(r[2]))
        ]
        if not rows:
            return None
        return choose(top, rows, context)

    def _resolve(self, module: str) -> str:
        parts = module.split(".")
        top = parts[0]
        candidates = self.packages.get(top, [])
        if candidates:
            namespace = self._is_namespace(top)
            if len(parts) > 1 and (namespace or len(candidates) > 1):
                owner = self._owner(parts, candidates)
                if owner:
                    return owner
            if not namespace:
                return self._preferred(top, candidates)
        return table_lookup(module) or self._from_index(module) or top

    def _from_index(self, module: str) -> str | None:
        """pigar's database: the longest dotted prefix it knows (top-level names only)."""
        from gridrun.deps.pypimodules import module_index

        index = module_index(self.notes)
        if index is None:
            return None
        return index.distribution(module.split(".")[0])

    def _preferred(self, top: str, candidates: list[str]) -> str:
        if len(candidates) == 1:
            return candidates[0]
        listed = IMPORT_TO_DIST.get(top)
        for name in candidates:
            if listed and canonicalize_name(name) == canonicalize_name(listed):
                return name
        return sorted(candidates, key=canonicalize_name)[0]

    def _is_namespace(self, top: str) -> bool:
        if top not in self._namespaces:
            self._namespaces[top] = self._find_namespace(top)
        return self._namespaces[top]

    @staticmethod
    def _find_namespace(top: str) -> bool:
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError, AttributeError):
            return False
        return (
            spec is not None
            and spec.submodule_search_locations is not None
            and spec.origin in (None, "namespace")
        )

    def _owner(self, parts: list[str], candidates: list[str]) -> str | None:
        """The candidate whose files hold the longest dotted prefix of the import."""
        for size in range(len(parts), 1, -1):
            prefix = "/".join(parts[:size])
            for name in candidates:
                if prefix in self._modules_of(name):
                    return name
        return None

    def _modules_of(self, name: str) -> set[str]:
        if name not in self._files:
            modules: set[str] = set()
            with contextlib.suppress(metadata.PackageNotFoundError, OSError):
                for file in metadata.distribution(name).files or []:
                    pieces = file.parts
                    # Only regular packages (a folder with __init__) and modules count:
                    # a namespace folder such as google/cloud in googleapis-common-protos
                    # does not make that distribution the owner of google.cloud.storage.
                    if pieces and pieces[-1].startswith("__init__."):
                        modules.add("/".join(pieces[:-1]))
                    elif pieces and pieces[-1].endswith((".py", ".so", ".pyd")):
                        modules.add("/".join([*pieces[:-1], pieces[-1].split(".")[0]]))
            self._files[name] = modules
        return self._files[name]

    def info(self, name: str) -> tuple[str, str, list[str]] | None:
        """``(metadata name, version, Requires-Dist)`` of an installed distribution."""
        key = canonicalize_name(name)
        dists = self.data["dists"]
        if key not in dists:
            try:
                meta = metadata.distribution(name).metadata
                dists[key] = [
                    meta["Name"] or name,
                    meta["Version"] or "",
                    list(meta.get_all("Requires-Dist") or []),
                ]
            except (metadata.PackageNotFoundError, OSError, ValueError):
                dists[key] = None
            self._dirty = True
        found = dists[key]
        return (found[0], found[1], found[2]) if found else None

    def pinned(self, name: str) -> str | None:
        """``Name==version`` when installed here (local ``+cu118`` labels dropped)."""
        found = self.info(name)
        if not found or not found[1]:
            return None
        return f"{found[0]}=={found[1].split('+')[0]}"

    def closure(self, wanted: list[tuple[str, tuple[str, ...]]]) -> set[str]:
        """PEP 503 names of the given distributions and everything they require here."""
        seen: set[str] = set()
        stack = list(wanted)
        while stack:
            name, extras = stack.pop()
            key = canonicalize_name(name)
            if key in seen and not extras:
                continue
            seen.add(key)
            found = self.info(name)
            if not found:
                continue
            requested = {canonicalize_name(e) for e in extras}
            for line in found[2]:
                try:
                    req = parse_requirement(line)
                except InvalidRequirement:
                    continue
                needs = {canonicalize_name(e) for e in _EXTRA_RE.findall(req.marker or "")}
                if needs and not needs & requested:
                    continue
                if canonicalize_name(req.name) not in seen:
                    stack.append((req.name, req.extras))
        return seen
