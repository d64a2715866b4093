"""``grid run [OPTIONS] SCRIPT [SCRIPT_ARGS]...``: submit a run and return at once."""

from __future__ import annotations

import sys

import click

from gridrun.cli.common import home_of, output_of

_SUMMARY = """\
Run submitted!
`grid status` to list all runs
`grid status {name}` to see all experiments for this run

----------------------
Submission summary
----------------------
script:                  {script}
backend:                 {backend}
cpus:                    {cpus}
gpus:                    {gpus}
memory:                  {memory}
grid_name:               {name}
experiments:             {n}
snapshot:                {snapshot}
datastore_name:          {ds_name}
datastore_version:       {ds_version}
datastore_mount_dir:     {ds_mount}
dependencies:            {deps}
environment hash:        {env_key}
"""


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    short_help="Run a script, or a sweep of it, on local or Docker compute.",
)
@click.option("--name", help="Run name (lowercase letters, digits, '-'); generated if omitted.")
@click.option("--cpus", "--grid_cpus", "cpus", type=float, help="CPUs per experiment (1).")
@click.option("--gpus", "--grid_gpus", "gpus", type=int, help="GPUs per experiment (0).")
@click.option("--memory", "--grid_memory", "memory", help="Memory per experiment, e.g. 4G.")
@click.option(
    "--strategy",
    "--grid_strategy",
    "strategy",
    type=click.Choice(["grid_search", "random_search", "none"]),
    help="How hyperparameter lists expand (grid_search).",
)
@click.option(
    "--num_trials", "--grid_trials", "num_trials", type=int, help="Experiments for random_search."
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
    help="Requeue experiments lost to a crash instead of failing them.",
)
@click.option(
    "-l",
    "--localdir",
    type=click.Path(file_okay=False),
    help="Project folder to snapshot (the current directory).",
)
@click.option("--backend", default=None, help="local (default) or docker.")
@click.option("--python", "python_version", help="Python version of the environment.")
@click.option("--follow", is_flag=True, help="Stream logs; exit with the experiments' code.")
@click.option("--dry_run", is_flag=True, help="Print the experiments' commands; record nothing.")
@click.argument("script")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, **opts: object) -> None:
    """Run SCRIPT with SCRIPT_ARGS passed through untouched.

    A script argument such as --lr "[0.1, 0.01]" becomes a sweep of experiments.
    Use -- to separate script arguments that clash with grid's options.
    """
    from gridrun.cli.output import console, emit_json, warn
    from gridrun.config import load_machine_config
    from gridrun.submission import RunRequest, prepare, record

    home = home_of(ctx).ensure()
    names = list(opts["datastore_name"])  # type: ignore[arg-type]
    versions = list(opts["datastore_version"])  # type: ignore[arg-type]
    mounts = list(opts["datastore_mount_dir"])  # type: ignore[arg-type]
    datastores = [
        (n, versions[i] if i < len(versions) else None, mounts[i] if i < len(mounts) else None)
        for i, n in enumerate(names)
    ]
    backend = opts["backend"] or load_machine_config(home.config_path).default_backend
    req = RunRequest(
        script=str(opts["script"]),
        script_args=list(opts["script_args"]),  # type: ignore[arg-type]
        localdir=opts["localdir"],  # type: ignore[arg-type]
        name=opts["name"],  # type: ignore[arg-type]
        backend=str(backend),
        python=opts["python_version"],  # type: ignore[arg-type]
        cpus=opts["cpus"],  # type: ignore[arg-type]
        gpus=opts["gpus"],  # type: ignore[arg-type]
        memory=opts["memory"],  # type: ignore[arg-type]
        strategy=opts["strategy"],  # type: ignore[arg-type]
        num_trials=opts["num_trials"],  # type: ignore[arg-type]
        seed=opts["seed"],  # type: ignore[arg-type]
        datastores=datastores,
        dependency_file=opts["dependency_file"],  # type: ignore[arg-type]
        dockerfile=opts["dockerfile"],  # type: ignore[arg-type]
        base_image=opts["base_image"],  # type: ignore[arg-type]
        config=opts["config"],  # type: ignore[arg-type]
        ignore_warnings=bool(opts["ignore_warnings"]),
        auto_resume=bool(opts["auto_resume"]),
        dry_run=bool(opts["dry_run"]),
    )
    as_json = output_of(ctx) == "json"
    sub = prepare(req, home, warn, lambda q: click.confirm(q, default=False))
    if req.dry_run:
        commands = [_command_line(sub.spec["script"], e.argv) for e in sub.experiments]
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
        ds = spec["datastores"]
        console.print(
            _SUMMARY.format(
                name=run_record.name,
                script=spec["script"],
                backend=run_record.backend,
                cpus=f"{spec['cpus']:g}",
                gpus=spec["gpus"],
                memory=req.memory or "-",
                snapshot=f"{len(sub.snapshot_files)} files, {_size(sub.snapshot_bytes)}",
                n=len(sub.experiments),
                ds_name=", ".join(d["name"] for d in ds) or None,
                ds_version=", ".join(str(d["version"]) for d in ds) or None,
                ds_mount=", ".join(d["mount_dir"] for d in ds) or None,
                deps=f"{len(spec['requirements'])} from {sub.dependency_source}",
                env_key=sub.env_key,
            ),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if opts["follow"]:
        from gridrun.cli.follow import follow_run

        sys.exit(follow_run(home, run_record.name, show_build=True, prefix=None))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _command_line(script: str, argv: list[str]) -> str:
    import shlex

    interpreter = "bash" if script.endswith(".sh") else "python"
    return shlex.join([interpreter, script, *argv])


def _run_json(run: object) -> dict:
    from gridrun.cli.status import run_json

    return run_json(run)  # type: ignore[arg-type]
