"""The Docker backend: one cached image per run, one container per experiment.

    backend.py      the backend behind gridrun's protocol: containers, logs, stop
    image.py        building (or finding cached) the run's image, tags, last use
    dockerfile.py   the generated Dockerfile and build context; apt.txt parsing
    images.py       listing and pruning cached images (``grid images``)

The Docker SDK is imported lazily: ``grid`` with another backend never loads it.
"""

from __future__ import annotations

from gridrun.backends.docker.backend import DockerBackend, connect, container_name

__all__ = ["DockerBackend", "connect", "container_name"]
