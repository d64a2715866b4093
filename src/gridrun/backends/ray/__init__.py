"""The Ray backend: ``grid run --backend ray`` on an existing Ray cluster.

    settings.py     where the cluster is (--ray_address, RAY_ADDRESS, config) and
                    what every experiment asks of it (custom resources, shared paths)
    package.py      the snapshot as it travels: a tar in the driver job's working_dir
    cluster.py      the one ``ray.init`` connection; submitting a run's driver job
    driver.py       the run's driver job on the head node, hosting its coordinator
    coordinator.py  the run's actor: tasks per experiment, their output and state
    node.py         the task on a node: cached uv env, working copy, script, artifacts
    task.py         the typed message from the agent to a node for one attempt
    backend.py      the agent-side backend behind gridrun's protocol; the agent's
                    engine watcher holds its Ray connection

Only ``backend.py``'s class is imported by the registry; Ray itself loads lazily.
"""

from __future__ import annotations

from gridrun.backends.ray.backend import RayBackend

__all__ = ["RayBackend"]
