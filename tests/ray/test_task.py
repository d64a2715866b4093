"""The agent's message to a Ray node, built by a pure function from the typed specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridrun.backends.base import DatastoreMount
from gridrun.backends.ray.task import TaskSpec, task_request
from gridrun.specs import Job

pytestmark = pytest.mark.ray

INFO = {
    "address": "127.0.0.1:6379",
    "env_key": "k123",
    "python": "3.11",
    "requirements": ["numpy"],
    "python_env": True,
    "best_effort": True,
    "checks": ["numpy.linalg"],
    "oldest_python": "3.8",
    "resources": {"special": 1.0},
    "torch_build": None,
    "cuda": "12.1",
}

RECORDED = {
    "env_key": "k123",
    "python": "3.11",
    "requirements": ["numpy"],
    "home_label": "abcdef0123",
    "experiment": "run-exp0",
    "attempt": "a1b2c3d4",
    "script": "train.py",
    "args": ["--lr", "0.1"],
    "gpus": 1,
    "python_env": True,
    "best_effort": True,
    "checks": ["numpy.linalg"],
    "oldest_python": "3.8",
    "torch_build": None,
    "cuda": "12.1",
    "datastores": [
        {"name": "mnist", "version": 2, "source": "/data/mnist", "mount_dir": "/datastores/mnist"}
    ],
    "origin": None,
    "snapshot_digest": "",
    "must_fetch": False,
    "version": 3,
}


def _job(tmp_path: Path) -> Job:
    return Job(
        run_name="run", experiment_name="run-exp0", experiment_id=7, env_ref="/pkg",
        script="train.py", args=["--lr", "0.1"], exp_dir=tmp_path / "exp",
        workdir=tmp_path / "exp" / "workdir", snapshot_manifest=tmp_path / "m.json",
        objects_dir=tmp_path / "objects", env={"GRID_EXPERIMENT_NAME": "run-exp0"},
        cpus=2, gpus=1, memory=2**30,
        datastores=[DatastoreMount("mnist", 2, Path("/data/mnist"), "/datastores/mnist")],
    )  # fmt: skip


def test_the_task_message_carries_every_environment_field(tmp_path: Path) -> None:
    spec, options = task_request(
        tmp_path, _job(tmp_path), INFO, "gridrun-abcdef0123-run-x", "a1b2c3d4"
    )
    wire = spec.to_dict()
    wire.pop("pip")  # the user's pip configuration, whatever this machine has
    env = wire.pop("env")
    assert env["GRID_EXPERIMENT_NAME"] == "run-exp0"
    assert json.loads(json.dumps(wire)) == RECORDED
    assert options.to_dict() == {
        "num_cpus": 2,
        "num_gpus": 1,
        "memory": 2**30,
        "resources": {"special": 1.0},
    }
    assert TaskSpec.from_dict(spec.to_dict()) == spec


def test_a_node_refuses_a_message_of_another_version(tmp_path: Path) -> None:
    spec, _ = task_request(tmp_path, _job(tmp_path), INFO, "gridrun-abcdef0123-run-x", "a")
    with pytest.raises(ValueError, match="same gridrun on the nodes"):
        TaskSpec.from_dict({**spec.to_dict(), "version": 0})


def test_a_run_from_a_repository_sends_its_origin_and_digest_never_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gridrun.project.refetch import RepoOrigin

    monkeypatch.setenv("GIT_TOKEN", "secret-token-value")
    origin = RepoOrigin("https://example.invalid/o/r.git", "c" * 40, "sub", b"diff", ("u.txt",))
    info = {**INFO, "origin": origin.to_dict(), "snapshot_hash": "d" * 64, "must_fetch": True}
    spec, _ = task_request(tmp_path, _job(tmp_path), info, "gridrun-abcdef0123-run-x", "a")
    assert spec.origin == origin and spec.snapshot_digest == "d" * 64
    assert spec.must_fetch  # ray.nodes_fetch: always, no snapshot shipped
    wire = spec.to_dict()
    assert wire["origin"] == {
        "url": "https://example.invalid/o/r.git",
        "commit": "c" * 40,
        "subdir": "sub",
        "diff": "ZGlmZg==",
        "untracked": ["u.txt"],
    }
    assert "secret-token-value" not in repr(wire)
    assert TaskSpec.from_dict(wire) == spec
