"""The Slurm backend: ``grid run --backend slurm`` on the cluster a lab already has.

    settings.py  where the cluster is (SLURM_CONF) and what every job asks of it
                 (``slurm:`` in GRID_HOME/config.yaml, ``--slurm_partition``, ...)
    script.py    the sbatch arguments and batch script: pure functions of the specs
    squeue.py    what ``squeue --json`` and ``sinfo --json`` say, typed
    plan.py      what the agent works out for each experiment's runner beforehand
    runner.py    what runs in the allocation: one experiment, as the local backend
                 runs it (working copy, confinement, exit witness), in an interpreter
                 that imports no gridrun
    task.py      what the runner hands over when it needs gridrun on the node
                 (a restart, a repository, datastores, an unprobed node)
    backend.py   the agent-side backend behind gridrun's protocol

The nodes see GRID_HOME at the same path (the cluster is this machine, or GRID_HOME is
on the cluster's shared file system): environments are built once per key there, and
each task writes its experiment's log, exit record and working copy there directly.
Only ``backend.py``'s class is imported by the registry. This package imports nothing
itself: ``task.py`` runs as ``python -m gridrun.backends.slurm.task``, and the
agent-side backend (the store, squeue parsing) would cost it ~40 ms of CPU.
"""
