"""The typed specs every stage hands to the next: what was asked, resolved and frozen.

This module sits at the bottom of the tree: every stage (``submission``, the store,
the agent, the backends) imports it, and it imports nothing of theirs. The specs are
frozen dataclasses so that a stage cannot quietly change what an earlier one decided;
a stage that needs a variant builds a new one with :func:`dataclasses.replace`.

``RunSpec`` is what the store keeps in ``runs.spec``, as JSON with a ``version``
number. :meth:`RunSpec.from_dict` also reads the flat, unversioned dict that gridrun
wrote before specs were typed, so an existing ``GRID_HOME`` keeps working. Add a field
with a default and it reads older records unchanged; change the meaning of one and
bump :data:`SPEC_VERSION`, converting older versions in ``from_dict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridrun.home import ExperimentPaths

SPEC_VERSION = 1
SCRIPT_KINDS = (".py", ".sh", ".jl")
#: ``Job.env_ref`` of a run that has no Python environment (a Julia script, locally or
#: on Ray): there is no virtualenv to put first on PATH.
NO_PYTHON_ENV = "no-python-env"


def script_command(script: str, python: str = "python") -> list[str]:
    """``python SCRIPT``, ``bash SCRIPT`` or ``julia SCRIPT``: the one rule, for every
    backend and the CLI. ``julia`` is the one on PATH (locally, on a Ray node) or in the
    image (Docker: ``--framework julia``)."""
    if script.endswith(".sh"):
        return ["bash", script]
    if script.endswith(".jl"):
        return ["julia", script]
    return [python, script]


def needs_python_env(script: str) -> bool:
    """Whether the script's environment holds Python packages.

    A ``.sh`` script gets the run's virtualenv (its commands usually call ``python``);
    a Julia script gets none: no dependency inference, no virtualenv, no Python stage in
    the image (Julia's official image has no Python).
    """
    return not script.endswith(".jl")


# How often a preempted experiment restarts under --auto_resume unless asked otherwise.
DEFAULT_MAX_RESTARTS = 3
DEFAULT_SCRATCH_PATH = "/tmp/scratch"  # Grid's --scratch_mount_path default


@dataclass(frozen=True)
class DatastoreMount:
    """A datastore version to show read-only inside an experiment."""

    name: str
    version: int
    source: Path  # host folder holding the version's files
    mount_dir: str  # where the experiment sees it: absolute, or relative to the project

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": str(self.source),
            "mount_dir": self.mount_dir,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatastoreMount:
        return cls(str(d["name"]), int(d["version"]), Path(d["source"]), str(d["mount_dir"]))


@dataclass(frozen=True)
class TorchBuild:
    """The build chosen: ``variant`` ``cpu``, ``cu126``, or ``""`` for PyPI's default."""

    variant: str
    index_url: str  # the variant's index ("" for the default build)
    reason: str  # "no GPU requested"

    def describe(self) -> str:
        """``torch: CPU build (no GPU requested)``, for the summary and ``grid status``."""
        if self.variant == "cpu":
            what = "CPU build"
        elif self.variant == "cuda":  # chosen on each node (torchbuild.each_node)
            what = "CUDA build"
        elif self.variant.startswith("cu"):
            digits = self.variant[2:]
            what = f"CUDA {digits[:-1]}.{digits[-1]} build"
        else:
            what = "default build"
        return f"torch: {what} ({self.reason})"

    def key(self) -> str:
        """What the environment key holds of it."""
        return f"{self.variant}|{self.index_url}"

    def to_dict(self) -> dict[str, str]:
        return {"variant": self.variant, "index_url": self.index_url, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> TorchBuild | None:
        if not d:
            return None
        return cls(str(d.get("variant") or ""), str(d.get("index_url") or ""), str(d["reason"]))


@dataclass(frozen=True)
class EnvSpec:
    """What the run's environment (virtualenv or image) is built from."""

    python: str  # "3.11"
    requirements: tuple[str, ...] = ()  # normalised requirement lines
    dependency_source: str = ""  # "requirements.txt", "imports", ...
    dockerfile: str | None = None  # path inside the project, built as given
    base_image: str | None = None
    apt_packages: tuple[str, ...] = ()
    conda_file: str | None = None  # environment.yml inside the project
    import_checks: tuple[str, ...] = ()  # names version repair must make importable
    python_env: bool = True  # False for a Julia script (see needs_python_env)
    # A Julia script's Project.toml (a path inside the project) that its image
    # instantiates (gridrun.deps.julia); None: no Julia packages are installed.
    julia_project: str | None = None
    # The oldest Python the code's syntax and standard-library imports allow ("3.8"),
    # set when gridrun chose the Python (inferred requirements, no --python): the build
    # may then step down to an older installed one that an old package needs. "": never.
    oldest_python: str = ""
    # The PyTorch build the environment gets (gridrun.envs.torchbuild); None: the
    # environment holds no torch, or the backend installs PyPI's default build.
    torch_build: TorchBuild | None = None

    @property
    def best_effort(self) -> bool:
        """Inferred requirements: what cannot be installed is dropped, with a warning."""
        return self.dependency_source == "inferred"

    def to_dict(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "requirements": list(self.requirements),
            "dependency_source": self.dependency_source,
            "dockerfile": self.dockerfile,
            "base_image": self.base_image,
            "apt_packages": list(self.apt_packages),
            "conda_file": self.conda_file,
            "import_checks": list(self.import_checks),
            "python_env": self.python_env,
            "julia_project": self.julia_project,
            "oldest_python": self.oldest_python,
            "torch_build": self.torch_build.to_dict() if self.torch_build else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnvSpec:
        return cls(
            python=str(d.get("python") or ""),
            requirements=tuple(d.get("requirements") or ()),
            dependency_source=str(d.get("dependency_source") or ""),
            dockerfile=d.get("dockerfile"),
            base_image=d.get("base_image"),
            apt_packages=tuple(d.get("apt_packages") or ()),
            conda_file=d.get("conda_file"),
            import_checks=tuple(d.get("import_checks") or ()),
            python_env=bool(d.get("python_env", True)),
            julia_project=d.get("julia_project"),
            oldest_python=str(d.get("oldest_python") or ""),
            torch_build=TorchBuild.from_dict(d.get("torch_build")),
        )


@dataclass(frozen=True)
class Resources:
    """What one experiment asks for. The backend decides where that fits."""

    cpus: float = 1.0
    gpus: int = 0
    memory: int | None = None  # bytes


@dataclass(frozen=True)
class Capacity:
    """What a place offers experiments: this machine, or an engine's largest node."""

    cpus: float
    memory: int  # bytes
    gpus: list[int] = field(default_factory=list)  # device indices

    def refuse(self, cpus: float, gpus: int, memory: int | None) -> str | None:
        """Why one experiment could never run here, or None when it could."""
        if cpus > self.cpus:
            return f"asks for {cpus:g} CPUs but this machine has {self.cpus:g}"
        if gpus > len(self.gpus):
            return f"asks for {gpus} GPU(s) but this machine has {len(self.gpus)}"
        if memory and memory > self.memory:
            return (
                f"asks for {memory / 2**30:.1f} GiB of memory but this machine has "
                f"{self.memory / 2**30:.1f} GiB"
            )
        return None


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment of a sweep: its own arguments and what it asks for."""

    index: int
    argv: tuple[str, ...]
    params: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = Resources()


@dataclass(frozen=True)
class SearchSpec:
    """An adaptive search's goal: ``--objective NAME:min|max[:last|best]`` and ``--prune``.

    The search space is the run's ``script_args`` (sweep syntax, read by
    :mod:`gridrun.sweep.space`); the number of trials is ``RunSpec.num_trials``.
    """

    objective: str  # a metric key gridrun parses (val_loss)
    direction: str = "minimize"  # or "maximize"
    mode: str = "last"  # the trial's value: its last reported value, or its best
    prune: str = "none"  # "median", "hyperband" or "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "direction": self.direction,
            "mode": self.mode,
            "prune": self.prune,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchSpec:
        return cls(
            objective=str(d.get("objective") or ""),
            direction=str(d.get("direction") or "minimize"),
            mode=str(d.get("mode") or "last"),
            prune=str(d.get("prune") or "none"),
        )


@dataclass(frozen=True)
class RunSpec:
    """A run as submitted: the script, its snapshot, its environment and its sweep."""

    script: str  # path inside the project, posix
    env: EnvSpec
    snapshot_hash: str
    snapshot_manifest: Path
    script_args: tuple[str, ...] = ()
    localdir: str = ""
    project_name: str = "project"  # the folder's name
    project: str | None = None  # the Project column: git remote owner/repo, else the folder
    repo: str | None = None  # the repository the code came from (no credentials in it)
    commit: str | None = None  # ...at this commit (``grid run --repo``)
    snapshot_bytes: int = 0
    resources: Resources = Resources()
    strategy: str = "grid_search"
    num_trials: int | None = None
    seed: int | None = None
    datastores: tuple[DatastoreMount, ...] = ()
    auto_resume: bool = False
    max_restarts: int = DEFAULT_MAX_RESTARTS  # preemptions restarted under --auto_resume
    retries_on_failure: int = 0  # code failures retried
    # What the backend resolved at submission (Backend.validate), e.g. the Ray address.
    backend_options: Mapping[str, str] = field(default_factory=dict)
    # Only in records written before the submitter's environment moved to gridrun.runenv.
    env_vars: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, Any] | None = None  # the --config's ``metrics:`` section, as given
    # Grid's flags, kept for `grid status` (what they mean here is noted at submission).
    instance_type: str | None = None
    use_spot: bool = False
    framework: str | None = None
    disk_size: int | None = None
    # Grid's scratch space: a writable folder of this many GB at this path in each
    # experiment, size-capped (a tmpfs), gone when the experiment ends.
    scratch_size: int | None = None
    scratch_mount_path: str = DEFAULT_SCRATCH_PATH
    description: str | None = None  # a --config YAML's description
    search: SearchSpec | None = None  # --strategy bayesian's objective and pruning

    @property
    def cpus(self) -> float:
        return self.resources.cpus

    @property
    def gpus(self) -> int:
        return self.resources.gpus

    @property
    def memory(self) -> int | None:
        return self.resources.memory

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SPEC_VERSION,
            "script": self.script,
            "script_args": list(self.script_args),
            "localdir": self.localdir,
            "project_name": self.project_name,
            "project": self.project,
            "repo": self.repo,
            "commit": self.commit,
            "snapshot_hash": self.snapshot_hash,
            "snapshot_manifest": str(self.snapshot_manifest),
            "snapshot_bytes": self.snapshot_bytes,
            "env": self.env.to_dict(),
            "resources": {
                "cpus": self.resources.cpus,
                "gpus": self.resources.gpus,
                "memory": self.resources.memory,
            },
            "strategy": self.strategy,
            "num_trials": self.num_trials,
            "seed": self.seed,
            "datastores": [d.to_dict() for d in self.datastores],
            "auto_resume": self.auto_resume,
            "max_restarts": self.max_restarts,
            "retries_on_failure": self.retries_on_failure,
            "backend_options": dict(self.backend_options),
            "env_vars": dict(self.env_vars),
            "metrics": self.metrics,
            "instance_type": self.instance_type,
            "use_spot": self.use_spot,
            "framework": self.framework,
            "disk_size": self.disk_size,
            "scratch_size": self.scratch_size,
            "scratch_mount_path": self.scratch_mount_path,
            "description": self.description,
            "search": self.search.to_dict() if self.search else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSpec:
        version = int(d.get("version", 0))
        if version > SPEC_VERSION:
            raise ValueError(f"run spec version {version} is newer than this gridrun's")
        if version == 0:  # the flat dict of gridrun before typed specs
            env = EnvSpec.from_dict(d)
            res = d
            env_vars = d.get("env") or {}
        else:
            env = EnvSpec.from_dict(d.get("env") or {})
            res = d.get("resources") or {}
            env_vars = d.get("env_vars") or {}
        memory = res.get("memory")
        max_restarts = d.get("max_restarts")
        # Lenient on purpose: a record an older gridrun wrote must never break
        # `grid status` or `grid history`; a missing field reads as empty.
        return cls(
            script=str(d.get("script") or ""),
            env=env,
            snapshot_hash=str(d.get("snapshot_hash") or ""),
            snapshot_manifest=Path(d.get("snapshot_manifest") or ""),
            script_args=tuple(d.get("script_args") or ()),
            localdir=str(d.get("localdir") or ""),
            project_name=str(d.get("project_name") or "project"),
            project=d.get("project"),
            repo=d.get("repo"),
            commit=d.get("commit"),
            snapshot_bytes=int(d.get("snapshot_bytes") or 0),
            resources=Resources(
                cpus=float(res.get("cpus", 1.0)),
                gpus=int(res.get("gpus") or 0),
                memory=int(memory) if memory is not None else None,
            ),
            strategy=str(d.get("strategy") or "grid_search"),
            num_trials=d.get("num_trials"),
            seed=d.get("seed"),
            datastores=tuple(DatastoreMount.from_dict(x) for x in d.get("datastores") or ()),
            auto_resume=bool(d.get("auto_resume")),
            max_restarts=DEFAULT_MAX_RESTARTS if max_restarts is None else int(max_restarts),
            retries_on_failure=int(d.get("retries_on_failure") or 0),
            backend_options={
                str(k): str(v) for k, v in dict(d.get("backend_options") or {}).items()
            },
            env_vars={str(k): str(v) for k, v in dict(env_vars).items()},
            metrics=d.get("metrics"),
            instance_type=d.get("instance_type"),
            use_spot=bool(d.get("use_spot")),
            framework=d.get("framework"),
            disk_size=d.get("disk_size"),
            scratch_size=d.get("scratch_size"),
            scratch_mount_path=str(d.get("scratch_mount_path") or DEFAULT_SCRATCH_PATH),
            description=d.get("description"),
            search=SearchSpec.from_dict(d["search"]) if d.get("search") else None,
        )


@dataclass(frozen=True)
class BuildRequest:
    """Everything a backend needs to build (or find cached) the environment of one run."""

    run_name: str
    project_name: str
    python: str  # "3.11"
    requirements: list[str] | tuple[str, ...]  # normalised requirement lines
    snapshot_hash: str
    snapshot_manifest: Path
    objects_dir: Path
    gpu: bool = False
    dockerfile: str | None = None  # path inside the project, used as given
    base_image: str | None = None
    apt_packages: list[str] | tuple[str, ...] = ()
    conda_file: str | None = None  # environment.yml inside the project
    best_effort: bool = False  # inferred requirements: drop what cannot be installed
    checks: list[str] | tuple[str, ...] = ()  # names version repair makes resolve
    python_env: bool = True  # False: a Julia script, no virtualenv or Python stage
    julia_project: str | None = None  # EnvSpec.julia_project
    oldest_python: str = ""  # EnvSpec.oldest_python: how far the build may step down
    torch_build: TorchBuild | None = None  # EnvSpec.torch_build
    # What the backend resolved at submission (Backend.validate), e.g. the Ray address.
    backend_options: Mapping[str, str] = field(default_factory=dict)
    # Where the code came from (RunSpec.repo/commit): Ray and Slurm nodes fetch it there.
    repo: str | None = None
    commit: str | None = None

    @classmethod
    def for_run(cls, run_name: str, spec: RunSpec, objects_dir: Path) -> BuildRequest:
        return cls(
            run_name=run_name,
            project_name=spec.project_name,
            python=spec.env.python,
            requirements=list(spec.env.requirements),
            snapshot_hash=spec.snapshot_hash,
            snapshot_manifest=spec.snapshot_manifest,
            objects_dir=objects_dir,
            gpu=spec.gpus > 0,
            dockerfile=spec.env.dockerfile,
            base_image=spec.env.base_image,
            apt_packages=list(spec.env.apt_packages),
            conda_file=spec.env.conda_file,
            best_effort=spec.env.best_effort,
            checks=list(spec.env.import_checks),
            python_env=spec.env.python_env,
            julia_project=spec.env.julia_project,
            oldest_python=spec.env.oldest_python,
            torch_build=spec.env.torch_build,
            backend_options=dict(spec.backend_options),
            repo=spec.repo,
            commit=spec.commit,
        )


@dataclass(frozen=True)
class Job:
    """One experiment as a backend runs it: everything, resolved, nothing to look up."""

    run_name: str
    experiment_name: str
    experiment_id: int
    env_ref: str  # a virtualenv path (local) or an image tag (docker)
    script: str  # path of the script inside the project
    args: list[str]  # the script's own arguments, passed untouched
    exp_dir: Path  # GRID_HOME/experiments/<name>: logs, exit record, artifacts
    workdir: Path  # the experiment's own copy of the project (local backend)
    snapshot_manifest: Path
    objects_dir: Path
    env: dict[str, str]  # GRID_* variables, thread caps
    cpus: float = 1.0
    memory: int | None = None  # bytes
    gpus: int = 0
    gpu_ids: list[int] = field(default_factory=list)  # granted by the agent, if it places
    datastores: list[DatastoreMount] = field(default_factory=list)
    stop_grace: float = 30.0  # seconds between SIGTERM and SIGKILL
    scratch_path: str = ""  # a size-capped writable folder (``--scratch_size``), or none
    scratch_bytes: int = 0

    @property
    def paths(self) -> ExperimentPaths:
        from gridrun.home import ExperimentPaths

        return ExperimentPaths(self.exp_dir)

    @property
    def artifacts_dir(self) -> Path:
        return self.paths.artifacts

    @property
    def log_path(self) -> Path:
        return self.paths.output_log

    @property
    def resume_dir(self) -> Path:
        """Where a preempted attempt's working directory waits for the restart."""
        return self.paths.resume

    @property
    def restart_count(self) -> int:
        """How many times this experiment was started before (``GRID_RESTART_COUNT``)."""
        return int(self.env.get("GRID_RESTART_COUNT") or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_name": self.run_name,
            "experiment_name": self.experiment_name,
            "experiment_id": self.experiment_id,
            "env_ref": self.env_ref,
            "script": self.script,
            "args": list(self.args),
            "exp_dir": str(self.exp_dir),
            "workdir": str(self.workdir),
            "snapshot_manifest": str(self.snapshot_manifest),
            "objects_dir": str(self.objects_dir),
            "env": dict(self.env),
            "cpus": self.cpus,
            "memory": self.memory,
            "gpus": self.gpus,
            "gpu_ids": list(self.gpu_ids),
            "datastores": [d.to_dict() for d in self.datastores],
            "stop_grace": self.stop_grace,
            "scratch_path": self.scratch_path,
            "scratch_bytes": self.scratch_bytes,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Job:
        return cls(
            run_name=str(d["run_name"]),
            experiment_name=str(d["experiment_name"]),
            experiment_id=int(d["experiment_id"]),
            env_ref=str(d["env_ref"]),
            script=str(d["script"]),
            args=[str(a) for a in d["args"]],
            exp_dir=Path(d["exp_dir"]),
            workdir=Path(d["workdir"]),
            snapshot_manifest=Path(d["snapshot_manifest"]),
            objects_dir=Path(d["objects_dir"]),
            env={str(k): str(v) for k, v in d["env"].items()},
            cpus=float(d.get("cpus", 1.0)),
            memory=d.get("memory"),
            gpus=int(d.get("gpus", 0)),
            gpu_ids=[int(g) for g in d.get("gpu_ids") or ()],
            datastores=[DatastoreMount.from_dict(x) for x in d.get("datastores") or ()],
            stop_grace=float(d.get("stop_grace", 30.0)),
            scratch_path=str(d.get("scratch_path") or ""),
            scratch_bytes=int(d.get("scratch_bytes") or 0),
        )
