"""Compute backends behind one protocol (:mod:`gridrun.backends.base`).

:mod:`gridrun.backends.registry` is the only place that names backends. Adding one is
a folder ``backends/<name>/`` whose package exports a
:class:`~gridrun.backends.base.Backend` subclass, its lines in the registry and one entry
in the conformance suite (``tests/conformance/``); see ``docs/backends.md``. Backends
are imported lazily, so ``local`` never imports the Docker SDK or Ray.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from gridrun.backends.base import (
    AttemptResult,
    Backend,
    BuildRequest,
    Capabilities,
    Job,
    PollState,
    TerminationReason,
)
from gridrun.errors import UsageError

if TYPE_CHECKING:
    from gridrun.home import GridHome

from gridrun.backends.registry import BACKENDS as _REGISTRY
from gridrun.backends.registry import TESTING as _TESTING

BACKENDS = tuple(_REGISTRY)


def backend_class(name: str, *, testing: bool = False) -> type[Backend]:
    """The class registered as ``name``, imported now; a one-line error if unknown.

    Test-only backends resolve with ``testing=True`` or, for code that looks a backend up
    by a recorded name (the agent reconciling), with ``GRIDRUN_TEST_BACKENDS=1`` set.
    """
    testing = testing or os.environ.get("GRIDRUN_TEST_BACKENDS") == "1"
    target = _REGISTRY.get(name) or (_TESTING.get(name) if testing else None)
    if target is None:
        raise UsageError(
            f"Unknown backend '{name}'.", hint=f"Valid backends: {', '.join(BACKENDS)}."
        )
    module, cls = target.split(":")
    found: type[Backend] = getattr(importlib.import_module(module), cls)
    return found


def get_backend(name: str, home: GridHome | None = None, *, testing: bool = False) -> Backend:
    """A new instance of the backend called ``name``, serving ``home`` (GRID_HOME)."""
    return backend_class(name, testing=testing)(home)


__all__ = [
    "BACKENDS",
    "AttemptResult",
    "Backend",
    "BuildRequest",
    "Capabilities",
    "Job",
    "PollState",
    "TerminationReason",
    "backend_class",
    "get_backend",
]
