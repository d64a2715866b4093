"""The Slurm tests share the session's one real local Slurm cluster (``slurm_cluster`` in
``tests/conftest.py``): munged, slurmctld and two slurmd nodes from Debian's packages,
which ``scripts/test`` installs as root. Nothing is mocked.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def slurm_grid(grid, slurm_cluster):  # type: ignore[no-untyped-def]
    """The real ``grid`` CLI pointed at the session's cluster (SLURM_CONF)."""
    grid.env.update(slurm_cluster.env)
    yield grid
    # Nothing of this test's is left queued on the shared cluster (the grid fixture has
    # ended its processes), and a node a test took down comes back for the next test.
    slurm_cluster.scancel_all()
    for node in slurm_cluster.node_names:
        slurm_cluster.scontrol("update", f"NodeName={node}", "State=RESUME", check=False)
