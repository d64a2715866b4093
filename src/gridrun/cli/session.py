"""``grid session``: JupyterLab (and a shell) in a run's environment, Grid's Sessions."""

from __future__ import annotations

import re
from typing import Any

import click

from gridrun.cli.common import global_option, home_of, open_store, output_of
from gridrun.errors import UsageError

_IDLE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
COLUMNS = ("Name", "Status", "Instance Type", "Duration", "URL")


def parse_idle(text: str | None) -> float | None:
    """``--idle 2h`` (s, m, h, d; bare numbers are seconds) in seconds."""
    if text is None:
        return None
    m = _IDLE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"--idle '{text}' is not a duration.", hint="Use e.g. 90s, 30m, 2h or 1d.")
    return float(m.group(1)) * _UNIT[m.group(2)]


def session_url(session: Any, with_token: bool = False, page: str = "lab") -> str:
    """Where its JupyterLab (or, with ``page="vscode/"``, its VS Code) answers, on
    loopback; '-' unless it runs."""
    from gridrun.sessions.server import base_url
    from gridrun.store.models import SessionStatus

    if session.status != SessionStatus.RUNNING or not session.port:
        return "-"
    url = f"http://127.0.0.1:{session.port}{base_url(session.name)}{page}"
    return f"{url}?token={session.token}" if with_token else url


def vscode_url(session: Any, with_token: bool = False) -> str | None:
    """VS Code's address for a session created with ``--vscode``; None otherwise."""
    from gridrun.sessions.lifecycle import wants_vscode
    from gridrun.sessions.vscode import PATH_PREFIX

    if not wants_vscode(session):
        return None
    return session_url(session, with_token, page=f"{PATH_PREFIX}/")


def print_urls(session: Any) -> None:
    """Where a running session answers, with its token: JupyterLab, and VS Code if asked."""
    from gridrun.cli.output import console

    lab = session_url(session, with_token=True)
    console.print(f"JupyterLab: {lab}", markup=False, soft_wrap=True)
    if vscode := vscode_url(session, with_token=True):
        console.print(f"VS Code: {vscode}", markup=False, soft_wrap=True)


def instance_type(session: Any) -> str:
    chosen = (session.spec.get("session") or {}).get("instance_type")
    if chosen:
        return str(chosen)
    res = session.spec.get("resources") or {}
    gpus = int(res.get("gpus") or 0)
    cpus = res.get("cpus") or 1
    return f"{cpus:g} CPU" + (f", {gpus} GPU" if gpus else "")


def sessions_table(sessions: list[Any], now: float | None = None) -> Any:
    """Grid's "Interactive Nodes" table; ``None Active.`` when there is none."""
    from gridrun.cli.output import Col, duration, span, status_text, table

    columns = [Col("Name"), Col("Status"), Col("Instance Type", "right"), Col("Duration", "right")]
    columns.append(Col("URL", "right"))
    rows: list[list[Any]] = []
    for s in sessions:
        rows.append(
            [
                s.name,
                status_text(s.status.value),
                instance_type(s),
                duration(span(s.created_at, None, now)),
                session_url(s),
            ]
        )
    if not rows:
        rows = [["None Active.", "", "", "", ""]]
    return table(columns, rows)


def session_json(s: Any) -> dict[str, Any]:
    return {
        "name": s.name,
        "status": s.status.value,
        "backend": s.backend,
        "instance_type": instance_type(s),
        "created_at": s.created_at,
        "from_run": s.from_run,
        "environment": s.env_ref,
        "url": session_url(s),
        "vscode_url": vscode_url(s),
        "idle_seconds": s.idle_seconds,
        "message": s.message,
    }


@click.group(
    invoke_without_command=True,
    short_help="Interactive sessions: JupyterLab and a shell in a run's environment.",
)
@global_option
@click.pass_context
def session(ctx: click.Context, global_: bool) -> None:
    """Interactive sessions (Grid's Interactive Nodes): JupyterLab in a run's environment.

    Without a command, lists them (`grid session list`), as Grid's `grid session` did.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_)


def session_backend(ctx: click.Context, cluster: str | None, backend: str | None) -> str | None:
    """Where a session goes: ``--cluster`` names it (`grid clusters`), else ``--backend``
    (None: local, or where the run given --from ran). Sessions run on this machine,
    as processes or in a container, so any other cluster is refused here, in one line,
    before anything is prepared."""
    if not cluster:
        return backend
    from gridrun import clusters

    target = clusters.load(home_of(ctx)).get(cluster)
    if backend and backend != target.backend:
        raise UsageError(
            f"--cluster {target.name} is a {target.backend} cluster; --backend {backend} "
            "says otherwise: give one of them."
        )
    if target.backend not in ("local", "docker"):
        raise UsageError(
            f"Sessions run on local and docker only, and --cluster {target.name} is a "
            f"{target.backend} cluster: pass --cluster local (the default) or docker, or "
            f"`grid run --cluster {target.name}` for a run there."
        )
    return target.backend


@session.command(short_help="Start a session (JupyterLab) in a project's or a run's environment.")
@click.argument("target", required=False)
@click.option("--name", help="The session's name (generated by default).")
@click.option(
    "--backend",
    default=None,
    help="Where it runs: local (processes here, the default) or docker (a container of "
    "the run's image).",
)
@click.option(
    "--cluster",
    help="A cluster from `grid clusters`; sessions run on local (the default) or docker.",
)
@click.option(
    "--base_image",
    help="docker: the base of the run's image, as `grid run --base_image` takes it.",
)
@click.option(
    "--from", "from_ref", help="A run or experiment whose environment, code and datastores to use."
)
@click.option("--cpus", type=float, help="CPUs for the session (recorded).")
@click.option("--gpus", type=int, help="GPUs the session sees (0: none).")
@click.option("--memory", help="Memory, e.g. 4G (recorded).")
@click.option(
    "--instance_type",
    "--grid_instance_type",
    "instance_type",
    help="A cloud machine type, shown as Grid showed it.",
)
@click.option("--datastore_name", multiple=True, help="Datastore to mount read-only (repeatable).")
@click.option(
    "--datastore_version", multiple=True, type=int, help="Its version (latest by default)."
)
@click.option("--datastore_mount_dir", multiple=True, help="Where it is mounted.")
@click.option(
    "--idle", help="Pause after this long with no kernel activity and no connection (2h, 30m)."
)
@click.option(
    "--vscode",
    is_flag=True,
    help="VS Code in the browser too (code-server from npm: ~800 MB, installed once).",
)
@click.option(
    "--disk_size",
    type=click.IntRange(min=1),
    help="Disk in GB (noted: the session uses this machine's disk).",
)
@click.option("--use_spot", is_flag=True, help="Refused: a session's machine is this one.")
@click.option("--config", help="Refused: give the session's settings as options.")
@click.pass_context
def create(ctx: click.Context, target: str | None, **opts: Any) -> None:
    """Create a session from SCRIPT_OR_FOLDER (default: this folder) or --from a run."""
    import time

    from gridrun.cli.output import console, err_console, note, warn
    from gridrun.sessions.lifecycle import create as create_session
    from gridrun.sessions.prepare import SessionRequest, prepare

    started = time.monotonic()
    opts["backend"] = session_backend(ctx, opts["cluster"], opts["backend"])
    if opts["use_spot"]:
        raise UsageError(
            "--use_spot: a session runs on this machine, which no one reclaims; leave it out."
        )
    if opts["config"]:
        raise UsageError(
            "--config: `grid session create` reads no Grid YAML; pass its settings as "
            "options (--instance_type, --datastore_name ...)."
        )
    if opts["disk_size"]:
        note(
            f"--disk_size {opts['disk_size']}: the session uses this machine's disk; no "
            "volume is provisioned."
        )
    names, versions, mounts = (
        list(opts["datastore_name"]),
        list(opts["datastore_version"]),
        list(opts["datastore_mount_dir"]),
    )
    req = SessionRequest(
        target=target,
        name=opts["name"],
        backend=opts["backend"],
        from_ref=opts["from_ref"],
        cpus=opts["cpus"],
        gpus=opts["gpus"],
        memory=opts["memory"],
        instance_type=opts["instance_type"],
        datastores=[
            (n, versions[i] if i < len(versions) else None, mounts[i] if i < len(mounts) else None)
            for i, n in enumerate(names)
        ],
        idle_seconds=parse_idle(opts["idle"]),
        vscode=opts["vscode"],
        base_image=opts["base_image"],
    )
    home = home_of(ctx).ensure()
    prepared = prepare(req, home, warn, lambda _q: True)
    store = open_store(ctx)

    def log(line: str) -> None:
        err_console.print(line, style="dim", highlight=False, markup=False)

    s = create_session(store, home, req, prepared, log)
    if output_of(ctx) == "json":
        from gridrun.cli.output import emit_json

        urls = {"url": session_url(s, with_token=True), "vscode_url": vscode_url(s, True)}
        emit_json({**session_json(s), **urls})
        return
    console.print(f"Session {s.name} is running ({time.monotonic() - started:.1f}s).", markup=False)
    print_urls(s)
    console.print(f"Shell: grid session ssh {s.name}", markup=False)


@session.command(name="list", short_help="List sessions.")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """List live sessions (Grid's Interactive Nodes)."""
    from gridrun.cli.output import console, emit_json
    from gridrun.sessions.reconcile import reconcile

    store = open_store(ctx)
    sessions = reconcile(store, home_of(ctx).root)
    if output_of(ctx) == "json":
        emit_json([session_json(s) for s in sessions])
        return
    console.print(sessions_table(sessions))


@session.command(short_help="Stop a session's processes; keep its files and environment.")
@click.argument("name")
@click.pass_context
def pause(ctx: click.Context, name: str) -> None:
    from gridrun.cli.output import console
    from gridrun.sessions.lifecycle import pause as pause_session

    s = pause_session(open_store(ctx), home_of(ctx), name)
    console.print(f"Session {s.name} is {s.status.value}.", markup=False)


@session.command(short_help="Start a paused session again.")
@click.argument("name")
@click.pass_context
def resume(ctx: click.Context, name: str) -> None:
    from gridrun.cli.output import console, err_console
    from gridrun.sessions.lifecycle import resume as resume_session

    def log(line: str) -> None:
        err_console.print(line, highlight=False, markup=False)

    s = resume_session(open_store(ctx), home_of(ctx), name, log)
    console.print(f"Session {s.name} is {s.status.value}.", markup=False)
    print_urls(s)


@session.command(short_help="Stop a session and remove its working copy.")
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    from gridrun.cli.output import console
    from gridrun.sessions.lifecycle import delete as delete_session

    delete_session(open_store(ctx), home_of(ctx), name)
    console.print(f"Session {name} deleted.", markup=False)


@session.command(
    short_help="A shell, or a command, in a session's working copy and environment.",
    context_settings={"ignore_unknown_options": True},
)
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ssh(ctx: click.Context, name: str, command: tuple[str, ...]) -> None:
    """No sshd: on the local backend a direct exec, on docker a ``docker exec`` in the
    session's container; either way in its working copy, its environment first on
    PATH, confined as its JupyterLab is."""
    from gridrun.sessions.shell import run_in_session

    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if argv and argv[0].startswith("-"):  # Grid's SSH_ARGS: options for its ssh client
        raise UsageError(
            f"`grid session ssh {name}` runs a shell or a command on this machine, without "
            f"ssh, so ssh options ({argv[0]} ...) mean nothing: give a command, or none."
        )
    code = run_in_session(open_store(ctx, read_only=True), home_of(ctx), name, argv)
    ctx.exit(code)


@session.command(
    "change-instance-type", short_help="Refused: delete and create it with --instance_type."
)
@click.argument("name")
@click.argument("instance_type")
@click.option("--spot", is_flag=True, help="Refused with the command.")
@click.option("--on_demand", "--on-demand", "on_demand", is_flag=True, help="Refused likewise.")
def change_instance_type(name: str, instance_type: str, spot: bool, on_demand: bool) -> None:
    """A session's instance type only sizes it on this machine; there is no other
    machine to move it to."""
    raise UsageError(
        f"A session's instance type only sizes it on this machine: `grid session delete "
        f"{name}`, then `grid session create --instance_type {instance_type}`."
    )


@session.command(short_help="Refused: a session's files are on this machine already.")
@click.argument("name", metavar="SESSION")
@click.argument("mount_dir")
@click.pass_context
def mount(ctx: click.Context, name: str, mount_dir: str) -> None:
    """Grid mounted a remote session's files with sshfs; gridrun's are local."""
    from gridrun.sessions.server import Layout
    from gridrun.store import sessions as table

    session_name = name.split(":")[0]  # Grid's NODE:DIR
    if table.find(open_store(ctx, read_only=True), session_name) is None:
        raise UsageError(
            f"Sessions run on this machine, so there is nothing to mount, and there is no "
            f"session named '{session_name}' (`grid session list`)."
        )
    work = Layout.of(home_of(ctx), session_name).work
    raise UsageError(
        f"Sessions run on this machine, so there is nothing to mount: {session_name}'s "
        f"files are at {work} (`ln -s {work} {mount_dir}` puts them at {mount_dir})."
    )
