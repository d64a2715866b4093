"""Creating (and finishing) a datastore version.

A version goes through: allocate ``<name>/<N>`` (``mkdir`` is the atomic claim of the
number), take its lock, write ``state.json``, then fetch / scan / store / write the
tree, and only at the very end ``manifest.json`` and ``COMPLETE``. Whatever stops it
before that (an error, Ctrl-C, ``kill -9``) leaves a version without COMPLETE whose
lock nobody holds: it lists as ``failed``, :func:`resolve` refuses it, and a resume
(or a new create of the same source under the same name) takes it up again. The
journal lets that resume skip every file already stored.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from gridrun.datastores import layout, objects, sources
from gridrun.datastores.download import DownloadRefused, download
from gridrun.datastores.layout import FAILED, PROCESSING, SUCCEEDED, TAMPERED, DatastoreVersion
from gridrun.datastores.names import derive_name, validate_name
from gridrun.datastores.progress import NullProgress, Progress
from gridrun.errors import DatastoreError
from gridrun.home import GridHome


class _Discarded(DatastoreError):
    """The source was refused after the version folder existed: it has been removed."""


def classify(home: GridHome, source: str) -> dict[str, Any]:
    """What kind of source this is, as recorded in ``state.json``."""
    if source.startswith(("http://", "https://")):
        return {"kind": "url", "url": source, "display": source}
    if "://" in source:
        raise DatastoreError(
            f"Unsupported source '{source}': only local folders, archives and http(s) URLs.",
        )
    path = Path(source).expanduser().absolute()
    if path.is_dir():
        path = path.resolve()
        store = layout.root(home).resolve()
        if store == path or path in store.parents:
            raise DatastoreError(f"The folder {path} contains GRID_HOME's datastores.")
        return {"kind": "folder", "path": str(path), "display": str(path)}
    if path.is_file():
        kind = sources.archive_kind(path)
        if kind is None:
            raise DatastoreError(
                f"{path} is not a folder or a .zip/.tar/.tar.gz archive.",
                hint="Pass a folder, an archive or an http(s) URL to one.",
            )
        st = path.stat()
        return {
            "kind": "archive",
            "path": str(path.resolve()),
            "display": str(path),
            "format": kind,
            "fingerprint": f"{st.st_size}:{st.st_mtime_ns}",
        }
    raise DatastoreError(f"Source '{source}' does not exist.")


def _same_source(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("kind") == b.get("kind") and a.get("path", a.get("url")) == b.get(
        "path", b.get("url")
    )


def create_datastore(
    home: GridHome,
    source: str | Path,
    name: str | None = None,
    progress: Progress | None = None,
) -> DatastoreVersion:
    """Create the next version of a datastore from a folder, an archive or a URL."""
    progress = progress or NullProgress()
    home.ensure()
    src = classify(home, str(source))
    name = validate_name(name) if name else derive_name(str(source))
    # Local sources are validated before anything is written.
    entries = None
    if src["kind"] == "folder":
        entries = sources.scan_folder(Path(src["path"]))
    elif src["kind"] == "archive":
        entries = sources.scan_archive(Path(src["path"]), src["format"])
    existing = layout.list_datastores(home, name)
    if existing and existing[-1].status == FAILED:
        state = layout.read_json(existing[-1].path / "state.json") or {}
        if _same_source(state.get("source", {}), src):
            return resume(home, name, existing[-1].version, progress=progress)
    vdir = _allocate(home, name)
    with layout.creator_lock(vdir):
        state = {
            "name": name,
            "version": int(vdir.name),
            "created_at": time.time(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "source": src,
            "files": None,
            "bytes": None,
            "error": None,
        }
        layout.write_state(vdir, state)
        return _build(home, vdir, state, progress, entries)


def resume(
    home: GridHome, name: str, version: int | None = None, progress: Progress | None = None
) -> DatastoreVersion:
    """Finish an interrupted (failed) version: the latest one, or ``version``."""
    progress = progress or NullProgress()
    versions = layout.list_datastores(home, validate_name(name))
    if version is not None:
        target = layout.get_version(home, name, version)
    else:
        unfinished = [v for v in versions if v.status in (FAILED, PROCESSING)]
        if not versions:
            layout.get_version(home, name, None)  # raises the NotFoundError listing names
        if not unfinished:
            raise DatastoreError(
                f"Nothing to resume: every version of '{name}' is complete.",
            )
        target = unfinished[-1]
    if target.status == TAMPERED:
        raise DatastoreError(
            f"Datastore {name} version {target.version} was altered after it was created.",
            hint=f"Delete it (`grid datastore delete --name {name} --version "
            f"{target.version}`) and create it again from its source.",
        )
    if target.status == SUCCEEDED:
        raise DatastoreError(f"Datastore {name} version {target.version} is already complete.")
    if target.status == PROCESSING:
        raise DatastoreError(
            f"Datastore {name} version {target.version} is still being created (pid {target.pid}).",
            hint="Wait for it; `grid datastore list` shows its status.",
        )
    with layout.creator_lock(target.path):
        state = layout.read_json(target.path / "state.json") or {}
        state.update(pid=os.getpid(), host=socket.gethostname(), error=None)
        layout.write_state(target.path, state)
        return _build(home, target.path, state, progress, None)


def _allocate(home: GridHome, name: str) -> Path:
    ndir = layout.root(home) / name
    ndir.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name) for p in ndir.iterdir() if p.name.isdigit()]
    n = max(numbers, default=0) + 1
    while True:
        try:
            (ndir / str(n)).mkdir()
            return ndir / str(n)
        except FileExistsError:
            n += 1  # a concurrent create took this number


def _build(
    home: GridHome,
    vdir: Path,
    state: dict[str, Any],
    progress: Progress,
    entries: list[sources.Entry] | None,
) -> DatastoreVersion:
    src = state["source"]
    try:
        reader, entries = _open_source(vdir, src, progress, entries)
        files = [e for e in entries if e.kind == "file"]
        state.update(files=len(files), bytes=sum(e.size for e in files))
        layout.write_state(vdir, state)
        manifest = _store(home, vdir, src, entries, reader, progress)
        _finish(vdir, state, manifest)
    except _Discarded:
        raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            state["error"] = "interrupted (Ctrl-C)"
        elif isinstance(exc, DatastoreError):
            state["error"] = exc.message
        elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            state["error"] = os.strerror(exc.errno)
            # The partial file being stored goes first: it makes room for state.json,
            # and the objects already stored stay for the resume.
            layout.remove_tree(vdir / "tmp")
            (vdir / "download.part").unlink(missing_ok=True)
        else:
            state["error"] = f"{type(exc).__name__}: {exc}"
        try:
            layout.write_state(vdir, state)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            name = state["name"]
            raise DatastoreError(
                f"No space left on device while storing datastore {name} in {vdir.parent}.",
                hint="Free some space (`grid datastore delete`, `grid delete run NAME`), then "
                f"`grid datastore resume --name {name}` finishes it without re-reading "
                "what was stored.",
            ) from exc
        raise
    loaded = layout.load_version(vdir)
    assert loaded is not None
    return loaded


Reader = Iterator[tuple[sources.Entry, IO[bytes]]]


def _open_source(
    vdir: Path, src: dict[str, Any], progress: Progress, entries: list[sources.Entry] | None
) -> tuple[Any, list[sources.Entry]]:
    """The validated entries and a function streaming the files still to read."""
    kind = src["kind"]
    if kind == "folder":
        root = Path(src["path"])
        if not root.is_dir():
            raise DatastoreError(f"The source folder {root} no longer exists.")
        entries = entries if entries is not None else sources.scan_folder(root)
        return sources.read_folder, entries
    if kind == "url":
        try:
            archive = download(src["url"], vdir / "download", progress)
            fmt = sources.archive_kind(archive)
            if fmt is None:
                raise sources.Refused(
                    f"{src['url']} is not a .zip/.tar/.tar.gz archive; nothing was kept.",
                )
            entries = sources.scan_archive(archive, fmt)
        except (DownloadRefused, sources.Refused) as exc:
            # Refused content: leave nothing behind, as for a refused local archive.
            layout.remove_tree(vdir)
            try:
                vdir.parent.rmdir()
            except OSError:
                pass
            raise _Discarded(exc.message, exc.hint) from exc
    else:
        archive = Path(src["path"])
        if not archive.is_file():
            raise DatastoreError(f"The source archive {archive} no longer exists.")
        fmt = src["format"]
        if entries is None:
            st = archive.stat()
            if f"{st.st_size}:{st.st_mtime_ns}" != src.get("fingerprint"):
                (vdir / "journal.jsonl").unlink(missing_ok=True)  # another archive now
            entries = sources.scan_archive(archive, fmt)
    return (lambda todo: sources.read_archive(archive, fmt, todo)), entries


def _known(home: GridHome, vdir: Path, src: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """path -> (key, sha) of files stored before: by this version's journal and, for a
    folder, by the previous complete version of the same folder (rsync's quick check:
    size, mtime and inode unchanged means content unchanged)."""
    known: dict[str, tuple[str, str]] = {}
    if src["kind"] == "folder":
        name, number = vdir.parent.name, int(vdir.name)
        for v in reversed(layout.list_datastores(home, name)):
            if v.version >= number or v.status != SUCCEEDED:
                continue
            manifest = layout.read_json(v.path / "manifest.json") or {}
            if manifest.get("source", {}).get("path") != src["path"]:
                continue
            for e in manifest.get("entries", []):
                if e.get("type") == "file" and e.get("key"):
                    known[e["path"]] = (e["key"], e["sha256"])
            break
    journal = vdir / "journal.jsonl"
    if journal.exists():
        for line in journal.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                known[rec["p"]] = (rec["k"], rec["h"])
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by kill -9
    return known


def _store(
    home: GridHome,
    vdir: Path,
    src: dict[str, Any],
    entries: list[sources.Entry],
    reader: Any,
    progress: Progress,
) -> dict[str, Any]:
    objs = layout.objects_dir(home)
    tree, tmpd = vdir / "files", vdir / "tmp"
    layout.remove_tree(tree)
    layout.remove_tree(tmpd)
    for d in (tree, tmpd, objs):
        d.mkdir(parents=True, exist_ok=True)
    known = _known(home, vdir, src)
    files = [e for e in entries if e.kind == "file"]
    direct = [e for e in files if e.same_as is None]
    progress.phase("Storing files", sum(e.size for e in direct), len(files))
    for e in entries:
        if e.kind == "dir":
            (tree / e.path).mkdir(parents=True, exist_ok=True)
    shas: dict[str, str] = {}
    sizes: dict[str, int] = {}
    todo = []
    with open(vdir / "journal.jsonl", "a", encoding="utf-8") as journal:

        def record(e: sources.Entry, sha: str, size: int) -> None:
            shas[e.path], sizes[e.path] = sha, size
            journal.write(json.dumps({"p": e.path, "k": e.key, "h": sha}) + "\n")
            journal.flush()

        for e in direct:
            dest = tree / e.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            hit = known.get(e.path)
            if hit and e.key and hit[0] == e.key and objects.link_existing(objs, hit[1], dest):
                record(e, hit[1], e.size)
                progress.advance(e.size, 1)
            else:
                todo.append(e)
        for n, (e, stream) in enumerate(reader(todo)):
            tmp = tmpd / str(n)
            sha, size = objects.write_temp(stream, tmp, progress.advance)
            objects.publish(objs, tmp, sha, tree / e.path)
            record(e, sha, size)
            progress.advance(0, 1)
    by_path = {e.path: e for e in files}
    for e in files:
        if e.same_as is not None:
            origin = e.same_as
            for _hop in range(sources.MAX_LINK_HOPS):  # a hard link to a hard link
                if origin in shas:
                    break
                origin = by_path[origin].same_as or origin
            if origin not in shas:
                raise DatastoreError(f"Hard link '{e.path}' has no stored origin.")
            shas[e.path], sizes[e.path] = shas[origin], sizes[origin]
            dest = tree / e.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not objects.link_existing(objs, shas[e.path], dest):
                objects.publish(objs, _copy_of(tree / origin, tmpd), shas[e.path], dest)
            progress.advance(0, 1)
    for e in entries:
        if e.kind == "link":
            dest = tree / e.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(e.target or "", dest)
    out: list[dict[str, Any]] = []
    for e in sorted(entries, key=lambda x: x.path):
        if e.kind == "file":
            item = {"path": e.path, "type": "file", "sha256": shas[e.path], "size": sizes[e.path]}
            # What `grid datastore list` compares to find a file altered after completion.
            item["mtime_ns"] = (tree / e.path).lstat().st_mtime_ns
            if e.key and src["kind"] == "folder":
                item["key"] = e.key
            out.append(item)
        elif e.kind == "dir":
            out.append({"path": e.path, "type": "dir"})
        else:
            out.append({"path": e.path, "type": "link", "target": e.target})
    return {
        "source": src,
        "files": len(files),
        "bytes": sum(sizes.values()),
        "entries": out,
    }


def _copy_of(path: Path, tmpd: Path) -> Path:
    tmp = tmpd / f"copy-{path.name}"
    with open(path, "rb") as fh:
        objects.write_temp(fh, tmp)
    return tmp


def _finish(vdir: Path, state: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Make the tree read-only, write the manifest, then (last) the completion marker."""
    tree = vdir / "files"
    for dirpath, _dirs, _files in os.walk(tree):
        os.chmod(dirpath, 0o555)
    layout.remove_tree(vdir / "tmp")
    (vdir / "download").unlink(missing_ok=True)
    now = time.time()
    manifest = {
        "format": 1,
        "name": state["name"],
        "version": state["version"],
        "created_at": state["created_at"],
        "completed_at": now,
        **manifest,
    }
    layout.atomic_write(vdir / "manifest.json", json.dumps(manifest, indent=1))
    state.update(files=manifest["files"], bytes=manifest["bytes"], error=None)
    layout.write_state(vdir, state)
    summary = {"files": manifest["files"], "bytes": manifest["bytes"], "completed_at": now}
    layout.atomic_write(vdir / "COMPLETE", json.dumps(summary))
    (vdir / "journal.jsonl").unlink(missing_ok=True)
