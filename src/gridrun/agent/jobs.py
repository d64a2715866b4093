"""Turning store records into the :class:`~gridrun.backends.base.Job` a supervisor runs.

The job is written to ``experiments/<name>/job.json`` before the supervisor starts, so
the supervisor needs nothing but that file and the database (it imports no CLI code,
which keeps its start-up fast).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gridrun.backends.base import Job
from gridrun.fsutil import atomic_write_json
from gridrun.home import GridHome
from gridrun.runenv import THREAD_VARS
from gridrun.store.models import Experiment, Run


def experiment_env(run: Run, exp: Experiment, gpu_ids: list[int]) -> dict[str, str]:
    """The variables every experiment sees, on every backend."""
    env = {
        "GRID_RUN_NAME": run.name,
        "GRID_EXPERIMENT_NAME": exp.name,
        "GRID_EXPERIMENT_ID": str(exp.id),
        # Times it was started before (Slurm's SLURM_RESTART_COUNT): 0, then 1 after
        # the first preemption or retry. A script resumes from its checkpoint when > 0.
        "GRID_RESTART_COUNT": str(exp.attempt),
        "PYTHONUNBUFFERED": os.environ.get("PYTHONUNBUFFERED", "1"),
    }
    threads = str(max(1, int(exp.cpus)))
    user_env = run.spec.env_vars
    for var in THREAD_VARS:
        # Cap numeric libraries to the CPUs asked for, unless the user chose a value.
        if var not in os.environ and var not in user_env:
            env[var] = threads
    env.update(user_env)
    return env


def make_job(
    home: GridHome, run: Run, exp: Experiment, gpu_ids: list[int], stop_grace: float = 30.0
) -> Job:
    spec = run.spec
    exp_dir = home.experiment_dir(exp.name)
    return Job(
        run_name=run.name,
        experiment_name=exp.name,
        experiment_id=exp.id,
        env_ref=run.env_ref or "",
        script=spec.script,
        args=list(exp.argv),
        exp_dir=exp_dir,
        workdir=home.experiment(exp.name).workdir,
        snapshot_manifest=spec.snapshot_manifest,
        objects_dir=home.objects,
        env=experiment_env(run, exp, gpu_ids),
        cpus=exp.cpus,
        memory=exp.memory,
        gpus=exp.gpus,
        gpu_ids=gpu_ids,
        datastores=list(spec.datastores),
        stop_grace=stop_grace,
        scratch_path=spec.scratch_mount_path if spec.scratch_size else "",
        scratch_bytes=(spec.scratch_size or 0) * 2**30,
    )


def save_job(job: Job, backend: str) -> Path:
    """Write ``job.json`` atomically: a supervisor or a reconciler may read it any time."""
    job.exp_dir.mkdir(parents=True, exist_ok=True)
    data = job.to_dict()
    data["backend"] = backend
    path = job.paths.job
    # Renamed into place, not fsynced: the rename alone makes it atomic for every
    # process, and only a power loss could tear it, which also ends every process
    # that would read it and may roll back the claim itself (the store commits with
    # synchronous=NORMAL). An fsync per start was three quarters of the agent's time
    # with 100,000 queued; a torn job.json reads as missing (see read_job).
    atomic_write_json(path, data, fsync=False, indent=1)
    return path


def load_job(path: Path) -> tuple[Job, str]:
    data = json.loads(path.read_text())
    return Job.from_dict(data), str(data["backend"])


def read_job(path: Path) -> tuple[Job, str] | None:
    """``load_job``, or None when the file is missing or torn (a power loss)."""
    try:
        return load_job(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None
