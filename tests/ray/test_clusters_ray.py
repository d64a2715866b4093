"""Named clusters on a real Ray cluster: `grid clusters add`, `grid run --cluster`, the
default cluster, and `grid clusters` / `grid instance-types` reading its nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.ray


def test_a_named_ray_cluster_runs_a_sweep(grid, ray_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    grid.env.pop("RAY_ADDRESS", None)  # only the name says where
    added = grid("clusters", "add", "lab", "--backend", "ray", "--address", ray_cluster.gcs_address)
    assert "Cluster lab added: ray at" in added.stdout
    listed = grid.json("clusters")
    assert isinstance(listed, list)
    lab = next(c for c in listed if c["name"] == "lab")
    assert lab["state"] == "up" and lab["nodes"] >= 1 and lab["cpus"] >= 1, lab
    fits = grid.json("instance-types", "--cluster", "lab")
    assert isinstance(fits, dict) and fits["cluster"] == "lab"
    assert any(t["fits"] for t in fits["instance_types"])
    assert not next(t for t in fits["instance_types"] if t["name"] == "p3.16xlarge")["fits"]

    project = tmp_path / "p"
    project.mkdir()
    (project / "train.py").write_text("import sys\nprint('on ray', sys.argv[1:])\n")
    out = grid(
        "run", "--cluster", "lab", "--name", "named", "train.py", "--x", "[1, 2]", cwd=project
    )
    assert "backend:                 ray" in out.stdout
    data = grid.wait("named", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["succeeded", "succeeded"]
    assert "on ray ['--x', '2']" in grid("logs", "named-exp1").stdout

    # The default cluster takes a plain `grid run` there; --backend still wins.
    grid("user", "set-default-cluster", "lab")
    plain = grid("run", "--dry_run", "train.py", cwd=project)
    assert plain.returncode == 0
    again = grid("run", "--name", "bydefault", "train.py", cwd=project)
    assert "backend:                 ray" in again.stdout
    assert grid.wait("bydefault", timeout=600)["experiments"][0]["status"] == "succeeded"
    local = grid("run", "--backend", "local", "--name", "stilllocal", "train.py", cwd=project)
    assert "backend:                 local" in local.stdout
    clash = grid(
        "run", "--cluster", "lab", "--backend", "docker", "train.py", cwd=project, check=False
    )
    assert clash.returncode == 2 and "is a ray cluster" in clash.stderr
