"""The submission pipeline behind ``grid run``: project -> deps -> envs -> sweep -> store.

Everything that can be wrong with the user's input is checked *before* anything is
recorded, so a bad submission leaves no half-written run behind. The expensive part
(building the environment) happens afterwards in the agent, so ``grid run`` returns
at once.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridrun.errors import ProjectError, UsageError
from gridrun.home import GridHome
from gridrun.project.folder import check_project_folder
from gridrun.project.repository import Checkout
from gridrun.project.source import SourceRecord
from gridrun.specs import (
    SCRIPT_KINDS,
    BuildRequest,
    DatastoreMount,
    EnvSpec,
    ExperimentSpec,
    Resources,
    RunSpec,
    SearchSpec,
    TorchBuild,
    needs_python_env,
)

if TYPE_CHECKING:
    from gridrun.backends.base import Backend
    from gridrun.store.models import Run
    from gridrun.sweep import ExperimentArgs

JULIA_SOURCE = "none (a Julia script)"  # DependencyReport.source: no Python packages
LARGE_SWEEP = 1000


@dataclass
class RunRequest:
    """What the user asked for, after CLI options and ``--config`` are merged."""

    script: str
    script_args: list[str]
    localdir: str | None = None
    repo: str | None = None  # run the script from this git repository...
    ref: str | None = None  # ...at this branch, tag or commit (its default branch)
    source: SourceRecord | None = None  # a --rerun's record, carried to the new run
    name: str | None = None
    backend: str = "local"
    python: str | None = None
    cpus: float | None = None
    gpus: int | None = None
    memory: str | int | None = None  # "4G", or bytes from an --instance_type
    strategy: str | None = None
    num_trials: int | None = None
    seed: int | None = None
    objective: str | None = None  # --strategy bayesian: NAME:min|max[:last|best]
    prune: str | None = None  # --strategy bayesian: median, hyperband or none
    datastores: list[tuple[str, int | None, str | None]] = field(default_factory=list)
    dependency_file: str | None = None
    dockerfile: str | None = None
    base_image: str | None = None
    config: str | None = None
    ignore_warnings: bool = False
    auto_resume: bool = False
    max_restarts: int | None = None  # restarts after preemption (3 by default)
    retries_on_failure: int = 0  # restarts after a code failure
    dry_run: bool = False
    metrics: dict[str, Any] | None = None  # the --config's ``metrics:`` section
    # Grid's machine flags, read by gridrun.gridflags.
    instance_type: str | None = None
    use_spot: bool = False
    framework: str | None = None
    disk_size: int | None = None
    scratch_size: int | None = None  # GB of scratch space per experiment (a tmpfs)
    scratch_mount_path: str | None = None
    description: str | None = None  # a --config YAML's description, kept in the spec
    include_secrets: list[str] = field(default_factory=list)  # snapshot.include_secrets
    env: dict[str, str] = field(default_factory=dict)  # --env / --env_file (gridrun.runenv)
    backend_options: dict[str, str] = field(default_factory=dict)  # e.g. --ray_address


@dataclass
class Submission:
    """What ``prepare`` resolved: the run's spec and its experiments, not yet recorded."""

    run_name: str
    experiments: list[ExperimentArgs]
    spec: RunSpec
    env_key: str
    snapshot_bytes: int
    dependency_source: str
    snapshot_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what Grid's flags mean here
    source: SourceRecord | None = None  # where the code came from (gridrun.project.source)
    search_space: list[str] = field(default_factory=list)  # a bayesian search's, described


Confirm = Callable[[str], bool]
Warn = Callable[[str], None]


def resolve_script(localdir: Path, script: str) -> str:
    """The script's path inside the project, with a one-line error when unusable."""
    candidates = (
        [Path(script)] if Path(script).is_absolute() else [Path.cwd() / script, localdir / script]
    )
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise ProjectError(
            f"Script '{script}' not found in {localdir}.",
            hint="Pass the path of a .py, .sh or .jl file inside the project.",
        )
    if path.is_dir():
        raise ProjectError(f"'{script}' is a directory, not a script.")
    if path.suffix not in SCRIPT_KINDS:
        raise ProjectError(
            f"Cannot run '{script}': gridrun runs Python (.py), bash (.sh) and Julia (.jl) scripts."
        )
    try:
        rel = path.resolve().relative_to(localdir.resolve())
    except ValueError:
        raise ProjectError(
            f"Script '{script}' is outside the project folder {localdir}.",
            hint="Run grid from the project folder or pass it with --localdir.",
        ) from None
    return rel.as_posix()


def _validate(backend: Backend, spec: RunSpec, req: RunRequest) -> dict[str, str]:
    """The backend's own checks, and whether one experiment could ever fit there."""
    try:
        return backend.validate(spec)
    except UsageError as exc:
        if not (req.instance_type and exc.message.startswith("Each experiment ")):
            raise
        from gridrun.instances import lookup

        sized = f"(--instance_type {req.instance_type}: {lookup(req.instance_type).describe()})"
        raise UsageError(
            exc.message.replace("Each experiment", f"Each experiment {sized}", 1), hint=exc.hint
        ) from None


def resume_policy(req: RunRequest) -> dict[str, Any]:
    """What happens after a preemption or a failure, checked and as the store keeps it.

    ``--use_spot`` already turned ``auto_resume`` on (gridrun.gridflags).
    """
    for flag, value in (
        ("--max_restarts", req.max_restarts),
        ("--retries_on_failure", req.retries_on_failure),
    ):
        if value is not None and value < 0:
            raise UsageError(f"{flag} must be 0 or more, not {value}.")
    from gridrun.store.endings import DEFAULT_MAX_RESTARTS

    return {
        "auto_resume": req.auto_resume,
        "max_restarts": DEFAULT_MAX_RESTARTS if req.max_restarts is None else req.max_restarts,
        "retries_on_failure": req.retries_on_failure or 0,
    }


def merge_config(req: RunRequest) -> tuple[RunRequest, list[str], list[str]]:
    """Fold a ``--config`` YAML into the request; explicit CLI options win.

    Returns the request, the script arguments the YAML's ``hyper_params`` add, and
    notes on keys that mean something else here (``compute.provider``).
    """
    if not req.config:
        return req, [], []
    from gridrun.config import load_run_config
    from gridrun.sweep import parse_config_hyper_params

    cfg = load_run_config(Path(req.config))
    t = cfg.train
    req.cpus = req.cpus if req.cpus is not None else t.get("cpus")
    req.gpus = req.gpus if req.gpus is not None else t.get("gpus")
    req.memory = req.memory or t.get("memory")
    req.base_image = req.base_image or t.get("base_image")
    req.dockerfile = req.dockerfile or t.get("dockerfile")
    req.dependency_file = req.dependency_file or t.get("dependency_file")
    req.python = req.python or (str(t["python"]) if t.get("python") else None)
    if not req.datastores and t.get("datastore_name"):
        req.datastores = [
            (str(t["datastore_name"]), t.get("datastore_version"), t.get("datastore_mount_dir"))
        ]
    for d in t.get("datastores") or []:
        req.datastores.append((str(d["name"]), d.get("version"), d.get("mount_dir")))
    req.instance_type = req.instance_type or t.get("instance_type") or t.get("instance")
    req.use_spot = req.use_spot or bool(t.get("use_spot"))
    req.framework = req.framework or t.get("framework")
    req.disk_size = req.disk_size if req.disk_size is not None else t.get("disk_size")
    if req.scratch_size is None and t.get("scratch_size") is not None:
        req.scratch_size = t["scratch_size"]
    req.scratch_mount_path = req.scratch_mount_path or t.get("scratch_mount_path")
    req.name = req.name or cfg.name
    req.metrics = cfg.raw.get("metrics")
    req.include_secrets = [*req.include_secrets, *cfg.include_secrets]
    extra, strategy, trials, seed = parse_config_hyper_params(cfg.raw)
    req.strategy = req.strategy or strategy
    req.num_trials = req.num_trials if req.num_trials is not None else trials
    req.seed = req.seed if req.seed is not None else seed
    req.description = req.description or cfg.raw.get("description")
    return req, extra, cfg.notes


def prepare(req: RunRequest, home: GridHome, warn: Warn, confirm: Confirm) -> Submission:
    """Validate and resolve everything; record nothing."""
    from gridrun.backends import get_backend
    from gridrun.sweep import count_experiments, expand

    origin = _repository(req, home, warn)
    if origin is not None:
        localdir = origin.tree
        script = _script_in_repository(origin, req.script)
    else:
        localdir = Path(req.localdir or os.getcwd()).absolute()
        if not localdir.is_dir():
            raise ProjectError(f"Project folder {localdir} does not exist or is not a folder.")
        check_project_folder(localdir, home.root)
        # No script: a session over the whole folder (gridrun.sessions), whose
        # dependencies are inferred from every .py file in it.
        script = resolve_script(localdir, req.script) if req.script else ""
    req, config_args, config_notes = merge_config(req)
    scratch_space(req.scratch_size, req.scratch_mount_path)  # refused before any work

    if script.endswith(".py"):
        from gridrun.deps import check_script_syntax

        problem = check_script_syntax(localdir / script)
        if problem and _python2_source(localdir / script):
            problem = None  # Python 2 code: the run gets a Python 2.7 if one is installed
        if problem:
            if not req.ignore_warnings:
                raise ProjectError(
                    f"{problem}.", hint="Fix the script, or pass --ignore_warnings to submit it."
                )
            warn(problem)

    backend = get_backend(req.backend, home)
    notes = config_notes + _read_grid_flags(req, backend)
    if req.cpus is None and req.gpus is None:
        warn(
            "Neither a CPU or GPU number was specified. 1 CPU will be used as a default. "
            "To use N GPUs pass in '--gpus N' flag."
        )
    cpus, gpus, memory = _check_resources(req)
    if req.name:
        _check_name(home, req.name)

    # Sweep: expand before anything is recorded; a malformed value stops here.
    args = [*req.script_args, *config_args]
    if args and args[0] == "--":
        args = args[1:]
    args = _resolve_grid_uris(home, args, req)
    strategy = req.strategy or "grid_search"
    from gridrun.config import load_machine_config

    machine = load_machine_config(home.config_path)
    search, space = _search(req, strategy, args, warn)
    # Counted, never built, before the bound is checked: range(10**12) costs nothing.
    n = search_trials(req) if search else count_experiments(args, strategy, req.num_trials)
    if n > machine.max_experiments:
        raise UsageError(
            f"This sweep has {n:,} experiments, more than max_experiments "
            f"({machine.max_experiments:,}).",
            hint="Sweep fewer values, use --strategy random_search with --num_trials, or "
            "raise max_experiments in GRID_HOME/config.yaml.",
        )
    large = n > LARGE_SWEEP and not req.ignore_warnings and not req.dry_run
    if large and not confirm(f"This sweep has {n} experiments. Submit them all?"):
        raise UsageError("Submission cancelled.")
    # A search's experiments are its trials, queued by the agent as it asks for them.
    experiments = [] if search else expand(args, strategy, req.num_trials, req.seed)

    python = req.python or f"{sys.version_info.major}.{sys.version_info.minor}"
    # What the backend must accept, before the snapshot and dependencies fill in the
    # rest: an option it cannot honour, or a request that could never fit, stops here.
    draft = RunSpec(
        script=script,
        env=EnvSpec(python=python, dockerfile=req.dockerfile, base_image=req.base_image),
        snapshot_hash="",
        snapshot_manifest=Path(),
        resources=Resources(cpus=cpus, gpus=gpus, memory=memory),
        datastores=tuple(
            DatastoreMount(name, int(version or 0), Path(), mount_dir or "")
            for name, version, mount_dir in req.datastores
        ),
    )
    backend.validate(draft, fits=False)

    # A dry run goes on through every check below: it refuses what a submission refuses.
    backend.check_available()

    mounts = [_resolve_datastore(home, *d) for d in req.datastores]

    from gridrun.project import take_snapshot

    include = [*load_machine_config(home.config_path).include_secrets, *req.include_secrets]
    snapshot = take_snapshot(localdir, home, include_secrets=include)
    for w in snapshot.warnings:
        warn(w)

    python_env = needs_python_env(script)
    julia = _julia_project(snapshot.paths(), script, req, backend)
    if julia.note:
        notes.append(julia.note)
    deps = _dependencies(localdir, snapshot.paths(), script, req, home, julia.project_file)
    for w in deps.warnings:
        warn(w)
    oldest_python = ""
    if python_env:
        python = _fitting_python(req, python, deps, warn)
        oldest_python = _oldest_python(req, python, deps)
    if req.dockerfile and not (localdir / req.dockerfile).is_file():
        raise ProjectError(f"Dockerfile '{req.dockerfile}' not found in {localdir}.")
    # apt.txt is read once, by the image builder, from the snapshot it builds
    # (``backends.docker.dockerfile.parse_apt_txt``): ``apt_packages`` holds only packages
    # asked for besides it.
    apt: list[str] = []
    conda_file = (
        deps.source if deps.source.endswith(("environment.yml", "environment.yaml")) else None
    )
    if deps.source.startswith("dependency_file:"):
        conda_file = None

    torch_build = _torch_build(backend, req, python_env, gpus, deps, home)
    # A checkout with a remote, run from where it is: record (url, commit, diff) so
    # the exact tree can be rebuilt (--rerun); --localdir keeps a plain upload.
    source = req.source
    if source is None and origin is None and req.localdir is None:
        from gridrun.project.source import record_checkout

        source = record_checkout(localdir, snapshot.paths())
        if source is not None and not source.pushed:
            warn(
                f"Commit {source.commit[:12]} is on no branch of {source.repo}: the run "
                "keeps its snapshot, but its tree cannot be rebuilt from the repository "
                "until it is pushed."
            )
    spec = RunSpec(
        script=script,
        script_args=tuple(args),
        localdir=str(localdir) if origin is None else origin.label,
        project_name=localdir.name if origin is None else _repo_name(origin.url),
        project=_project_label(localdir) if origin is None else _repo_label(origin.url),
        repo=origin.url if origin is not None else source.repo if source else None,
        commit=origin.commit if origin is not None else source.commit if source else None,
        env=EnvSpec(
            python=python,
            requirements=tuple(deps.requirements),
            dependency_source=deps.source,
            import_checks=tuple(deps.checks),
            dockerfile=req.dockerfile,
            base_image=req.base_image,
            apt_packages=tuple(apt),
            conda_file=conda_file,
            python_env=python_env,
            julia_project=julia.project_file,
            oldest_python=oldest_python,
            torch_build=torch_build,
        ),
        resources=Resources(cpus=cpus, gpus=gpus, memory=memory),
        strategy=strategy,
        num_trials=search_trials(req) if search else req.num_trials,
        seed=req.seed,
        search=search,
        snapshot_hash=snapshot.hash,
        snapshot_manifest=snapshot.manifest_path,
        snapshot_bytes=snapshot.total_bytes,
        datastores=tuple(mounts),
        **resume_policy(req),
        backend_options=dict(req.backend_options),
        metrics=req.metrics,
        use_spot=req.use_spot,
        instance_type=req.instance_type,
        framework=req.framework,
        disk_size=req.disk_size,
        **scratch_space(req.scratch_size, req.scratch_mount_path),
        description=req.description,
    )
    spec = replace(spec, backend_options=_validate(backend, spec, req))
    env_key = backend.environment_key(BuildRequest.for_run("", spec, home.objects))
    return Submission(
        run_name="",
        experiments=experiments,
        spec=spec,
        env_key=env_key,
        snapshot_bytes=snapshot.total_bytes,
        dependency_source=deps.source,
        snapshot_files=snapshot.paths(),
        notes=notes,
        source=source,
        search_space=space,
    )


def search_trials(req: RunRequest) -> int:
    """A search's number of trials: ``--num_trials``, else a bounded default."""
    from gridrun.sweep.search import DEFAULT_TRIALS

    n = DEFAULT_TRIALS if req.num_trials is None else req.num_trials
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"--num_trials must be a positive integer, got {n!r}.")
    return n


def _search(
    req: RunRequest, strategy: str, args: list[str], warn: Warn
) -> tuple[SearchSpec | None, list[str]]:
    """``--strategy bayesian``'s objective and pruner, its search space checked."""
    if strategy != "bayesian":
        for flag, value in (("--objective", req.objective), ("--prune", req.prune)):
            if value:
                raise UsageError(
                    f"{flag} is for adaptive search: add --strategy bayesian.",
                    hint="grid_search and random_search run every experiment to its end.",
                )
        return None, []
    from gridrun.sweep.search import PRUNERS, parse_objective
    from gridrun.sweep.space import search_space

    if not req.objective:
        raise UsageError(
            "--strategy bayesian needs --objective NAME:min or NAME:max, naming a metric "
            "the script prints.",
            hint="For example --objective val_loss:min (its last value; :best for its best).",
        )
    search = parse_objective(req.objective)
    prune = (req.prune or "none").lower()
    if prune not in PRUNERS:
        raise UsageError(f"--prune {req.prune!r}: valid pruners are {', '.join(PRUNERS)}.")
    space = search_space(args, warn)
    return replace(search, prune=prune), [p.describe() for p in space]


def _torch_build(
    backend: Backend, req: RunRequest, python_env: bool, gpus: int, deps: Any, home: GridHome
) -> TorchBuild | None:
    """The PyTorch build the environment gets, for a backend that chooses one.

    None where the environment holds no torch, or is built from the user's own
    Dockerfile (what it installs is theirs to say). On Docker, the CUDA build is the
    one the engine's driver runs (``nvidia-smi``, else ``capacity.cuda``): torch's CUDA
    wheels bring their own CUDA libraries, so the image's CUDA runtime, a
    ``--base_image`` of the user's included, does not bound it; the venv is gridrun's
    over any base image.
    """
    from gridrun.envs import torchbuild

    if not python_env or req.dockerfile:
        return None
    if not torchbuild.wants_torch(deps.requirements, deps.checks):
        return None
    if torchbuild.chosen_by_user(deps.requirements):  # torch==2.1.0+cu121: theirs to say
        return None
    if not backend.capabilities.torch_builds:
        return TorchBuild("", "", f"the {backend.name} backend installs PyPI's build")
    from gridrun.config import load_machine_config

    cfg = load_machine_config(home.config_path)
    base = torchbuild.index_base(cfg.torch_index_url)
    if gpus > 0 and not backend.capabilities.shares_machine:  # Ray: each node's driver
        return torchbuild.each_node(gpus, base)
    cuda = torchbuild.driver_cuda(cfg.cuda) if gpus > 0 else None
    return torchbuild.choose(gpus, base, cuda)


def _julia_project(files: list[str], script: str, req: RunRequest, backend: Any) -> Any:
    """The Project.toml a Julia script's image instantiates (gridrun.deps.julia); it
    refuses a Julia file for a Python script and a Python file for a Julia one."""
    from gridrun.deps.julia import julia_project

    return julia_project(
        files,
        script,
        req.dependency_file,
        julia_script=not needs_python_env(script),
        container=backend.capabilities.dockerfile,
        dockerfile=req.dockerfile,
        backend=backend.name,
    )


def _dependencies(
    localdir: Path,
    files: list[str],
    script: str,
    req: RunRequest,
    home: GridHome,
    julia_project: str | None,
) -> Any:
    """The run's Python requirements; none for a Julia script, which gets no virtualenv
    (its Project.toml, if any, is instantiated by its image: ``julia_project``).

    A Julia project's ``.py`` files (helpers, docs) are not the script's: reading their
    imports would build a Python environment the script never uses.
    """
    from gridrun.deps import DependencyReport, resolve_dependencies

    if needs_python_env(script):
        return resolve_dependencies(
            localdir, files, script, req.dependency_file, cache_dir=home.cache
        )
    if julia_project:
        return DependencyReport(requirements=[], source=f"{julia_project} (Julia packages)")
    return DependencyReport(requirements=[], source=JULIA_SOURCE)


def _python2_source(path: Path) -> bool:
    from gridrun.deps.py2scan import python2_imports

    return python2_imports(path) is not None


def _fitting_python(req: RunRequest, python: str, deps: Any, warn: Warn) -> str:
    """The declared Python, else an installed one the code can run on.

    A version the project declares (``requires-python`` pinned to one minor version,
    ``environment.yml``'s ``python=X.Y``) is used when it is installed here (or the
    backend builds its own image); otherwise the run says so and uses the default.
    """
    declared = None if req.python else getattr(deps, "python_version", None)
    if declared and declared != python:
        from gridrun.envs.pyselect import python_path

        if req.backend == "docker" or python_path(declared) is not None:
            warn(f"Using Python {declared}, as {deps.source} declares.")
            return str(declared)
        warn(
            f"{deps.source} declares Python {declared}, which is not installed here; "
            f"using Python {python}. Install it, or pass --python."
        )
        return python
    newest = deps.python_max
    if req.python or newest is None or tuple(sys.version_info[:2]) <= newest:
        return python
    from gridrun.envs.pyselect import choose_python

    needed = f"{newest[0]}.{newest[1]}"
    why = f"it uses {deps.python_reason}, which Python {needed} is the last to have"
    if newest[0] == 2:
        why = f"it imports {deps.python_reason}, which only Python 2 has"
        if deps.python_reason.startswith("Python 2 syntax"):
            why = f"it has {deps.python_reason}"
    chosen = choose_python(newest)
    if chosen is None:
        warn(f"The code needs Python {needed} or older ({why}); none is installed here.")
        return python
    warn(f"Using Python {chosen}: {why}. Pass --python to choose another.")
    return chosen


def _oldest_python(req: RunRequest, python: str, deps: Any) -> str:
    """How far the build may step the Python down for an old package ("": not at all).

    Only where gridrun chose the Python for inferred requirements: a ``--python`` or a
    version the project declares is kept as given, and Python 2 has nowhere to go.
    """
    if req.python or getattr(deps, "python_version", None) or deps.source != "inferred":
        return ""
    if python.startswith("2."):
        return ""
    oldest = deps.python_min
    return f"{oldest[0]}.{oldest[1]}" if oldest >= (3, 0) else ""


def record(sub: Submission, req: RunRequest, home: GridHome) -> Run:
    """Write the run and its experiments in one transaction and wake the agent."""
    from gridrun.agent.control import ensure_agent
    from gridrun.names import generate_run_name, validate_run_name
    from gridrun.store.db import Store

    store = Store(home.db_path)
    if req.name:
        validate_run_name(req.name)
        name = req.name
        _check_name(home, name)
    else:
        name = generate_run_name(store.run_names())
    spec = sub.spec
    # The submitting shell's environment, owner-only, outside grid.db: written before
    # the run exists, so no experiment can start without it (gridrun.runenv).
    from gridrun import runenv

    fresh = store.find_run(name) is None
    if fresh:
        runenv.save(home.root, name, dict(os.environ), req.env)
        if sub.source is not None:
            from gridrun.project import source

            source.save(home, name, sub.source)
    try:
        run = store.create_run(
            name=name,
            backend=req.backend,
            spec=spec,
            env_key=sub.env_key,
            experiments=[
                ExperimentSpec(i, tuple(e.argv), dict(e.params), spec.resources)
                for i, e in enumerate(sub.experiments)
            ],
            search=spec.search is not None,
        )
    except BaseException:
        if fresh:
            shutil.rmtree(runenv.env_path(home.root, name).parent, ignore_errors=True)
        raise
    ensure_agent(home)
    return run


def _read_grid_flags(req: RunRequest, backend: Any) -> list[str]:
    """Fold --instance_type, --use_spot, --framework and --disk_size into the request."""
    from gridrun.gridflags import read_grid_flags

    ask = read_grid_flags(
        instance_type=req.instance_type,
        use_spot=req.use_spot,
        framework=req.framework,
        disk_size=req.disk_size,
        cpus=req.cpus,
        gpus=req.gpus,
        memory=req.memory,
        base_image=req.base_image,
        dockerfile=req.dockerfile,
        auto_resume=req.auto_resume,
        container_backend=backend.capabilities.dockerfile,
        backend=backend.name,
        script=req.script,
    )
    req.cpus, req.gpus = ask.cpus, ask.gpus
    req.memory = ask.memory
    req.base_image, req.auto_resume = ask.base_image, ask.auto_resume
    return ask.notes


def _check_resources(req: RunRequest) -> tuple[float, int, int | None]:
    """(cpus, gpus, memory bytes); nan, inf, zero or negative is an error naming the option."""
    from gridrun.config import parse_memory

    def bad(option: str, value: object, want: str) -> UsageError:
        return UsageError(f"Invalid value for '{option}': must be {want}, got {value}.")

    raw_cpus = req.cpus if req.cpus is not None else 1
    try:
        cpus = float(raw_cpus)
    except (TypeError, ValueError):
        raise bad("--cpus", raw_cpus, "a positive number") from None
    if not math.isfinite(cpus) or cpus <= 0:
        raise bad("--cpus", raw_cpus, "a positive number")
    raw_gpus: object = req.gpus if req.gpus is not None else 0
    if isinstance(raw_gpus, float) and raw_gpus.is_integer():
        raw_gpus = int(raw_gpus)
    if isinstance(raw_gpus, bool) or not isinstance(raw_gpus, int) or raw_gpus < 0:
        raise bad("--gpus", raw_gpus, "a whole number of at least 0")
    try:
        memory = parse_memory(req.memory)
    except UsageError as exc:
        raise bad("--memory", req.memory, "a size such as 512M, 4G or 16Gi") from exc
    if memory is not None and memory <= 0:
        raise bad("--memory", req.memory, "more than 0")
    return cpus, raw_gpus, memory


def _repository(req: RunRequest, home: GridHome, warn: Warn) -> Checkout | None:
    """The repository's tree at the asked commit, for ``--repo`` or a GitHub file link."""
    from gridrun.project.repository import checkout, github_file_link

    link = github_file_link(req.script)
    if link is not None:
        if req.repo:
            raise UsageError("Give either --repo or a GitHub file link as the script, not both.")
        req.repo, ref, req.script = link
        req.ref = req.ref or ref
    if not req.repo:
        if req.ref:
            raise UsageError("--ref needs --repo URL (or a GitHub file link as the script).")
        return None
    if req.localdir:
        raise UsageError("--localdir and --repo both say where the code is: give one.")
    found = checkout(home.ensure(), req.repo, req.ref)
    if not found.fetched:
        warn(f"Using {found.label} from the repository cache (nothing fetched).")
    return found


def _script_in_repository(origin: Checkout, script: str) -> str:
    path = Path(script)
    if path.is_absolute() or ".." in path.parts:
        raise ProjectError(f"'{script}' must be a path inside the repository.")
    if not (origin.tree / path).is_file():
        raise ProjectError(
            f"'{script}' is not in {origin.label}.",
            hint="Give the script's path from the repository's root.",
        )
    return resolve_script(origin.tree, str(origin.tree / path))


def _repo_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git") or "repo"


def _repo_label(url: str) -> str:
    """The Project column: ``owner/repo`` of the URL, else the repository's name."""
    from gridrun.project.origin import owner_repo

    return owner_repo(url) or _repo_name(url)


def _project_label(localdir: Path) -> str:
    from gridrun.project.origin import project_label

    return project_label(localdir)


def _check_name(home: GridHome, name: str) -> None:
    """A valid --name that no run has yet (checked before anything is recorded)."""
    from gridrun.names import validate_run_name
    from gridrun.store.db import Store

    validate_run_name(name)
    if not home.db_path.exists():
        return
    store = Store(home.db_path)
    try:
        taken = name in store.run_names()
    finally:
        store.close()
    if taken:
        raise UsageError(f"A run named '{name}' already exists.", hint="Choose another --name.")


def _resolve_datastore(home: GridHome, name: str, version: Any, mount_dir: str | None) -> Any:
    from gridrun.datastores import resolve

    return resolve(home, name, int(version) if version is not None else None, mount_dir)


def _resolve_grid_uris(home: GridHome, args: list[str], req: RunRequest) -> list[str]:
    """The 2021 ``grid:NAME:VERSION`` argument form: mount it, pass its mount path."""
    if not any(a.startswith("grid:") for a in args):
        return args
    from gridrun.datastores import parse_grid_uri

    out = []
    for a in args:
        parsed = parse_grid_uri(a) if a.startswith("grid:") else None
        if parsed is None:
            out.append(a)
            continue
        name, version = parsed
        mount_dir = f"/datastores/{name}"
        req.datastores.append((name, version, mount_dir))
        out.append(mount_dir)
    return out


def scratch_space(size: object, path: str | None) -> dict[str, Any]:
    """Grid's ``--scratch_size GB`` and ``--scratch_mount_path``, checked: the spec's fields.

    The folder is a size-capped tmpfs the backend mounts at ``path`` inside each
    experiment (a run that fills it gets ENOSPC, never the host's disk full); a path
    without a size is refused rather than ignored.
    """
    from gridrun.specs import DEFAULT_SCRATCH_PATH

    if size is None:
        if path:
            raise UsageError(
                "--scratch_mount_path needs --scratch_size (the scratch space's GB).",
                hint="Add --scratch_size 10, say.",
            )
        return {}
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise UsageError(f"--scratch_size must be a positive number of GB, got {size!r}.")
    where = path or DEFAULT_SCRATCH_PATH
    parts = [p for p in where.split("/") if p]
    system = {"bin", "boot", "dev", "etc", "lib", "lib64", "proc", "run", "sbin", "sys", "usr"}
    if (
        not where.startswith("/")
        or not parts
        or (len(parts) == 1 and parts[0] in system)
        or (parts[0] in {"proc", "sys", "dev"})
        or ".." in parts
    ):
        raise UsageError(
            f"--scratch_mount_path {where!r} must be an absolute folder outside the system's "
            "own (/tmp/scratch by default).",
        )
    return {"scratch_size": size, "scratch_mount_path": "/" + "/".join(parts)}
