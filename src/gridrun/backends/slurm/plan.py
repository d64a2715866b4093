"""The plan a Slurm task's runner follows: everything the agent can work out beforehand.

``runner.py`` starts without gridrun (see there), so what it needs is written at
submission, beside the experiment's ``slurm-job.json``: ``slurm-plan.bin``, a
``marshal``-ed dict (read by the same Python the agent runs, whose path the nodes
share; it loads with no import at all, where ``json`` would cost the runner a third of
its start). The working copy's files are a list of their own, written once per run
(``slurm-tree-<snapshot>.bin`` in the run's folder) and read by each of its tasks.

An experiment the runner cannot start alone (a restart, a run from a repository,
datastores, a scratch space) gets a plan marked ``full``: its runner hands it to
``task.py``, which prepares it on the node and writes the node's own plan
(:func:`write_prepared`), with the node's isolation mode.
"""

from __future__ import annotations

import marshal
from pathlib import Path

from gridrun.backends.local.backend import LaunchSpec, launch_spec
from gridrun.backends.slurm.runner import PLAN_VERSION
from gridrun.backends.slurm.script import JOB_FILE, ORIGIN_FILE, PLAN_FILE
from gridrun.fsutil import atomic_write_bytes
from gridrun.project.manifest import load_manifest
from gridrun.project.materialize import tree_entries
from gridrun.specs import Job

PREPARED_FILE = "slurm-plan-node.bin"


def needs_task(job: Job, run_dir: Path) -> str:
    """Why this experiment goes through ``task.py`` on its node; empty: it needs not."""
    if job.restart_count:
        return "a restart (its working copy may be resumed)"
    if job.datastores:
        return "datastores (their mount points are made on the node)"
    if job.scratch_bytes:
        return "a scratch space"
    if (run_dir / ORIGIN_FILE).exists():
        return "a run from a repository (the node may fetch its commit)"
    return ""


def write_plan(home: Path, nodes: Path, job: Job, run_dir: Path) -> Path:
    """The experiment's plan (``exp_dir/slurm-plan.bin``), the run's file list with it."""
    plan: dict = {
        "version": PLAN_VERSION,
        "job": str(job.exp_dir / JOB_FILE),
        "nodes": str(nodes),
        "full": bool(needs_task(job, run_dir)),
        **_where(job),  # (a stop that comes before task.py is recorded by the runner)
    }
    if not plan["full"]:
        # Confined as on a node where a namespace can be made as root; the runner puts
        # the node's own mode in ("--mode" comes first), or none at all.
        spec = launch_spec(home, job, mode="root")
        plan.update(_launch_fields(job, spec))
        plan["tree"] = str(_write_tree(job, run_dir))
        plan["mode"] = None
    path = job.exp_dir / PLAN_FILE
    atomic_write_bytes(path, marshal.dumps(plan), fsync=False)
    return path


def write_prepared(job: Job, spec: LaunchSpec, mode: str, began: float) -> Path:
    """The plan ``task.py`` made on the node: working copy made, mode and mounts known."""
    plan = {
        "version": PLAN_VERSION,
        "job": str(job.exp_dir / JOB_FILE),
        "full": False,
        "mode": mode,
        "began": began,
        **_where(job),
        **_launch_fields(job, spec),
    }
    path = job.exp_dir / PREPARED_FILE
    atomic_write_bytes(path, marshal.dumps(plan), fsync=False)
    return path


def _where(job: Job) -> dict:
    return {
        "exp_dir": str(job.exp_dir),
        "log": str(job.log_path),
        "workdir": str(job.workdir),
        "attempt": job.restart_count,
        "grace": float(job.stop_grace),
    }


def _launch_fields(job: Job, spec: LaunchSpec) -> dict:
    return {
        "argv": list(spec.argv),
        "env": dict(spec.env),
        "own": sorted(job.env),
        "confine": None if spec.confine is None else list(spec.confine),
    }


def _write_tree(job: Job, run_dir: Path) -> Path:
    """The snapshot's files as the runner copies them, once per run and snapshot."""
    path = run_dir / f"slurm-tree-{Path(job.snapshot_manifest).stem[:16]}.bin"
    if not path.exists():
        entries = tree_entries(load_manifest(job.snapshot_manifest), job.objects_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, marshal.dumps(entries), fsync=False)
    return path
