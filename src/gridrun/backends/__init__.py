"""Compute backends behind one protocol (:mod:`gridrun.backends.base`).

Adding a backend touches one module here plus its tests: subclass
:class:`~gridrun.backends.base.Backend` and register it in ``BACKENDS``.
"""

from __future__ import annotations

from gridrun.backends.base import Backend, BuildRequest, Job
from gridrun.errors import UsageError

_REGISTRY = {
    "local": "gridrun.backends.local:LocalBackend",
    "docker": "gridrun.backends.docker:DockerBackend",
    "ray": "gridrun.backends.ray:RayBackend",
}

BACKENDS = tuple(_REGISTRY)


def get_backend_class(name: str) -> type[Backend]:
    """The backend class called ``name``, imported lazily so ``local`` never imports docker."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"Unknown backend '{name}'.", hint=f"Valid backends: {', '.join(BACKENDS)}."
        ) from None
    import importlib

    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def get_backend(name: str) -> Backend:
    """An instance of the backend called ``name``."""
    return get_backend_class(name)()


__all__ = ["BACKENDS", "Backend", "BuildRequest", "Job", "get_backend", "get_backend_class"]
