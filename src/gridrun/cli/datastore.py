"""``grid datastore``: create, list, verify, delete and resume versioned datastores."""

from __future__ import annotations

from typing import Any

import click

from gridrun.cli.common import cluster_named, global_option, home_of, open_store, output_of


def _human(size: int | None) -> str:
    if size is None:
        return "-"
    from rich.filesize import decimal

    return decimal(size)


class _RichProgress:
    """Bytes and files while downloading, hashing and storing, on stderr."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        from gridrun.cli.output import err_console

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[files]}"),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        )
        self.task: Any = None
        self.files_done = 0
        self.files_total: int | None = None

    def __enter__(self) -> _RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def _files(self) -> str:
        if self.files_total is None:
            return ""
        return f"{self.files_done}/{self.files_total} files"

    def phase(self, description: str, total_bytes: int | None, total_files: int | None) -> None:
        self.files_done, self.files_total = 0, total_files
        self.task = self.bar.add_task(description, total=total_bytes, files=self._files())

    def advance(self, nbytes: int = 0, nfiles: int = 0) -> None:
        if self.task is None:
            return
        self.files_done += nfiles
        self.bar.update(self.task, advance=nbytes, files=self._files())


def _version_json(v: Any) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "size": v.size,
        "files": v.files,
        "status": v.status,
        "created_at": v.created_at,
        "source": v.source,
        "error": v.error,
    }


def _list(ctx: click.Context) -> None:
    from gridrun.cli.output import console, emit_json, status_text, table, when
    from gridrun.datastores import list_datastores
    from gridrun.datastores.layout import SUCCEEDED, load_version
    from gridrun.datastores.verify import quick_check

    versions = list_datastores(home_of(ctx))
    # A version altered since its completion lists as tampered (one lstat per file).
    versions = [
        (load_version(v.path) or v) if v.status == SUCCEEDED and quick_check(v.path) else v
        for v in versions
    ]
    if output_of(ctx) == "json":
        emit_json([_version_json(v) for v in versions])
        return
    if not versions:
        console.print("No datastores yet. Create one with `grid datastore create SOURCE`.")
        return
    rows = [
        (
            v.name,
            v.version,
            _human(v.size),
            "-" if v.files is None else v.files,
            status_text(v.status),
            when(v.created_at),
        )
        for v in versions
    ]
    console.print(table(["Name", "Version", "Size", "Files", "Status", "Created"], rows))
    for v in versions:
        if v.status == "failed":
            console.print(
                f"[red]{v.name} v{v.version}[/red]: {v.error} "
                f"(`grid datastore resume --name {v.name}` finishes it)",
                soft_wrap=True,
            )
        elif v.status == "tampered":
            console.print(
                f"[red]{v.name} v{v.version}[/red]: {v.error} (`grid datastore verify "
                f"{v.name} --version {v.version}` lists every change)",
                soft_wrap=True,
                markup=True,
                highlight=False,
            )


#: Grid's ``--cluster`` on datastore commands: datastores are kept once, in GRID_HOME,
#: for every cluster, so the name is checked and selects nothing.
_CLUSTER_HELP = "Accepted, as Grid's: datastores live in GRID_HOME, one set for every cluster."


@click.group(invoke_without_command=True)
@global_option
@click.option("--cluster", help=_CLUSTER_HELP)
@click.option(
    "--show-incomplete",
    "show_incomplete",
    is_flag=True,
    help="Accepted, as Grid's: interrupted versions are always listed (failed).",
)
@click.pass_context
def datastore(
    ctx: click.Context, global_: bool, cluster: str | None, show_incomplete: bool
) -> None:
    """Versioned, deduplicated, read-only data to mount into experiments."""
    cluster_named(ctx, cluster)
    if ctx.invoked_subcommand is None:
        _list(ctx)


@datastore.command("list")
@click.pass_context
def list_cmd(ctx: click.Context) -> None:
    """List every version of every datastore."""
    _list(ctx)


def _report(ctx: click.Context, v: Any, verb: str) -> None:
    from gridrun.cli.output import console, emit_json

    if output_of(ctx) == "json":
        emit_json(_version_json(v))
    else:
        console.print(
            f"Datastore [bold]{v.name}[/bold] version {v.version} {verb}: {v.files} files, "
            f"{_human(v.size)}. Mount it with `grid run --datastore_name {v.name} "
            f"--datastore_version {v.version} ...`.",
            soft_wrap=True,
        )


@datastore.command("create")
@click.argument("source", required=False)
@click.option("--source", "source_opt", help="Same as SOURCE (the 2021 spelling).")
@click.option("--name", help="Datastore name (default: from SOURCE).")
@click.option("--cluster", help=_CLUSTER_HELP)
@click.pass_context
def create_cmd(
    ctx: click.Context,
    source: str | None,
    source_opt: str | None,
    name: str | None,
    cluster: str | None,
) -> None:
    """Create a new version from a folder, a .zip/.tar/.tar.gz archive or an http(s) URL."""
    from gridrun.datastores import create_datastore

    cluster_named(ctx, cluster)
    src = source or source_opt
    if not src:
        raise click.UsageError("Missing SOURCE (a folder, an archive or an http(s) URL).")
    with _RichProgress() as progress:
        v = create_datastore(home_of(ctx), src, name=name, progress=progress)
    _report(ctx, v, "created")


@datastore.command("resume")
@click.option(
    "--name", help="Datastore whose unfinished version to finish (default: the only one)."
)
@click.option("--version", "version", type=int, help="Version (default: the latest unfinished).")
@click.pass_context
def resume_cmd(ctx: click.Context, name: str | None, version: int | None) -> None:
    """Finish a version whose creation was interrupted (Grid's plain `resume` too)."""
    from gridrun.datastores import resume

    if name is None:
        name = _only_interrupted(ctx)
    with _RichProgress() as progress:
        v = resume(home_of(ctx), name, version, progress=progress)
    _report(ctx, v, "completed")


def _only_interrupted(ctx: click.Context) -> str:
    """The datastore a plain ``grid datastore resume`` finishes: the one interrupted."""
    from gridrun.datastores import list_datastores
    from gridrun.datastores.layout import FAILED, PROCESSING
    from gridrun.errors import UsageError

    names = sorted(
        {v.name for v in list_datastores(home_of(ctx)) if v.status in (FAILED, PROCESSING)}
    )
    if len(names) == 1:
        return names[0]
    if not names:
        raise UsageError("No datastore creation was interrupted: there is nothing to resume.")
    raise UsageError(f"Several datastores were interrupted ({', '.join(names)}): pass --name NAME.")


@datastore.command("clearcache")
@click.pass_context
def clearcache_cmd(ctx: click.Context) -> None:
    """Delete what interrupted creates left (their failed versions); resume can't after."""
    from gridrun.cli.output import console, emit_json
    from gridrun.datastores.manage import clear_cache

    store = open_store(ctx)
    try:
        removed = clear_cache(home_of(ctx), store)
    finally:
        store.close()
    if output_of(ctx) == "json":
        emit_json({"removed": [{"name": n, "version": v} for n, v in removed]})
    elif removed:
        names = ", ".join(f"{n} version {v}" for n, v in removed)
        console.print(f"Cleared {len(removed)} interrupted datastore version(s): {names}.")
    else:
        console.print("Nothing to clear: no datastore creation was interrupted.")


@datastore.command("verify")
@click.argument("name")
@click.option("--version", "version", type=int, help="Version to check (default: every one).")
@click.pass_context
def verify_cmd(ctx: click.Context, name: str, version: int | None) -> None:
    """Re-hash every file of a datastore and report anything altered since it was made.

    Exits 1 when a version was tampered with; such a version can no longer be mounted.
    """
    from gridrun.cli.output import console, emit_json
    from gridrun.datastores import get_version, list_datastores, validate_name
    from gridrun.datastores.layout import SUCCEEDED, TAMPERED
    from gridrun.datastores.verify import MAX_LISTED, verify
    from gridrun.errors import DatastoreError

    home = home_of(ctx)
    validate_name(name)
    targets = list_datastores(home, name)
    if version is not None or not targets:
        targets = [get_version(home, name, version)]  # a one-line error if there is none
    checked = [v for v in targets if v.status in (SUCCEEDED, TAMPERED)]
    if not checked:
        raise DatastoreError(
            f"Datastore '{name}' has no completed version to verify.",
            hint="`grid datastore list` shows its versions.",
        )
    report = {v.version: verify(v.path) for v in checked}
    if output_of(ctx) == "json":
        emit_json(
            [
                {"name": name, "version": n, "intact": not p, "problems": p}
                for n, p in report.items()
            ]
        )
    else:
        for n, problems in report.items():
            if not problems:
                console.print(f"{name} v{n}: intact (every file matches its sha256).")
                continue
            console.print(
                f"[red]{name} v{n}: TAMPERED[/red], {len(problems)} change(s):", highlight=False
            )
            for p in problems[:MAX_LISTED]:
                console.print(f"  {p}", markup=False, highlight=False)
            if len(problems) > MAX_LISTED:
                console.print(f"  ...and {len(problems) - MAX_LISTED} more", markup=False)
    if any(report.values()):
        ctx.exit(1)


@datastore.command("delete")
@click.option("--name", required=True, help="Datastore name.")
@click.option("--version", "version", type=int, required=True, help="Version to delete.")
@click.option("--cluster", help=_CLUSTER_HELP)
@click.pass_context
def delete_cmd(ctx: click.Context, name: str, version: int, cluster: str | None) -> None:
    """Delete one version (refused while an active run uses it)."""
    from gridrun.cli.output import console, emit_json
    from gridrun.datastores import delete_version

    cluster_named(ctx, cluster)
    store = open_store(ctx)
    try:
        count, freed = delete_version(home_of(ctx), store, name, version)
    finally:
        store.close()
    if output_of(ctx) == "json":
        emit_json({"name": name, "version": version, "objects_freed": count, "bytes_freed": freed})
    else:
        console.print(
            f"Deleted datastore {name} version {version} "
            f"({count} unshared files, {_human(freed)} freed)."
        )
