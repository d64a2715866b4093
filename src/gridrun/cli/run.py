"""``grid run [OPTIONS] SCRIPT [SCRIPT_ARGS]...``: submit a run and return at once.

Everything before the script is grid's; everything after it is the script's, passed
through untouched. Click's ``ignore_unknown_options`` would take a mistyped grid option
(``grid run --cpu 2 main.py``) for the script, so :class:`RunCommand` reads the tokens
before the script itself and refuses an unknown option with the nearest known one.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from gridrun.backends.registry import OPTIONS as BACKEND_OPTIONS
from gridrun.cli.common import home_of, output_of

if TYPE_CHECKING:
    from gridrun.specs import RunSpec
    from gridrun.store.models import Run

_SUMMARY = """\
Run submitted!
`grid status` to list all runs
`grid status {name}` to see all experiments for this run

----------------------
Submission summary
----------------------
script:                  {script}
{repo}backend:                 {backend}
cpus:                    {cpus}
gpus:                    {gpus}
memory:                  {memory}
instance_type:           {instance_type}
use_spot:                {use_spot}
grid_name:               {name}
experiments:             {n}
snapshot:                {snapshot}
datastore_name:          {ds_name}
datastore_version:       {ds_version}
datastore_mount_dir:     {ds_mount}
dependencies:            {deps}
{torch}environment hash:        {env_key}
"""


class RunCommand(click.Command):
    """``grid run``: options before the script must be grid's own."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = grid_localdir_flag(self.get_params(ctx), args, ctx)
        check_grid_options(self.get_params(ctx), args, ctx)
        return super().parse_args(ctx, args)


def grid_localdir_flag(
    params: list[click.Parameter], args: list[str], ctx: click.Context
) -> list[str]:
    """Grid's ``-l``/``--localdir`` was a flag (upload this folder rather than clone
    from GitHub), which is what gridrun always does; gridrun's takes a folder. Followed
    by a file (the script), by an option or by nothing, it is Grid's flag: dropped here,
    and noted by ``run``."""
    import os

    takes_value = _takes_value(params)
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--" or not token.startswith("-") or token == "-":
            break  # the script: the rest is the script's
        if token in ("-l", "--localdir"):
            following = args[i + 1] if i + 1 < len(args) else None
            if following is None or following.startswith("-") or os.path.isfile(following):
                ctx.meta["grid_localdir_flag"] = True
                return args[:i] + args[i + 1 :]
        name, eq, _ = token.partition("=")
        i += 2 if takes_value.get(name) and not eq else 1
    return args


def _takes_value(params: list[click.Parameter]) -> dict[str, bool]:
    """Each option spelling, and whether it takes a value."""
    takes_value: dict[str, bool] = {}
    for p in params:
        if isinstance(p, click.Option):
            for opt in (*p.opts, *p.secondary_opts):
                takes_value[opt] = not p.is_flag and not p.count
    return takes_value


def check_grid_options(params: list[click.Parameter], args: list[str], ctx: click.Context) -> None:
    """Raise ``NoSuchOption`` for the first unknown option before the script."""
    takes_value = _takes_value(params)
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--" or not token.startswith("-") or token == "-":
            return  # the script (or grid's `--`): the rest is the script's
        name, eq, _ = token.partition("=")
        if name in takes_value:
            i += 2 if takes_value[name] and not eq else 1
            continue
        if not token.startswith("--") and takes_value.get(token[:2]):
            i += 1  # a short option with its value attached: -l../proj
            continue
        raise click.NoSuchOption(name, possibilities=suggest_option(name, takes_value), ctx=ctx)


def suggest_option(name: str, known: dict[str, bool] | list[str]) -> list[str]:
    """The nearest option name; Grid's 2021 ``--grid_`` spelling only when typed so."""
    candidates = [o for o in known if o.startswith("--")]
    if not name.startswith("--grid_"):
        candidates = [o for o in candidates if not o.startswith("--grid_")]
    wanted = name.replace("-", "_").lstrip("_")
    by_key = {o.replace("-", "_").lstrip("_"): o for o in candidates}
    close = difflib.get_close_matches(wanted, list(by_key), n=1, cutoff=0.6)
    return [by_key[c] for c in close]


def _positive(kind: type, hint: str = ""):  # type: ignore[no-untyped-def]
    """A click callback refusing nan, inf, zero and negative values, naming the option.

    ``--gpus 0`` is refused too: leaving the option out already means no GPU, so a 0
    typed on the command line is most likely a slip (Grid's YAML ``gpus: 0``, which is
    common, is read by ``--config`` and stays valid).
    """
    import math

    def check(ctx: click.Context, param: click.Parameter, value: object) -> object:
        if value is None:
            return None
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number) or number <= 0:
            raise click.BadParameter(f"must be a positive number, got {value}.{hint}")
        return kind(value)

    return check


def _backend_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options backends own (``--ray_address``), from the backend registry."""
    for option, (_owner, help_text) in reversed(BACKEND_OPTIONS.items()):
        f = click.option(f"--{option}", help=help_text)(f)
    return f


@click.command(
    cls=RunCommand,
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    short_help="Run a script, or a sweep of it, on local, Docker or Ray compute.",
)
@click.option(
    "--name",
    "--grid_name",
    "name",
    help="Run name (lowercase letters, digits, '-'); generated if omitted.",
)
@click.option(
    "--cpus",
    "--grid_cpus",
    "cpus",
    type=float,
    callback=_positive(float),
    help="CPUs per experiment (1).",
)
@click.option(
    "--gpus",
    "--grid_gpus",
    "gpus",
    type=int,
    callback=_positive(int, " Leave it out to run on CPUs only."),
    help="GPUs per experiment (none if left out).",
)
@click.option("--memory", "--grid_memory", "memory", help="Memory per experiment, e.g. 4G.")
@click.option(
    "--strategy",
    "--grid_strategy",
    "strategy",
    type=click.Choice(["grid_search", "random_search", "bayesian", "none"]),
    help="How hyperparameter lists expand (grid_search); bayesian searches adaptively.",
)
@click.option(
    "--num_trials",
    "--grid_trials",
    "num_trials",
    type=int,
    help="Experiments for random_search and bayesian (20 for bayesian).",
)
@click.option(
    "--objective",
    help="bayesian: the metric to optimise, NAME:min|max[:last|best] (val_loss:min).",
)
@click.option(
    "--prune",
    type=click.Choice(["median", "hyperband", "none"]),
    help="bayesian: stop unpromising trials early (none).",
)
@click.option("--seed", type=int, help="Seed for random_search and sampled distributions.")
@click.option(
    "--datastore_name",
    "--grid_datastore_name",
    "datastore_name",
    multiple=True,
    help="Datastore to mount read-only (repeatable).",
)
@click.option(
    "--datastore_version",
    "--grid_datastore_version",
    "datastore_version",
    multiple=True,
    type=int,
    help="Its version (latest by default).",
)
@click.option(
    "--datastore_mount_dir",
    "--grid_datastore_mount_dir",
    "datastore_mount_dir",
    multiple=True,
    help="Where it is mounted (/datastores/NAME).",
)
@click.option(
    "--dependency_file",
    "--grid_dependency_file",
    "dependency_file",
    help="requirements.txt, environment.yml or pyproject.toml to use.",
)
@click.option(
    "-d",
    "--dockerfile",
    "--grid_dockerfile",
    "dockerfile",
    help="A Dockerfile to build as given (docker backend).",
)
@click.option("--base_image", help="Base image for the generated Dockerfile (docker backend).")
@click.option(
    "--config",
    "--grid_config",
    "config",
    type=click.Path(dir_okay=False),
    help="A Grid-style YAML (compute.train, hyper_params).",
)
@click.option("--ignore_warnings", is_flag=True, help="Submit despite warnings; no prompts.")
@click.option(
    "--auto_resume",
    is_flag=True,
    help="Resume preempted experiments in their working directory (checkpoints kept).",
)
@click.option(
    "--max_restarts",
    type=click.IntRange(min=0),
    help="Restarts after preemption before an experiment fails (3).",
)
@click.option(
    "--retries_on_failure",
    type=click.IntRange(min=0),
    default=0,
    help="Also restart experiments whose script exits non-zero, this many times (0).",
)
@click.option(
    "-l",
    "--localdir",
    type=click.Path(file_okay=False),
    help="Project folder to snapshot (the current directory).",
)
@click.option(
    "--repo",
    metavar="URL",
    help="Run the script from this git repository (https, ssh, git:// or file://) "
    "instead of uploading a folder; a GitHub file link as the script does the same.",
)
@click.option("--ref", metavar="REF", help="With --repo: the branch, tag or commit (its HEAD).")
@click.option(
    "--rerun",
    metavar="RUN",
    help="Run RUN again: its script and arguments on its tree, rebuilt from the repository "
    "and commit it recorded (with its uncommitted changes), else from its snapshot.",
)
@click.option("--backend", default=None, help="local (default), docker or ray.")
@click.option(
    "--cluster",
    metavar="NAME",
    help="A cluster from `grid clusters` (local, docker, or one `grid clusters add` named).",
)
@_backend_options
@click.option("--python", "python_version", help="Python version of the environment.")
@click.option("--follow", is_flag=True, help="Stream logs; exit with the experiments' code.")
@click.option(
    "--dry_run",
    is_flag=True,
    help="Check everything a submission checks, print the experiments; record nothing.",
)
# Grid's machine flags: each is read for a machine gridrun does not provision, with a
# one-line note saying what it means here (gridrun.gridflags).
@click.option(
    "--instance_type",
    "--grid_instance_type",
    "instance_type",
    help="A cloud machine type (t2.medium, p3.2xlarge...): its CPUs, memory and GPUs.",
)
@click.option(
    "--use_spot",
    "--grid_use_spot",
    "use_spot",
    is_flag=True,
    help="Preemptible: experiments resume after preemption (as --auto_resume).",
)
@click.option(
    "--framework",
    "--grid_framework",
    "framework",
    metavar="[lightning|torch|tensorflow|julia|julia:VERSION]",
    help="Docker: the framework's base image; elsewhere only noted.",
)
@click.option(
    "--disk_size",
    "--grid_disk_size",
    "disk_size",
    type=int,
    callback=_positive(int),
    help="Disk in GB (noted: experiments use this machine's disk).",
)
@click.option(
    "--scratch_size",
    type=int,
    callback=_positive(int),
    help="GB of scratch space per experiment: a size-capped writable folder, gone when "
    "it ends (a tmpfs, so it counts against memory).",
)
@click.option(
    "--scratch_mount_path",
    help="Where the scratch space is, in each experiment (default /tmp/scratch).",
)
# The run's environment (gridrun.runenv): this shell's, plus these.
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="KEY=VALUE",
    help="An environment variable for the experiments (repeatable; Docker gets only these).",
)
@click.option(
    "--env_file",
    "--env-file",
    "env_file",
    type=click.Path(dir_okay=False),
    help="KEY=VALUE lines to add to the experiments' environment.",
)
@click.argument("script", required=False)
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, **opts: Any) -> None:
    """Run SCRIPT with SCRIPT_ARGS passed through untouched.

    A script argument such as --lr "[0.1, 0.01]" becomes a sweep of experiments.
    Use -- to separate script arguments that clash with grid's options.
    """
    from gridrun.cli.output import console, emit_json, note, warn
    from gridrun.config import load_machine_config
    from gridrun.runenv import parse_env_options
    from gridrun.submission import RunRequest, prepare, record

    home = home_of(ctx).ensure()
    if ctx.meta.get("grid_localdir_flag"):
        note(
            "-l/--localdir (Grid's flag): gridrun always snapshots the local folder; "
            "-l FOLDER names another one."
        )
    if opts["rerun"]:
        _rerun(ctx, home, opts)
        return
    if not opts["script"]:
        from gridrun.errors import UsageError

        raise UsageError("Missing argument 'SCRIPT'.")  # click's words, as before --rerun
    names = list(opts["datastore_name"])
    versions = list(opts["datastore_version"])
    mounts = list(opts["datastore_mount_dir"])
    datastores = [
        (n, versions[i] if i < len(versions) else None, mounts[i] if i < len(mounts) else None)
        for i, n in enumerate(names)
    ]
    target = _cluster_of(home, opts)
    backend = opts["backend"] or (
        target.backend if target else load_machine_config(home.config_path).default_backend
    )
    backend_options = dict(target.options) if target and target.backend == backend else {}
    for option, (owner, _help) in BACKEND_OPTIONS.items():
        if opts[option]:
            if backend != owner:
                from gridrun.errors import UsageError

                raise UsageError(f"--{option} needs --backend {owner}.")
            backend_options[option] = str(opts[option])
    req = RunRequest(
        script=str(opts["script"]),
        script_args=list(opts["script_args"]),
        localdir=opts["localdir"],
        repo=opts["repo"],
        ref=opts["ref"],
        name=opts["name"],
        backend=str(backend),
        python=opts["python_version"],
        cpus=opts["cpus"],
        gpus=opts["gpus"],
        memory=opts["memory"],
        strategy=opts["strategy"],
        num_trials=opts["num_trials"],
        seed=opts["seed"],
        objective=opts["objective"],
        prune=opts["prune"],
        datastores=datastores,
        dependency_file=opts["dependency_file"],
        dockerfile=opts["dockerfile"],
        base_image=opts["base_image"],
        config=opts["config"],
        ignore_warnings=bool(opts["ignore_warnings"]),
        auto_resume=bool(opts["auto_resume"]),
        max_restarts=opts["max_restarts"],
        retries_on_failure=int(opts["retries_on_failure"] or 0),
        dry_run=bool(opts["dry_run"]),
        instance_type=opts["instance_type"],
        use_spot=bool(opts["use_spot"]),
        framework=opts["framework"],
        disk_size=opts["disk_size"],
        scratch_size=opts["scratch_size"],
        scratch_mount_path=opts["scratch_mount_path"],
        env=parse_env_options(list(opts["env"]), opts["env_file"]),
        backend_options=backend_options,
    )
    as_json = output_of(ctx) == "json"
    sub = prepare(req, home, warn, lambda q: click.confirm(q, default=False))
    for line in sub.notes:
        note(line)
    if req.dry_run and sub.spec.search is not None:
        if as_json:
            emit_json({"search": sub.spec.search.to_dict(), "space": sub.search_space})
        else:
            console.print(
                _search_line(sub.spec, req.num_trials is None), markup=False, soft_wrap=True
            )
            for line in sub.search_space:
                console.print(f"  {line}", markup=False, soft_wrap=True)
        return
    if req.dry_run:
        commands = [_command_line(sub.spec.script, e.argv) for e in sub.experiments]
        if as_json:
            emit_json(
                [
                    {"experiment": f"exp{i}", "command": c, "params": e.params}
                    for i, (c, e) in enumerate(zip(commands, sub.experiments, strict=True))
                ]
            )
        else:
            for i, c in enumerate(commands):
                console.print(f"exp{i}: {c}", markup=False, soft_wrap=True)
        return
    run_record = record(sub, req, home)
    if as_json:
        emit_json(_run_json(run_record))
    else:
        spec = sub.spec
        ds = spec.datastores
        console.print(
            _SUMMARY.format(
                name=run_record.name,
                script=spec.script,
                repo=_repo_line(spec, sub),
                backend=run_record.backend,
                cpus=f"{spec.cpus:g}",
                gpus=spec.gpus,
                memory=_memory(req.memory, spec.memory),
                instance_type=req.instance_type or None,
                use_spot=req.use_spot,
                snapshot=f"{len(sub.snapshot_files)} files, {_size(sub.snapshot_bytes)}",
                n=_search_line(spec, req.num_trials is None)
                if spec.search
                else len(sub.experiments),
                ds_name=", ".join(d.name for d in ds) or None,
                ds_version=", ".join(str(d.version) for d in ds) or None,
                ds_mount=", ".join(d.mount_dir for d in ds) or None,
                deps=_deps_line(spec, sub.dependency_source, run_record.name),
                torch=_torch_line(spec),
                env_key=sub.env_key,
            ),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if opts["follow"]:
        from gridrun.cli.follow import follow_run

        sys.exit(follow_run(home, run_record.name, show_build=True, prefix=None))


def _cluster_of(home: Any, opts: dict[str, Any]) -> Any:
    """The named cluster a run goes to: --cluster, else the user's default cluster
    (`grid user set-default-cluster`) unless --backend says where; None for neither."""
    from gridrun import clusters
    from gridrun.errors import UsageError

    if opts["cluster"]:
        target = clusters.load(home).get(opts["cluster"])
        if opts["backend"] and opts["backend"] != target.backend:
            raise UsageError(
                f"--cluster {target.name} is a {target.backend} cluster; "
                f"drop --backend {opts['backend']}."
            )
        return target
    return None if opts["backend"] else clusters.default_target(home)


def _repo_line(spec: RunSpec, sub: Any) -> str:
    if not spec.repo:
        return ""
    dirty = " + uncommitted changes" if sub.source is not None and sub.source.dirty else ""
    return f"repository:              {spec.repo}@{spec.commit}{dirty}\n"


def _rerun(ctx: click.Context, home: Any, opts: dict[str, Any]) -> None:
    """``grid run --rerun RUN``: RUN's script, arguments and resources on its tree,
    rebuilt (gridrun.project.source), then submitted as a new run."""
    import shutil

    from gridrun.cli.common import open_store
    from gridrun.cli.output import console, note, warn
    from gridrun.errors import UsageError
    from gridrun.project import source
    from gridrun.submission import RunRequest, prepare, record

    if opts["script"] or opts["localdir"] or opts["repo"]:
        raise UsageError("--rerun runs RUN's own script on its own tree: give no script.")
    old = open_store(ctx, read_only=True).get_run(opts["rerun"])
    spec = old.spec
    scratch = source.scratch()
    try:
        folder, how = source.rebuild(home, old.name, spec.snapshot_manifest, scratch)
        req = RunRequest(
            script=spec.script,
            script_args=list(spec.script_args),
            localdir=str(folder),
            name=opts["name"],
            backend=old.backend,
            cpus=spec.resources.cpus,
            gpus=spec.resources.gpus,
            memory=spec.resources.memory,
            strategy=spec.strategy,
            num_trials=spec.num_trials,
            seed=spec.seed,
            objective=_objective_text(spec),
            prune=spec.search.prune if spec.search else None,
            auto_resume=spec.auto_resume,
            max_restarts=spec.max_restarts,
            retries_on_failure=spec.retries_on_failure,
            backend_options=dict(spec.backend_options),
            source=source.load(home, old.name),
        )
        sub = prepare(req, home, warn, lambda q: click.confirm(q, default=False))
        if sub.spec.snapshot_hash == spec.snapshot_hash:
            note(
                f"Rebuilt {old.name}'s tree from {how}: the same tree ({spec.snapshot_hash[:12]})."
            )
        else:
            warn(
                f"Rebuilt {old.name}'s tree from {how}, but it differs from the one it ran "
                f"({sub.spec.snapshot_hash[:12]} != {spec.snapshot_hash[:12]})."
            )
        new = record(sub, req, home)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if output_of(ctx) == "json":
        from gridrun.cli.output import emit_json

        emit_json(_run_json(new))
        return
    console.print(
        f"Run {new.name} submitted: {old.name} again, {len(sub.experiments)} experiment(s). "
        f"`grid status {new.name}` to follow it.",
        markup=False,
        soft_wrap=True,
    )
    if opts["follow"]:
        from gridrun.cli.follow import follow_run

        sys.exit(follow_run(home, new.name, show_build=True, prefix=None))


def _search_line(spec: RunSpec, defaulted: bool) -> str:
    """``20 trials (the default; ...) of a bayesian search for val_loss:min:last``."""
    assert spec.search is not None
    default = " (the default; --num_trials sets it)" if defaulted else ""
    prune = f", pruned by {spec.search.prune}" if spec.search.prune != "none" else ""
    return (
        f"{spec.num_trials} trials{default} of a bayesian search for {_objective_text(spec)}{prune}"
    )


def _objective_text(spec: RunSpec) -> str | None:
    if spec.search is None:
        return None
    s = spec.search
    return f"{s.objective}:{'min' if s.direction == 'minimize' else 'max'}:{s.mode}"


def _deps_line(spec: RunSpec, source: str, name: str) -> str:
    """``3 from dcgan/requirements.txt``; inferred ones say they are best effort."""
    if not spec.env.python_env:
        return source  # a Julia script: "none (a Julia script)"
    text = f"{len(spec.env.requirements)} from {source}"
    if source == "inferred":
        text += f" (best effort: any that cannot be installed is dropped, see `grid status {name}`)"
    return text


def _torch_line(spec: RunSpec) -> str:
    """``torch:  CPU build (no GPU requested)``, for an environment with torch."""
    build = spec.env.torch_build
    return f"torch:                   {build.describe()[len('torch: ') :]}\n" if build else ""


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _memory(asked: object, memory: int | None) -> str:
    if not memory:
        return "-"
    return asked if isinstance(asked, str) else f"{memory / 2**30:g} GiB"


def _command_line(script: str, argv: list[str]) -> str:
    import shlex

    from gridrun.specs import script_command

    return shlex.join([*script_command(script), *argv])


def _run_json(run: Run) -> dict:
    from gridrun.cli.status import run_json

    return run_json(run)
