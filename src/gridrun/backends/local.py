"""The embedded default backend: subprocesses on this machine, cached uv virtualenvs.

Each experiment runs in its own copy of the project snapshot, under a supervisor
that is its child subreaper (so ``grid stop`` reaches every process it started),
with the run's virtualenv first on PATH. Output is read line by line from pipes and
written to the experiment's log with a timestamp the moment it arrives.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from gridrun.backends.base import Backend, BuildLog, BuildRequest, Job
from gridrun.logs import LogSink
from gridrun.processes import (
    ProcessRef,
    become_subreaper,
    descendants,
    experiment_processes,
    kill_all,
    kill_descendants,
    terminate_all,
    write_ref,
)

PID_FILE = "backend.ref"  # the experiment's main process, as a ProcessRef
ENV_LAYER = "env-layer"  # what the experiment wrote over its cached environment


def script_command(script: str, python: str) -> list[str]:
    """``python SCRIPT`` or ``bash SCRIPT``: the interpreter is chosen by extension."""
    if script.endswith(".sh"):
        return ["bash", script]
    return [python, script]


class LocalBackend(Backend):
    name = "local"
    supports_gpus = True
    supports_datastores = True

    # ------------------------------------------------------------------ build
    def environment_key(self, req: BuildRequest) -> str:
        from gridrun.envs.key import environment_key
        from gridrun.envs.pipconf import load_pip_config

        extra = load_pip_config().fingerprint()
        if req.best_effort:  # what gets dropped or repaired depends on what the code uses
            extra += "|best-effort|" + "\n".join(sorted(req.checks))
        return environment_key(req.python, req.requirements, extra)

    def build(self, req: BuildRequest, log: BuildLog) -> str:
        from gridrun.envs.pipconf import load_pip_config
        from gridrun.envs.venv import build_venv
        from gridrun.home import GridHome

        pip = load_pip_config()
        key = self.environment_key(req)
        env = build_venv(
            GridHome.from_env().envs,
            key,
            req.python,
            req.requirements,
            log,
            pip=pip,
            best_effort=req.best_effort,
            checks=req.checks if req.best_effort else [],
        )
        return str(env)

    # -------------------------------------------------------------------- run
    def __init__(self) -> None:
        self._lock = threading.Lock()  # orders execute's start against terminate
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None

    def execute(self, job: Job, sink: LogSink) -> int:
        from gridrun.project import materialize

        if resume_workdir(job):
            sink.write(
                "stderr",
                f"gridrun: restart {job.restart_count}, in the same working directory",
            )
        else:
            if job.workdir.exists():
                shutil.rmtree(job.workdir)
            materialize(job.snapshot_manifest, job.objects_dir, job.workdir)
        venv = Path(job.env_ref)
        # The submitting shell's environment, never the agent's (gridrun.runenv).
        from gridrun.agent.jobs import THREAD_VARS
        from gridrun.runenv import local_environment

        env = local_environment(Path(job.objects_dir).parent, job.run_name)
        for var in ("PYTHONHOME", "PYTHONPATH", "__PYVENV_LAUNCHER__"):
            env.pop(var, None)
        # gridrun's own variables win, but thread caps the shell chose are kept.
        env.update({k: v for k, v in job.env.items() if not (k in THREAD_VARS and k in env)})
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        # What experiment_processes() finds the experiment's processes by, should its
        # supervisor die: every descendant inherits it, whatever session it starts.
        env["GRID_HOME"] = str(job.exp_dir.parent.parent)
        argv = [*script_command(job.script, str(venv / "bin" / "python")), *job.args]
        # Every experiment, with datastores or not, runs where GRID_HOME is hidden and
        # remounting is impossible, when a private namespace can be made (nsexec.py).
        from gridrun.datastores import local_mount_command

        home = Path(job.objects_dir).parent
        argv, extra = local_mount_command(
            # The cached environment is shared by runs with the same key: each run gets
            # a writable layer over it, so its `pip install` reaches only itself.
            argv,
            job.datastores,
            job.workdir,
            hide=home,
            env_layer=(venv, job.exp_dir / ENV_LAYER),
        )
        env.update(extra)
        # Descendants that outlive their parents come back to the supervisor (this
        # process), so none escapes, not even one that starts its own session.
        become_subreaper()
        with self._lock:
            if self._stop.is_set():  # stopped before it started
                return -signal.SIGTERM
            proc = subprocess.Popen(
                argv,
                cwd=job.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, apart from the supervisor's
            )
            self._proc = proc
            ref = ProcessRef.of(proc.pid)
            if ref is not None:
                write_ref(job.exp_dir / PID_FILE, ref)
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            threading.Thread(target=_pump, args=(proc.stdout, "stdout", sink), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, "stderr", sink), daemon=True),
        ]
        for t in pumps:
            t.start()
        code = proc.wait()
        with self._lock:
            self._proc = None
        # The experiment is its main process: whatever it left running (a background
        # child, a daemon in its own session) ends with it and must not hold the pipes.
        kill_descendants(grace=1.0)
        for t in pumps:
            t.join(timeout=5.0)
        return code

    def terminate(self, job: Job, grace: float) -> None:
        """SIGTERM every process of the experiment, SIGKILL what is left after ``grace``.

        In the supervisor (the usual case) the experiment's processes are this
        process's descendants; elsewhere they are found by their environment.
        """
        with self._lock:
            self._stop.set()
            proc = self._proc
        if proc is None:
            terminate_all(experiment_processes(job.exp_dir.parent.parent, job.experiment_id), grace)
            return
        for ref in descendants():
            ref.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        kill_all(descendants())

    def collect_artifacts(self, job: Job, keep_workdir: bool = False) -> list[str]:
        from gridrun.project import collect_artifacts

        if not job.workdir.exists():
            return []
        return collect_artifacts(job.snapshot_manifest, job.workdir, job.artifacts_dir)

    def cleanup(self, job: Job) -> None:
        from gridrun.datastores.mount import remove_env_layer

        shutil.rmtree(job.workdir, ignore_errors=True)
        if not job.resume_dir.is_dir():  # a parked working copy keeps its layer
            remove_env_layer(job.exp_dir / ENV_LAYER)

    def recover(self, job: Job) -> int | None:
        """The supervisor died: the experiment's output is lost, so end what is left.

        Returns None: a local experiment cannot be re-attached (its pipes went with the
        supervisor), so reconciliation records it as preempted (and requeues it with
        ``--auto_resume``, in the same working directory).
        """
        terminate_all(experiment_processes(job.exp_dir.parent.parent, job.experiment_id), 1.0)
        return None


def resume_workdir(job: Job) -> bool:
    """Whether this attempt continues in the working directory an earlier one left.

    A restarted experiment (``GRID_RESTART_COUNT`` > 0) finds its working directory
    where the last attempt left it, or parked in ``resume/`` by the supervisor.
    """
    if not job.restart_count:
        return False
    parked = job.resume_dir
    if parked.is_dir():
        shutil.rmtree(job.workdir, ignore_errors=True)
        os.replace(parked, job.workdir)
    return job.workdir.is_dir()


def _pump(stream: IO[bytes], name: str, sink: LogSink) -> None:
    for raw in iter(stream.readline, b""):
        sink.write(name, raw.decode("utf-8", errors="replace"))
    stream.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit("gridrun.backends.local is a library module")
