"""The embedded default backend: subprocesses on this machine, cached uv virtualenvs.

Each experiment runs in its own copy of the project snapshot, in its own process
group (so ``grid stop`` reaches every process it started), with the run's virtualenv
first on PATH. Output is read line by line from pipes and written to the experiment's
log with a timestamp the moment it arrives.
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

PID_FILE = "backend.ref"


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
    def execute(self, job: Job, sink: LogSink) -> int:
        from gridrun.project import materialize

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
        argv = [*script_command(job.script, str(venv / "bin" / "python")), *job.args]
        # Every experiment, with datastores or not, runs where GRID_HOME is hidden and
        # remounting is impossible, when a private namespace can be made (nsexec.py).
        from gridrun.datastores import local_mount_command

        home = Path(job.objects_dir).parent
        argv, extra = local_mount_command(
            argv, job.datastores, job.workdir, hide=home, keep_ro=[venv]
        )
        env.update(extra)
        proc = subprocess.Popen(
            argv,
            cwd=job.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stop reaches its children
        )
        (job.exp_dir / PID_FILE).write_text(str(proc.pid))
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            threading.Thread(target=_pump, args=(proc.stdout, "stdout", sink), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, "stderr", sink), daemon=True),
        ]
        for t in pumps:
            t.start()
        code = proc.wait()
        for t in pumps:
            t.join(timeout=2.0)
        if any(t.is_alive() for t in pumps):
            # Background children still hold the pipes: the experiment is over, end them.
            _killpg(proc.pid, signal.SIGKILL)
            for t in pumps:
                t.join(timeout=2.0)
        return code

    def terminate(self, job: Job, grace: float) -> None:
        pid = _read_pid(job.exp_dir)
        if pid is None:
            return
        terminate_group(pid, grace)

    def collect_artifacts(self, job: Job) -> list[str]:
        from gridrun.project import collect_artifacts

        if not job.workdir.exists():
            return []
        return collect_artifacts(job.snapshot_manifest, job.workdir, job.artifacts_dir)

    def cleanup(self, job: Job) -> None:
        shutil.rmtree(job.workdir, ignore_errors=True)

    def recover(self, job: Job) -> int | None:
        """The supervisor died: the experiment's output is lost, so end what is left.

        Returns None: a local experiment cannot be re-attached (its pipes went with the
        supervisor), so reconciliation records it as lost (or requeues it with
        ``--auto_resume``).
        """
        pid = _read_pid(job.exp_dir)
        if pid is not None:
            terminate_group(pid, 1.0)
        return None


def _pump(stream: IO[bytes], name: str, sink: LogSink) -> None:
    for raw in iter(stream.readline, b""):
        sink.write(name, raw.decode("utf-8", errors="replace"))
    stream.close()


def _read_pid(exp_dir: Path) -> int | None:
    try:
        return int((exp_dir / PID_FILE).read_text())
    except (OSError, ValueError):
        return None


def _killpg(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def terminate_group(pgid: int, grace: float) -> None:
    """SIGTERM the process group, SIGKILL whatever is left after ``grace`` seconds."""
    if not _killpg(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.05)
    _killpg(pgid, signal.SIGKILL)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("gridrun.backends.local is a library module")
