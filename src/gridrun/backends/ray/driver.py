"""The run's driver: the entrypoint of the one Ray Job that each run submits.

``python -m gridrun.backends.ray.driver ACTOR_NAME`` runs on the head node, in the
job's runtime_env (the run's snapshot package as ``working_dir``, gridrun itself as a
``py_module``). It creates the run's named :class:`~.coordinator.Coordinator` on the
head node (detached: see coordinator.py) and waits until the agent releases the run.
The coordinator is detached so that it outlives this process should it die; the
driver ends it once the run is released, and only then (a call that fails is asked
again: the coordinator holds the run's record), and the agent ends it if the
driver has gone meanwhile (``grid stop`` stops a run, not ``ray job stop``).
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
            # Hard: Ray 2.60 placed half of the actors asked for softly on the head on
            # other nodes, where a worker node's death took the run's record with it.
            # It needs no resources, and the head runs this driver: it always fits.
            scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False),
        )
        .remote()
    )
    # No SIGTERM handler ends the coordinator: a driver whose raylet dies may get one
    # too, and the coordinator must outlive it to report the node's death.
    ray.get(coordinator.ping.remote())  # created and answering
    print(f"gridrun coordinator {name} ready", flush=True)
    unavailable = getattr(ray.exceptions, "ActorUnavailableError", ())
    while True:
        try:
            if ray.get(coordinator.close_if_released.remote()):
                break
        except unavailable:
            pass  # busy, or briefly unreachable (a node dying): it keeps the run's record
        except ray.exceptions.RayActorError:
            # Ended by the agent meanwhile: nothing left to end.
            print(f"gridrun coordinator {name} ended", flush=True)
            return 0
        time.sleep(1.0)
    with contextlib.suppress(Exception):
        ray.kill(coordinator)  # released: no experiment of the run is left on the cluster
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
