"""The local backend: subprocesses on this machine, cached uv virtualenvs.

Each experiment runs in its own copy of the project snapshot, under a supervisor that
is its child subreaper (so ``grid stop`` reaches every process it started, even one
that started its own session), with the run's virtualenv first on PATH. Output is
read line by line from pipes and written to the experiment's log with a timestamp the
moment it arrives. The handle is the main process's :class:`~gridrun.processes.ProcessRef`
(pid and start time, so a recycled pid is never taken for it).

A local experiment cannot outlive its supervisor usefully (its output pipes die with
it), so the backend declares ``survives_supervisor=False``. The command runs under an
exit witness (``witness.py``) that the supervisor's death ends, taking the experiment
and every descendant with it, and that writes how the experiment ended: a reconciling
agent honours an exit the witness saw (an experiment that finished is never run
again) and records any other attempt as preempted (restarted under ``--auto_resume``,
in the working directory it left). The witness costs each start an interpreter
(~15 ms of CPU, ``benchmarks/bench_nsexec.py``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gridrun.backends.base import (
    AttemptResult,
    Backend,
    BuildLog,
    BuildRequest,
    Capabilities,
    Job,
    TerminationReason,
    collect_workdir,
)
from gridrun.backends.local.process import pump
from gridrun.errors import UsageError
from gridrun.home import GridHome
from gridrun.logs import LogSink
from gridrun.processes import (
    ProcessRef,
    become_subreaper,
    descendants,
    experiment_descendants,
    experiment_processes,
    kill_all,
    kill_descendants,
    terminate_all,
)
from gridrun.specs import NO_PYTHON_ENV, RunSpec, script_command

ENV_LAYER = "env-layer"  # what the experiment wrote over its cached environment
WITNESS_FILE = "witness.json"  # how the experiment ended, written by its witness
WITNESS = Path(__file__).with_name("witness.py")
NSEXEC_DIR = Path(__file__).resolve().parents[2] / "datastores"  # nsexec.py, for --init
RECORD_SIZE = 512  # as witness.RECORD_SIZE


def witness_command() -> list[str]:
    """How witness.py is started: isolated, no ``site``, imported for its cached bytecode
    (as ``datastores.mount.wrapper`` starts nsexec.py; see there). With ``--init`` it
    imports nsexec.py too, from beside it on the path."""
    code = (
        f"import sys; sys.path += [{str(WITNESS.parent)!r}, {str(NSEXEC_DIR)!r}]; "
        "import witness; sys.exit(witness.main(sys.argv[1:]))"
    )
    return [sys.executable, "-S", "-I", "-c", code]


@dataclass
class _Child:
    """An experiment started by this process: its exit code is ours to read."""

    proc: subprocess.Popen[bytes]
    pumps: list[threading.Thread]


class LocalBackend(Backend):
    name = "local"
    capabilities = Capabilities(
        gpus=True, datastores=True, shares_machine=True, torch_builds=True, scratch=True
    )

    def __init__(self, home: GridHome | None = None) -> None:
        super().__init__(home)
        self._children: dict[str, _Child] = {}

    # ------------------------------------------------------------- submission
    def _validate(self, spec: RunSpec) -> dict[str, str]:
        """A Julia script runs with the julia on PATH: refuse it now when there is none.

        The PATH is this shell's, which the experiment inherits (gridrun.runenv): a
        missing julia is found here, in one line, not as a failure inside the run.
        """
        if not spec.env.python_env and shutil.which("julia") is None:
            raise UsageError(
                f"{spec.script} is a Julia script, and there is no julia on PATH.",
                hint="Install Julia (https://julialang.org/downloads) and put it on PATH, "
                "or run it in Julia's image: --backend docker --framework julia.",
            )
        return {}

    # ------------------------------------------------------------------ build
    def environment_key(self, req: BuildRequest) -> str:
        from gridrun.envs.key import environment_key
        from gridrun.envs.pipconf import load_pip_config

        if not req.python_env:
            return NO_PYTHON_ENV

        extra = load_pip_config().fingerprint()
        if req.best_effort:  # what gets dropped or repaired depends on what the code uses
            extra += "|best-effort|" + "\n".join(sorted(req.checks))
            if req.oldest_python:  # the build may step down to an older Python
                extra += f"|oldest-python|{req.oldest_python}"
        if req.torch_build is not None:  # a CPU and a CUDA build are two environments
            extra += f"|torch|{req.torch_build.key()}"
        return environment_key(req.python, list(req.requirements), extra)

    def _build(self, req: BuildRequest, log: BuildLog) -> str:
        from gridrun.envs.pipconf import load_pip_config
        from gridrun.envs.venv import build_venv

        if not req.python_env:
            log("A Julia script: no Python environment to build; it runs with the julia on PATH.")
            return NO_PYTHON_ENV
        pip = load_pip_config()
        key = self.environment_key(req)
        env = build_venv(
            self.home.envs,
            key,
            req.python,
            list(req.requirements),
            log,
            pip=pip,
            best_effort=req.best_effort,
            checks=list(req.checks) if req.best_effort else [],
            oldest_python=req.oldest_python if req.best_effort else "",
            torch_build=req.torch_build,
        )
        return str(env)

    # -------------------------------------------------------------------- run
    def _launch(self, job: Job, sink: LogSink) -> str:
        working_copy(job, sink, lambda: self._materialize(job, sink))
        from gridrun.datastores.mount import preexec

        spec = launch_spec(self.home.root, job)
        confine = preexec(spec.confine, spec.argv)
        # Descendants that outlive their parents come back to the supervisor (this
        # process), so none escapes, not even one that starts its own session.
        become_subreaper()
        # The witness (witness.py) runs the command, dies with this supervisor taking the
        # experiment with it, and writes how the experiment ended where reconciliation
        # finds it should this supervisor die before recording the exit itself.
        record = os.open(
            job.exp_dir / WITNESS_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
        )
        try:
            os.write(record, b" " * RECORD_SIZE)  # the witness writes over these blanks
            proc = subprocess.Popen(
                [
                    *witness_command(),
                    str(record),
                    str(os.getpid()),
                    *(["--init"] if confine is not None else []),
                    "--",
                    *spec.argv,
                ],
                cwd=job.workdir,
                env=spec.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, apart from the supervisor's
                preexec_fn=confine,
                pass_fds=(record,),
            )
        finally:
            os.close(record)
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            threading.Thread(target=pump, args=(proc.stdout, "stdout", sink), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, "stderr", sink), daemon=True),
        ]
        for t in pumps:
            t.start()
        ref = ProcessRef.of(proc.pid)
        handle = ref.dump() if ref is not None else f"{proc.pid} 0"
        self._children[handle] = _Child(proc, pumps)
        return handle

    def _wait(self, job: Job, handle: str, sink: LogSink) -> AttemptResult:
        child = self._children.get(handle)
        if child is None:  # not ours: all we can do is watch it
            return super()._wait(job, handle, sink)
        code = child.proc.wait()
        # The experiment is its main process: whatever it left running (a background
        # child, a daemon in its own session) ends with it and must not hold the pipes.
        kill_descendants(grace=1.0, pick=lambda: self._descendants(job))
        for t in child.pumps:
            t.join(timeout=5.0)
        return AttemptResult.exited(code)

    def _poll(self, job: Job, handle: str) -> AttemptResult:
        child = self._children.get(handle)
        if child is not None:
            code = child.proc.poll()
            return AttemptResult.running() if code is None else AttemptResult.exited(code)
        # Not our child: its supervisor died. Its witness, which the death ends too,
        # writes how the experiment ended: given a moment for that, then read.
        ref = ProcessRef.parse(handle)
        if ref is not None and _is_witness(ref):
            ref.wait_gone(WITNESS_GRACE)
        record = read_witness(job, handle)
        if record is not None:
            if record.get("supervisor_died") or record.get("exit_code") is None:
                return AttemptResult.gone(
                    "lost its supervisor (killed or crashed), which ended it too",
                    TerminationReason.SUPERVISOR_LOST,
                )
            return AttemptResult.exited(int(record["exit_code"]))
        if ref is not None and ref.alive():
            return AttemptResult.running()
        return AttemptResult.gone(
            "its process ended with no supervisor to record the exit code",
            TerminationReason.SUPERVISOR_LOST,
        )

    def _stop(self, job: Job, handle: str, grace: float) -> None:
        """SIGTERM every process of the experiment, SIGKILL what is left after ``grace``.

        In the supervisor (the usual case) the experiment's processes are this
        process's descendants; elsewhere they are found by their environment.
        """
        child = self._children.get(handle)
        if child is None:
            # Another process started it: its main process (the handle) and whatever
            # of it is left, found by the environment every descendant inherits.
            refs = experiment_processes(self.home.root, job.experiment_id)
            main = ProcessRef.parse(handle)
            if main is not None and main.alive() and main not in refs:
                refs = [main, *descendants(main.pid), *refs]
            terminate_all(refs, grace)
            return
        for ref in self._descendants(job):
            ref.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while child.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        kill_all(self._descendants(job))

    def _descendants(self, job: Job) -> list[ProcessRef]:
        """The experiment's processes among ours: all of them in its supervisor."""
        return experiment_descendants(self.home.root, job.experiment_id)

    def _materialize(self, job: Job, sink: LogSink) -> None:
        """The experiment's working copy, from the run's snapshot."""
        from gridrun.project import materialize

        materialize(job.snapshot_manifest, job.objects_dir, job.workdir)

    def _collect(self, job: Job, handle: str | None, keep_workdir: bool) -> list[str]:
        return collect_workdir(job)

    def _release(self, job: Job, handle: str | None) -> None:
        from gridrun.datastores.mount import remove_env_layer

        if handle is not None:
            self._children.pop(handle, None)
        # Released: the job is forgotten, and polling its handle says gone.
        (job.exp_dir / WITNESS_FILE).unlink(missing_ok=True)
        shutil.rmtree(job.workdir, ignore_errors=True)
        if not job.resume_dir.is_dir():  # a parked working copy keeps its layer
            remove_env_layer(job.exp_dir / ENV_LAYER)


@dataclass
class LaunchSpec:
    """How an experiment starts where GRID_HOME is at hand (here, or a Slurm node).

    ``confine``: ``nsexec``'s options (``--mode`` first), None when it runs unconfined.
    """

    argv: list[str]
    env: dict[str, str]
    confine: list[str] | None


def launch_spec(home: Path, job: Job, *, mode: str | None = None) -> LaunchSpec:
    """The command, environment and confinement of ``job``'s experiment.

    ``mode``: the isolation mode (default: probed here). Datastores' mount points are
    made in the working copy, which must exist already.
    """
    from gridrun.datastores.mount import confinement_args
    from gridrun.runenv import THREAD_VARS, local_environment

    # A Julia script has no virtualenv: the shell's PATH finds its julia.
    venv = None if job.env_ref == NO_PYTHON_ENV else Path(job.env_ref)
    # The submitting shell's environment, never the agent's (gridrun.runenv).
    env = local_environment(home, job.run_name)
    for var in ("PYTHONHOME", "PYTHONPATH", "__PYVENV_LAUNCHER__"):
        env.pop(var, None)
    # gridrun's own variables win, but thread caps the shell chose are kept.
    env.update({k: v for k, v in job.env.items() if not (k in THREAD_VARS and k in env)})
    # GPU visibility is this backend's business: the ids the agent granted, and
    # without GPUs an empty value, which hides every device (CUDA's documented rule).
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in job.gpu_ids)
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # What experiment_processes() finds the experiment's processes by, should its
    # supervisor die: every descendant inherits it, whatever session it starts.
    env["GRID_HOME"] = str(home)
    env["GRID_EXPERIMENT_ID"] = str(job.experiment_id)
    python = str(venv / "bin" / "python") if venv is not None else "python"
    argv = [*script_command(job.script, python), *job.args]
    # Every experiment, with datastores or not, runs where GRID_HOME is hidden and
    # remounting is impossible, when a private namespace can be made (nsexec.py):
    # set up in the forked child before it execs the script, not by a wrapper.
    confine, extra = confinement_args(
        argv,
        job.datastores,
        job.workdir,
        mode=mode,
        hide=home,
        # The cached environment is shared by runs with the same key: each run gets
        # a writable layer over it, so its `pip install` reaches only itself.
        env_layer=(venv, job.exp_dir / ENV_LAYER) if venv is not None else None,
        # A PID namespace of its own, with its own /proc: no experiment reaches
        # another's working copy through /proc/PID/cwd (the witness forks its init).
        pidns=True,
        scratch=(job.scratch_path, job.scratch_bytes) if job.scratch_bytes else None,
    )
    if job.scratch_bytes and confine is None:
        raise UsageError(
            "--scratch_size needs a private mount namespace, which cannot be made here.",
            hint="Run without --scratch_size, or with --backend docker.",
        )
    env.update(extra)
    return LaunchSpec(argv, env, confine)


WITNESS_GRACE = 5.0  # seconds a witness has to end the experiment and write its record


def _is_witness(ref: ProcessRef) -> bool:
    """Whether the handle is a witness (older experiments were their own handle)."""
    try:
        cmdline = Path(f"/proc/{ref.pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"import witness" in cmdline and ref.alive()


def read_witness(job: Job, handle: str) -> dict | None:
    """The witness's record of this attempt (the witness is the handle), or None."""
    import json

    try:
        record = json.loads((job.exp_dir / WITNESS_FILE).read_text())
    except (OSError, ValueError):
        return None  # none, or not written yet (an empty file)
    if not isinstance(record, dict) or record.get("witness") != handle:
        return None  # an earlier attempt's
    return record


def working_copy(job: Job, sink: LogSink, make: Callable[[], None]) -> None:
    """The attempt's working directory: the one an earlier attempt left (a restart),
    else a fresh one, which ``make`` writes."""
    if resume_workdir(job):
        sink.write("stderr", f"gridrun: restart {job.restart_count}, in the same working directory")
        return
    if job.workdir.exists():
        shutil.rmtree(job.workdir)
    make()


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
