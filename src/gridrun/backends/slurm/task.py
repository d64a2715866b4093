"""What runs in a Slurm allocation: one experiment, as the local backend runs it.

``python -m gridrun.backends.slurm.task EXP_DIR/slurm-job.json``, exec'd by the batch script
(``script.py``), so it is the process Slurm signals. It runs the experiment exactly as
the local backend's supervisor would on this node (its own working copy, GRID_HOME
hidden, datastores read-only, the exit witness and the experiment's own PID namespace)
with output lines written straight to the experiment's log, then writes its exit
record (:data:`EXIT_FILE`) for the agent, and exits with the experiment's code.

A run from a repository (its folder holds ``slurm-origin.json``) gets its working copy
from the repository where this node reaches it: the commit fetched into the node's
own cache (or ``slurm.repo_cache``, a shared one), checked against the run's snapshot
digest (:mod:`gridrun.project.refetch`); else from the snapshot in the shared
GRID_HOME, as any run. The experiment's log says which, in one line.

SIGTERM (``scancel --signal=TERM``, a time limit's ``--signal``) stops the experiment
as ``grid stop`` does: SIGTERM to its processes, SIGKILL after the grace period.
The GPUs are those Slurm granted (its ``CUDA_VISIBLE_DEVICES``), not the agent's, and
the experiment sees Slurm's ``SLURM_*`` variables as any Slurm job does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridrun.logs import LogSink
    from gridrun.specs import Job

EXIT_FILE = "slurm-exit.json"


def _granted_gpus() -> list[int]:
    raw = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return [int(x) for x in raw.split(",") if x.strip().isdigit()]


def write_record(exp_dir: Path, record: dict) -> None:
    from gridrun.fsutil import atomic_write_json

    atomic_write_json(exp_dir / EXIT_FILE, record, fsync=True)


def node_backend(home: Any) -> Any:
    """The local backend, making its working copies from the run's repository where
    this node can (see the module docstring)."""
    from gridrun.backends.local import LocalBackend

    class NodeBackend(LocalBackend):
        def _materialize(self, job: Job, sink: LogSink) -> None:
            if not fetch_working_copy(self.home, job, sink):
                super()._materialize(job, sink)

    return NodeBackend(home)


def fetch_working_copy(home: Any, job: Job, sink: LogSink) -> bool:
    """Whether the working copy came from the run's repository (else: none made)."""
    import shutil
    import socket
    import tempfile

    from gridrun.backends.slurm.script import ORIGIN_FILE

    try:
        doc = json.loads((home.run_dir(job.run_name) / ORIGIN_FILE).read_text())
    except (OSError, ValueError):
        return False  # a run from a folder: its snapshot
    from gridrun.project.manifest import load_manifest, object_path
    from gridrun.project.refetch import RepoOrigin
    from gridrun.project.refetch import fetch_working_copy as fetch

    files = load_manifest(job.snapshot_manifest)
    cache = (
        doc.get("cache") or Path(tempfile.gettempdir()) / f"gridrun-node-{os.getuid()}" / "repos"
    )

    def from_snapshot(rel: str, target: Path) -> None:
        entry = files[rel]
        if entry.link is not None:
            os.symlink(entry.link, target)
        elif entry.sha256 is not None:
            shutil.copyfile(object_path(job.objects_dir, entry.sha256), target)

    outcome = fetch(
        RepoOrigin.from_dict(doc["origin"]),
        Path(cache),
        files,
        str(doc["snapshot_hash"]),
        job.workdir,
        os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
        from_snapshot,
        fallback="using the run's snapshot",
    )
    sink.write("stderr", f"gridrun: {outcome.line}")
    return outcome.fetched


def main(argv: list[str]) -> int:
    from gridrun.datastores.mount import node_isolation_mode
    from gridrun.home import GridHome
    from gridrun.logs import LogSink
    from gridrun.specs import Job

    if len(argv) == 2 and argv[0] == "--manifest":
        # A job array's task: the experiment on its line of the run's manifest.
        lines = Path(argv[1]).read_text().splitlines()
        argv = [lines[int(os.environ["SLURM_ARRAY_TASK_ID"])]]
    if len(argv) != 1:
        usage = "usage: python -m gridrun.backends.slurm.task EXP_DIR/slurm-job.json"
        print(usage, file=sys.stderr)
        return 2
    job = Job.from_dict(json.loads(Path(argv[0]).read_text()))
    # What Slurm tells its jobs (SLURM_JOB_ID, SLURM_CPUS_PER_TASK, ...) reaches the
    # experiment as on any Slurm job, beside gridrun's own variables.
    slurm_env = {k: v for k, v in os.environ.items() if k.startswith("SLURM")}
    job = dataclasses.replace(job, gpu_ids=_granted_gpus(), env={**slurm_env, **job.env})
    # The handle the agent keeps: an array task is ARRAY_TASK, a plain job its id.
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    slurm_id = (
        f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}"
        if array
        else os.environ.get("SLURM_JOB_ID", "")
    )
    began = time.time()  # when Slurm placed it: its run time starts here
    home = GridHome.from_env()
    # Probed once per node and boot, not by each of an array's many tasks.
    node_isolation_mode(home.nodes)
    backend = node_backend(home)
    stopping = threading.Event()
    local: list[str] = []  # the local backend's handle, once launched

    def stop() -> None:
        if local:
            backend._stop(job, local[0], job.stop_grace)

    def on_term(signum: int, frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    node = os.environ.get("SLURMD_NODENAME", "")
    with LogSink(job.log_path) as sink:
        try:
            # The hooks, not launch/run: the experiment's backend.ref is the Slurm
            # job's, which the agent keeps; the local handle stays in this process.
            if stopping.is_set():
                code = 143  # stopped before it started, as a shell reports SIGTERM
            else:
                local.append(backend._launch(job, sink))
                if stopping.is_set():
                    stop()
                ended = backend._wait(job, local[0], sink)
                code = ended.exit_code if ended.exit_code is not None else -1
        except Exception as exc:  # the experiment could not start here: its failure
            sink.write("stderr", f"gridrun: {type(exc).__name__}: {exc}")
            code = 1
    write_record(
        job.exp_dir,
        {
            "slurm_job": slurm_id,
            "attempt": job.restart_count,
            "exit_code": code,
            "stopped": stopping.is_set(),
            "node": node,
            "started_at": began,
            "finished_at": time.time(),
        },
    )
    if code < 0:  # killed by a signal: as a shell reports it
        return 128 - code
    return code & 0xFF


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
