"""Datastore names, the ``grid:NAME:VERSION`` argument form and derived names.

Names are restricted to lowercase letters, digits and ``-`` because a name is a
folder under ``GRID_HOME/datastores``, part of a default mount dir
(``/datastores/NAME``) and part of an environment variable: anything wider could
escape its folder (``..``, ``/``) or need quoting somewhere.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from gridrun.errors import DatastoreError, UsageError

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})$")
ARCHIVE_SUFFIXES = (
    ".tar.gz",
    ".tar.bz2",
    ".tar.xz",
    ".tgz",
    ".tbz2",
    ".txz",
    ".tar",
    ".zip",
)


def validate_name(name: str) -> str:
    """Return ``name`` if usable as a datastore name, else raise a one-line error."""
    if not NAME_RE.match(name or ""):
        raise DatastoreError(
            f"Invalid datastore name '{name}': use lowercase letters, digits and '-' "
            "(at most 63, starting with a letter or digit).",
            hint="Pass --name with a valid name.",
        )
    return name


def strip_archive_suffix(filename: str) -> str:
    lower = filename.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return filename


def derive_name(source: str) -> str:
    """The name a source gets without ``--name``: its last path part, made valid."""
    if source.startswith(("http://", "https://")):
        last = PurePosixPath(unquote(urlparse(source).path)).name
    else:
        last = PurePosixPath(source.rstrip("/").replace("\\", "/")).name
    base = strip_archive_suffix(last).lower()
    base = re.sub(r"[^a-z0-9-]+", "-", base)
    base = re.sub(r"-{2,}", "-", base).strip("-")[:63].strip("-")
    if not base:
        raise DatastoreError(
            f"Cannot derive a datastore name from '{source}'.", hint="Pass --name NAME."
        )
    return base


def parse_grid_uri(arg: str) -> tuple[str, int | None] | None:
    """``grid:NAME:VERSION`` or ``grid:NAME`` -> ``(NAME, VERSION or None)``.

    Returns None for an argument that is not in that form at all (it is then passed
    to the script untouched); raises :class:`UsageError` for one that starts with
    ``grid:`` but cannot be a datastore reference, rather than guessing.
    """
    if not arg.startswith("grid:"):
        return None
    rest = arg[len("grid:") :]
    name, sep, version = rest.partition(":")
    if not NAME_RE.match(name) or (sep and not version.isdigit()) or (sep and int(version) < 1):
        raise UsageError(
            f"'{arg}' is not a datastore reference: use grid:NAME or grid:NAME:VERSION "
            "(NAME in lowercase letters, digits and '-', VERSION a positive integer)."
        )
    return name, int(version) if sep else None


def env_var(name: str) -> str:
    """``GRID_DATASTORE_<NAME>_DIR``: where the experiment finds the datastore."""
    return f"GRID_DATASTORE_{name.upper().replace('-', '_')}_DIR"
