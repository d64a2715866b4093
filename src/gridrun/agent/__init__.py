"""The agent: a detached scheduler, one per GRID_HOME, plus per-experiment supervisors.

``grid run`` records a run and wakes the agent (starting it when none runs). The agent
builds environments, starts pending experiments that fit the machine, and reconciles
what happened while it was away. Each local or Docker experiment runs under its own
small supervisor process, so the agent (or the CLI) can die at any moment without
losing output or exit codes. An engine's experiments (Ray), which the engine itself
supervises, have no local process: one watcher thread per engine in the agent follows
them all (:mod:`.watcher`), and a restarted agent takes them over.
"""
