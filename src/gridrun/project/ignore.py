"""Which files of a project belong in its snapshot.

Selection follows what users already write for git and Docker, so a project needs no
gridrun-specific setup:

* ``.gridignore`` at the project root, when present, is the only source of patterns;
* otherwise every ``.gitignore`` and ``.dockerignore`` in the tree applies, each relative
  to the folder it sits in, deeper files taking precedence (as git does);
* some things are never worth uploading and are always left out: ``.git``, virtualenvs,
  ``__pycache__``/``*.pyc`` and gridrun's own ``.grid``/``grid_artifacts`` folders.

Patterns are gitignore syntax (comments, ``/`` anchors, ``!`` negation, trailing ``/`` for
folders), matched by ``pathspec``. ``pathspec`` is imported only when a pattern file is
read, so importing :mod:`gridrun.project` stays cheap for the small supervisor process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

GRIDIGNORE = ".gridignore"
# Order matters: a later file in the same folder wins, like a later line in one file.
FALLBACK_IGNORE_FILES = (".gitignore", ".dockerignore")

ALWAYS_EXCLUDED_NAMES = frozenset({".git", "__pycache__", ".grid", "grid_artifacts"})
ALWAYS_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
# Folder names that hold a virtualenv (or conda env) only when it looks like one: a project
# may well have a package called ``env``.
VENV_NAMES = frozenset({".venv", "venv", "env"})


def is_virtualenv(path: str, name: str) -> bool:
    """True for a folder that is a Python environment, which never belongs in a snapshot."""
    if os.path.exists(os.path.join(path, "pyvenv.cfg")):
        return True
    return name in VENV_NAMES and os.path.exists(os.path.join(path, "bin", "activate"))


def always_excluded(path: str, name: str, is_dir: bool) -> bool:
    """The fixed exclusions no pattern can bring back (``path`` is the absolute path)."""
    if name in ALWAYS_EXCLUDED_NAMES:
        return True
    if is_dir:
        return is_virtualenv(path, name)
    return name.endswith(ALWAYS_EXCLUDED_SUFFIXES)


def _read_patterns(path: Path) -> list[str] | None:
    """The lines of one ignore file, or None when there is none (or it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return None
    return text.splitlines()


def _compile(lines: list[str]) -> Any:
    from pathspec import GitIgnoreSpec

    return GitIgnoreSpec.from_lines(lines)


class IgnoreRules:
    """The ignore patterns of one project, read folder by folder as they are needed.

    ``ignored(rel, is_dir)`` answers for one path relative to the root (``/``-separated),
    checking its parent folders too: as in git, nothing inside an ignored folder can be
    brought back. The snapshot walk prunes ignored folders itself and so calls
    :meth:`ignored_here`, which skips the parent check.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        gridignore = _read_patterns(self.root / GRIDIGNORE)
        self.source = GRIDIGNORE if gridignore is not None else "+".join(FALLBACK_IGNORE_FILES)
        # folder (relative, "" for the root) -> compiled spec, or None when it has no patterns
        self._specs: dict[str, Any] = {}
        if gridignore is not None:
            self._specs[""] = _compile(gridignore) if gridignore else None
        self._only_root = gridignore is not None

    def _spec_for(self, folder: str) -> Any:
        if folder in self._specs:
            return self._specs[folder]
        spec = None
        if not self._only_root:
            lines: list[str] = []
            base = self.root / folder if folder else self.root
            for name in FALLBACK_IGNORE_FILES:
                lines.extend(_read_patterns(base / name) or [])
            spec = _compile(lines) if any(_is_pattern(line) for line in lines) else None
        self._specs[folder] = spec
        return spec

    def ignored_here(self, rel: str, is_dir: bool) -> bool:
        """Whether the patterns exclude ``rel`` itself, assuming its parents are included."""
        parts = rel.split("/")
        # Deepest folder first: the nearest ignore file that has an opinion decides.
        for depth in range(len(parts) - 1, -1, -1):
            folder = "/".join(parts[:depth])
            if self._only_root and folder:
                continue
            spec = self._spec_for(folder)
            if spec is None:
                continue
            sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
            result = spec.check_file(sub).include
            if result is not None:
                return bool(result)
        return False

    def ignored(self, rel: str, is_dir: bool = False) -> bool:
        """Whether ``rel`` (relative to the root) is left out of the snapshot.

        Includes the fixed exclusions, so a caller building something else from the
        project (the docker backend's build context) leaves out the same files.
        """
        rel = rel.strip("/")
        if not rel or rel == ".":
            return False
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            sub_is_dir = is_dir or i < len(parts)
            if always_excluded(str(self.root / sub), parts[i - 1], sub_is_dir):
                return True
            if self.ignored_here(sub, sub_is_dir):
                return True
        return False

    def __repr__(self) -> str:
        return f"IgnoreRules(root={str(self.root)!r}, source={self.source!r})"


def _is_pattern(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def ignore_spec(root: Path) -> IgnoreRules:
    """The ignore rules of the project at ``root`` (see the module docstring)."""
    return IgnoreRules(Path(root))
