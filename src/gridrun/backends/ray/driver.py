"""The run's driver: the entrypoint of the one Ray Job that each run submits.

``python -m gridrun.backends.ray.driver ACTOR_NAME`` runs on the head node, in the
job's runtime_env (the run's snapshot package as ``working_dir``, gridrun itself as a
``py_module``). It creates the run's named :class:`~.coordinator.Coordinator` on its
own node and waits until the agent releases the run. The coordinator belongs to this
job, so stopping the job (``ray job stop``) ends the run's coordinator and, with it,
every experiment task it started: nothing of a run outlives its job.
"""

from __future__ import annotations

import sys
import time

NAMESPACE = "gridrun"


def main(argv: list[str]) -> int:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    import ray
    from gridrun.backends.ray.coordinator import actor_class

    (name,) = argv
    ray.init(namespace=NAMESPACE, log_to_driver=False)
    here = ray.get_runtime_context().get_node_id()
    coordinator = (
        actor_class()
        .options(
            name=name,
            num_cpus=0,
            max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True),
        )
        .remote()
    )
    ray.get(coordinator.ping.remote())  # created and answering
    print(f"gridrun coordinator {name} ready", flush=True)
    while not ray.get(coordinator.close_if_released.remote()):
        time.sleep(1.0)
    print(f"gridrun coordinator {name} released", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
