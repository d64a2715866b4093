"""The sbatch command and batch script of one experiment: pure functions of its specs.

Recorded files in ``tests/slurm/expected`` pin them down. The batch script only starts
``task.py`` with gridrun's own Python (the nodes share its path); everything else an
experiment needs is in its ``slurm-job.json``, written by the backend before it submits.

``--no-requeue``: gridrun's own ``--auto_resume`` is the requeue. A job Slurm requeued
itself would race the attempt gridrun starts after the preemption (a run twice), and
sit out Slurm's requeue hold (about two minutes) first.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path

from gridrun.backends.slurm.settings import SlurmSettings
from gridrun.specs import Job

JOB_FILE = "slurm-job.json"  # the Job the task runs, written by the backend at launch
OUTPUT = "slurm-%j.out"  # Slurm's own messages about the job; the script's go to its log
ARRAY_OUTPUT = "slurm-%A_%a.out"  # in the run's folder, one per array task
ORIGIN_FILE = "slurm-origin.json"  # in the run's folder: where nodes may fetch its tree


def sbatch_args(job: Job, settings: SlurmSettings) -> list[str]:
    """``sbatch`` options for one experiment, in a stable order."""
    args = [
        "--parsable",
        f"--job-name=grid-{job.experiment_name}",
        "--no-requeue",
        "--open-mode=append",
        f"--output={job.exp_dir / OUTPUT}",
        f"--chdir={job.exp_dir}",
        f"--cpus-per-task={max(1, math.ceil(job.cpus))}",
        # SIGTERM to the task (the batch shell's exec) this long before a time limit,
        # so an experiment checkpoints as it does on grid stop.
        f"--signal=B:TERM@{max(1, math.ceil(job.stop_grace))}",
        "--export=ALL",
    ]
    if job.memory:
        args.append(f"--mem={max(1, math.ceil(job.memory / 2**20))}M")
    if job.gpus:
        args.append(f"--gres=gpu:{job.gpus}")
    if settings.partition:
        args.append(f"--partition={settings.partition}")
    if settings.time:
        args.append(f"--time={settings.time}")
    if settings.account:
        args.append(f"--account={settings.account}")
    args.extend(settings.extra)
    return args


def array_args(jobs: list[Job], settings: SlurmSettings, run_dir: Path) -> list[str]:
    """``sbatch`` options for a job array of experiments that ask for the same resources
    (the first job's): one task each, by index, ``--array=0-(N-1)``."""
    first = jobs[0]
    args = sbatch_args(first, settings)
    swap = {
        "--job-name=": f"--job-name=grid-{first.run_name}",
        "--output=": f"--output={run_dir / ARRAY_OUTPUT}",
        "--chdir=": f"--chdir={run_dir}",
    }
    for i, a in enumerate(args):
        for prefix, value in swap.items():
            if a.startswith(prefix):
                args[i] = value
    args.insert(1, f"--array=0-{len(jobs) - 1}")
    return args


def array_script(manifest: Path, python: str, home: Path, run_name: str) -> str:
    """The batch script of a job array: each task runs the experiment its index names."""
    task = shlex.join([python, "-m", "gridrun.backends.slurm.task", "--manifest", str(manifest)])
    return (
        "#!/bin/sh\n"
        f"# gridrun: experiments of run {run_name}, one per array task\n"
        f"export GRID_HOME={shlex.quote(str(home))}\n"
        f"exec {task}\n"
    )


def batch_script(job: Job, python: str, home: Path) -> str:
    """The batch script: exec the task, so it is the step Slurm signals."""
    task = shlex.join([python, "-m", "gridrun.backends.slurm.task", str(job.exp_dir / JOB_FILE)])
    return (
        "#!/bin/sh\n"
        f"# gridrun: experiment {job.experiment_name} of run {job.run_name}\n"
        f"export GRID_HOME={shlex.quote(str(home))}\n"
        f"exec {task}\n"
    )
