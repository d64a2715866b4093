"""What ``runner.py`` hands over: an experiment that needs gridrun on its node.

``python -m gridrun.backends.slurm.task EXP_DIR/slurm-job.json [--began T]``, exec'd
by the runner in its place for what it cannot do alone (``plan.needs_task``, or a node
whose isolation mode is not recorded yet). It prepares the experiment here, with
gridrun at hand, then execs the runner again with the node's own plan
(``plan.write_prepared``), so an experiment always runs the same way on a node:

* the node's isolation mode, probed once per node and boot (``node_isolation_mode``);
* the working copy: the one an earlier attempt left (a restart, under
  ``--auto_resume``); for a run from a repository (its folder holds
  ``slurm-origin.json``) the commit fetched into the node's own cache (or
  ``slurm.repo_cache``, a shared one), checked against the run's snapshot digest
  (:mod:`gridrun.project.refetch`); else the snapshot in the shared GRID_HOME. The
  experiment's log says which, in one line;
* the datastores' mount points, and the scratch space's check.

A failure here is the experiment's: one line in its log, and an exit record.
SIGTERM and SIGINT are held back (blocked) until the runner's own handlers take
them: a stop that comes meanwhile reaches the runner, never ends this process
without a record.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridrun.backends.slurm.runner import record_exit

if TYPE_CHECKING:
    from gridrun.logs import LogSink
    from gridrun.specs import Job


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
    from gridrun.backends.local.backend import launch_spec, working_copy
    from gridrun.backends.slurm.plan import write_prepared
    from gridrun.backends.slurm.script import runner_command
    from gridrun.datastores.mount import node_isolation_mode
    from gridrun.home import GridHome
    from gridrun.logs import LogSink
    from gridrun.project import materialize
    from gridrun.specs import Job

    stops = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # until the runner takes them
    began = time.time()
    if len(argv) == 3 and argv[1] == "--began":
        began = float(argv[2])
    elif len(argv) != 1:
        usage = "usage: python -m gridrun.backends.slurm.task EXP_DIR/slurm-job.json"
        print(usage, file=sys.stderr)
        return 2
    job = Job.from_dict(json.loads(Path(argv[0]).read_text()))
    home = GridHome.from_env()
    try:
        with LogSink(job.log_path) as sink:
            try:
                # Probed once per node and boot, not by each of an array's many tasks.
                mode = node_isolation_mode(home.nodes)

                def make() -> None:
                    if not fetch_working_copy(home, job, sink):
                        materialize(job.snapshot_manifest, job.objects_dir, job.workdir)

                working_copy(job, sink, make)
                spec = launch_spec(home.root, job, mode=mode)
                plan = write_prepared(job, spec, mode, began)
            except Exception as exc:  # the experiment could not start here: its failure
                sink.write("stderr", f"gridrun: {type(exc).__name__}: {exc}")
                raise
    except Exception:
        record_exit(str(job.exp_dir), job.restart_count, 1, False, began)
        return 1
    command = [*runner_command(sys.executable), "--prepared", str(plan)]
    try:
        os.execv(sys.executable, command)
    except OSError as exc:
        print(f"gridrun: cannot start the runner: {exc}", file=sys.stderr)
    record_exit(str(job.exp_dir), job.restart_count, 1, False, began)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
