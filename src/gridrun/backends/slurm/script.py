"""The sbatch command and batch script of one experiment: pure functions of its specs.

Recorded files in ``tests/slurm/expected`` pin them down. The batch script only execs
``runner.py`` with gridrun's own Python (the nodes share its path), without ``site``
and importing nothing of gridrun (see there); everything else an experiment needs is
in its plan (``plan.py``), written by the backend before it submits.

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


PLAN_FILE = "slurm-plan.bin"  # the experiment's plan (plan.py), beside its Job
PACKAGE = Path(__file__).resolve().parents[2]  # gridrun's folder, which the nodes share
# runner.py and the three modules it imports, as top-level modules from their folders
# (last on sys.path: the standard library is never shadowed), for their cached bytecode;
# no garbage collection in a process that lives for one experiment (runner.run).
RUNNER_CODE = (
    "import gc, sys; gc.disable(); p = sys.argv.pop(1); "
    'sys.path += [p + "/backends/slurm", p + "/backends/local", p + "/datastores", '
    'p + "/project"]; import runner; runner.run(sys.argv[1:])'
)


def runner_command(python: str, package: Path = PACKAGE) -> list[str]:
    """How a node starts ``runner.py`` (its arguments follow)."""
    return [python, "-S", "-I", "-c", RUNNER_CODE, str(package)]


def array_script(
    manifest: Path, python: str, home: Path, run_name: str, package: Path = PACKAGE
) -> str:
    """The batch script of a job array: each task runs the experiment its index names."""
    task = shlex.join([*runner_command(python, package), "--manifest", str(manifest)])
    return (
        "#!/bin/sh\n"
        f"# gridrun: experiments of run {run_name}, one per array task\n"
        f"export GRID_HOME={shlex.quote(str(home))}\n"
        f"exec {task}\n"
    )


def batch_script(job: Job, python: str, home: Path, package: Path = PACKAGE) -> str:
    """The batch script: exec the runner, so it is the step Slurm signals."""
    task = shlex.join([*runner_command(python, package), str(job.exp_dir / PLAN_FILE)])
    return (
        "#!/bin/sh\n"
        f"# gridrun: experiment {job.experiment_name} of run {job.run_name}\n"
        f"export GRID_HOME={shlex.quote(str(home))}\n"
        f"exec {task}\n"
    )
