"""Every error gridrun raises on purpose, in one tree.

    GridError                      anything the user can act on; printed as one line
    ├── UsageError                 bad flags, names or values given on the command line
    │   └── SweepSyntaxError       a hyperparameter value that cannot be expanded
    ├── ConfigError                a malformed --config YAML or GRID_HOME/config.yaml
    ├── ProjectError               the project folder or script cannot be used
    ├── DependencyError            a requirements source that cannot be read
    ├── BuildError                 an environment or image failed to build
    ├── StateError                 GRID_HOME or its database cannot be used
    ├── NotFoundError              an unknown run, experiment, datastore or image
    ├── BackendError               a backend is unavailable or refused an operation
    │   └── UnsupportedError       an option the chosen backend does not support
    └── DatastoreError             a datastore cannot be created, read or mounted

The CLI catches ``GridError`` at its edge, prints ``message`` (and ``hint``) once in
colour and exits non-zero. Anything else is a bug and shows a traceback only with
``--debug``. Errors from dependencies are translated at the boundary with
``raise XError(...) from exc`` so their causes survive for ``--debug``.
"""

from __future__ import annotations


class GridError(Exception):
    """Base class: an error the user can act on."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


class UsageError(GridError):
    exit_code = 2


class SweepSyntaxError(UsageError):
    pass


class ConfigError(GridError):
    exit_code = 2


class ProjectError(GridError):
    exit_code = 2


class DependencyError(GridError):
    pass


class BuildError(GridError):
    pass


class StateError(GridError):
    pass


class NotFoundError(GridError):
    pass


class BackendError(GridError):
    pass


class UnsupportedError(BackendError):
    exit_code = 2


class DatastoreError(GridError):
    pass


def out_of_space(exc: BaseException | None) -> bool:
    """Whether an error (or its cause) is a full disk or quota: ENOSPC, EDQUOT, or
    SQLite's "database or disk is full". Such a write can succeed once space is freed,
    so callers that must record something (an exit, a stop) retry it or go around it."""
    import errno
    import sqlite3

    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower():
            return True
        exc = exc.__cause__
    return False
