"""One real local Ray cluster for every Ray test: a head with 1 CPU and a worker node
with 2 CPUs and a custom resource ``special``, on private ports and a private temp dir.

Started once per session (a minute on a busy machine) and stopped at the end. The Ray
tests are never skipped: ``scripts/test`` installs ``gridrun[ray]``, and without Ray
they fail at import.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from raycluster import LocalRayCluster


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayCluster]:
    reuse = os.environ.get("GRIDRUN_TEST_RAY_CLUSTER")
    if reuse:  # by hand: a cluster already started, {"gcs": ..., "dash": ...} in a file
        info = json.loads(Path(reuse).read_text())
        yield LocalRayCluster(gcs_address=info["gcs"], dashboard_url=info["dash"])
        return
    cluster = LocalRayCluster(head_cpus=1, workers=[{"cpus": 2, "resources": {"special": 1}}])
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
