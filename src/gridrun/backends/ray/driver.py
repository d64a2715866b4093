"""The run's driver: the entrypoint of the one Ray Job that each run submits.

``python -m gridrun.backends.ray.driver ACTOR_NAME`` runs on the head node, in the
job's runtime_env (the run's snapshot package as ``working_dir``, gridrun itself as a
``py_module``). It creates the run's named :class:`~.coordinator.Coordinator` on the
head node (detached: see coordinator.py) and waits until the agent releases the run.
The coordinator is detached so that it outlives this process when the node this
process is attached to dies; the driver ends it once the run is released, and the
agent's bridge ends it if the driver has gone meanwhile (``grid stop`` stops a run,
not ``ray job stop``).
"""

from __future__ import annotations

import contextlib
import sys
import time

NAMESPACE = "gridrun"


def main(argv: list[str]) -> int:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    import ray
    from gridrun.backends.ray.coordinator import actor_class

    (name,) = argv
    ray.init(namespace=NAMESPACE, log_to_driver=False)
    head = _head_node_id() or ray.get_runtime_context().get_node_id()
    coordinator = (
        actor_class()
        .options(
            name=name,
            num_cpus=0,
            max_restarts=0,
            lifetime="detached",  # see coordinator.py: it must not die with this process
            scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=True),
        )
        .remote()
    )
    # No SIGTERM handler ends the coordinator: a driver whose raylet dies may get one
    # too, and the coordinator must outlive it to report the node's death.
    ray.get(coordinator.ping.remote())  # created and answering
    print(f"gridrun coordinator {name} ready", flush=True)
    try:
        while not ray.get(coordinator.close_if_released.remote()):
            time.sleep(1.0)
    except ray.exceptions.RayActorError:
        pass  # ended by the agent's bridge meanwhile
    with contextlib.suppress(Exception):
        ray.kill(coordinator)
    print(f"gridrun coordinator {name} released", flush=True)
    return 0


def _head_node_id() -> str | None:
    """The live head node's id (it alone has the resource ``node:__internal_head__``)."""
    import ray

    for node in ray.nodes():
        if node.get("Alive") and "node:__internal_head__" in (node.get("Resources") or {}):
            return str(node["NodeID"])
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
