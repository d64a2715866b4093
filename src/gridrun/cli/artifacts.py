"""``grid artifacts RUN|EXPERIMENT``: copy saved artifacts into per-experiment folders.

Symlinks in the artifacts store are never followed: an experiment that planted
``shadow -> /etc/shadow`` in its folder must not get the host's file copied out by a
user (or root) who downloads its artifacts. A link is recreated as a link when it
points inside the experiment's own folder, and skipped with a warning otherwise; files
are opened with ``O_NOFOLLOW`` and copied only if they are regular files.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
from pathlib import Path

import click

from gridrun.cli.common import find_target, home_of, open_store, output_of
from gridrun.errors import UsageError


@click.command(short_help="Download the files experiments created.")
@click.argument("name")
@click.option(
    "--download_dir",
    "--download-dir",
    "download_dir",
    default="./grid_artifacts",
    show_default=True,
    help="Where to copy them.",
)
@click.option(
    "-m",
    "--match_regex",
    "--match-regex",
    "match",
    default=None,
    help="Only artifacts whose path matches this regular expression.",
)
@click.pass_context
def artifacts(ctx: click.Context, name: str, download_dir: str, match: str | None) -> None:
    """Copy the artifacts of a run's experiments (or one experiment) to DOWNLOAD_DIR/<exp>/."""
    from gridrun.cli.output import console, emit_json, warn

    try:
        pattern = re.compile(match) if match else None
    except re.error as exc:
        raise UsageError(f"Invalid --match_regex '{match}': {exc}.") from None
    home = home_of(ctx)
    store = open_store(ctx, read_only=True)
    _run, exps = find_target(store, name)
    dest_root = Path(download_dir)
    copied: dict[str, list[str]] = {}
    skipped: list[str] = []
    for e in exps:
        src = home.experiment(e.name).artifacts
        files: list[str] = []
        if src.is_dir() and not src.is_symlink():
            for dirpath, dirs, filenames in os.walk(src):  # never enters a linked folder
                for fn in sorted(filenames) + sorted(d for d in dirs if _is_link(dirpath, d)):
                    rel = (Path(dirpath) / fn).relative_to(src).as_posix()
                    if pattern and not pattern.search(rel):
                        continue
                    if _copy_one(Path(dirpath) / fn, dest_root / e.name / rel, rel):
                        files.append(rel)
                    else:
                        skipped.append(f"{e.name}/{rel}")
        copied[e.name] = sorted(files)
    for s in skipped:
        warn(f"{s}: a symlink pointing outside the experiment's artifacts; not copied.")
    if output_of(ctx) == "json":
        emit_json(
            {
                exp: [str((dest_root / exp / f).absolute()) for f in files]
                for exp, files in copied.items()
            }
        )
        return
    total = sum(len(f) for f in copied.values())
    for exp, files in copied.items():
        for f in files:
            console.print(f"{exp}/{f}", markup=False)
    console.print(f"Copied {total} artifact(s) to {dest_root.absolute()}.", markup=False)


def _is_link(dirpath: str, name: str) -> bool:
    return os.path.islink(os.path.join(dirpath, name))


def _copy_one(src: Path, target: Path, rel: str) -> bool:
    """Copy one entry of the artifacts store without following it; False if skipped."""
    st = os.lstat(src)
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(target) and not target.is_dir():
        target.unlink()
    if stat.S_ISLNK(st.st_mode):
        link = os.readlink(src)
        inside = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
        if link.startswith("/") or inside == ".." or inside.startswith("../"):
            return False
        os.symlink(link, target)
        return True
    if not stat.S_ISREG(st.st_mode):
        return False
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        with open(fd, "rb", closefd=False) as fin, open(target, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.chmod(target, 0o644 | (0o111 if st.st_mode & 0o100 else 0))
    finally:
        os.close(fd)
    return True
