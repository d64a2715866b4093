"""The one place that names backends, and what each adds to the command line and config.

Plain data with no imports, so the CLI and the config reader can consult it without
loading any backend. Adding a backend is its folder plus its lines here.
"""

from __future__ import annotations

#: name -> "module:Class", imported only when that backend is used.
BACKENDS: dict[str, str] = {
    "local": "gridrun.backends.local:LocalBackend",
    "docker": "gridrun.backends.docker:DockerBackend",
    "ray": "gridrun.backends.ray:RayBackend",
    "slurm": "gridrun.backends.slurm.backend:SlurmBackend",
}

#: In-process and deterministic, for tests only: never offered to users.
TESTING: dict[str, str] = {
    "fake": "gridrun.backends.fake:FakeBackend",
}

#: ``grid run`` options a backend owns: option -> (backend, help). The value reaches the
#: backend as ``RunSpec.backend_options[option]``, which ``Backend.validate`` resolves.
OPTIONS: dict[str, tuple[str, str]] = {
    "ray_address": (
        "ray",
        "Ray cluster (host:port or http://host:8265); else RAY_ADDRESS, else ray.address "
        "in GRID_HOME/config.yaml.",
    ),
    "ray_nodes_fetch": (
        "ray",
        "How a run from a repository reaches Ray nodes: auto (ship the snapshot, nodes "
        "fetch the commit when they can), always (nodes fetch; what the repository holds "
        "is not shipped), never (ship it, nodes never fetch); else ray.nodes_fetch in "
        "GRID_HOME/config.yaml, else auto.",
    ),
}

OPTIONS.update(
    {
        "slurm_partition": (
            "slurm",
            "Slurm partition for every job; else slurm.partition in GRID_HOME/config.yaml, "
            "else the cluster's default.",
        ),
        "slurm_conf": (
            "slurm",
            "The Slurm cluster's config file (its SLURM_CONF); else SLURM_CONF, else "
            "slurm.conf in GRID_HOME/config.yaml.",
        ),
        "slurm_time": (
            "slurm",
            "Slurm time limit of each job (--time: minutes, HH:MM:SS or D-HH:MM:SS); else "
            "slurm.time in GRID_HOME/config.yaml.",
        ),
    }
)

#: Sections of GRID_HOME/config.yaml a backend owns and checks itself (``ray:``).
CONFIG_SECTIONS: frozenset[str] = frozenset({"ray", "slurm"})
