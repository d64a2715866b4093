"""Resolving a datastore for a run, and deleting versions safely."""

from __future__ import annotations

import os
import posixpath
import uuid

from gridrun.backends.base import DatastoreMount
from gridrun.datastores import layout, objects
from gridrun.datastores.layout import FAILED, PROCESSING, TAMPERED
from gridrun.datastores.names import validate_name
from gridrun.errors import DatastoreError, UsageError
from gridrun.home import GridHome
from gridrun.store.db import Store


def default_mount_dir(name: str) -> str:
    return f"/datastores/{name}"


def resolve(
    home: GridHome, name: str, version: int | None, mount_dir: str | None
) -> DatastoreMount:
    """The mount of a usable version; a one-line error at submission otherwise.

    ``version=None`` is the latest succeeded version. ``DatastoreMount.source`` is the
    version's materialised tree (hard links to the objects, folders 0555), shared by
    every experiment that mounts it: nothing is copied per experiment.
    """
    validate_name(name)
    v = layout.get_version(home, name, version)
    if v.status == PROCESSING:
        raise DatastoreError(
            f"Datastore {name} version {v.version} is still being created.",
            hint="Wait for `grid datastore list` to show it succeeded, or pin an older "
            "--datastore_version.",
        )
    if v.status == FAILED:
        raise DatastoreError(
            f"Datastore {name} version {v.version} failed to be created ({v.error}).",
            hint=f"`grid datastore resume --name {name}` finishes it.",
        )
    if not v.tree.is_dir():
        raise DatastoreError(f"Datastore {name} version {v.version} has no files at {v.tree}.")
    from gridrun.datastores.verify import quick_check

    if v.status == TAMPERED or quick_check(v.path):
        v = layout.load_version(v.path) or v
        raise DatastoreError(
            f"Datastore {name} version {v.version} was {v.error or 'altered since it was created'}"
            "; refusing to mount it.",
            hint=f"`grid datastore verify {name} --version {v.version}` lists the changes; "
            "delete the version and create it again from its source.",
        )
    return DatastoreMount(name, v.version, v.tree, normalize_mount_dir(mount_dir, name))


def normalize_mount_dir(mount_dir: str | None, name: str) -> str:
    """A clean mount dir: absolute, or relative to the experiment's working directory."""
    if not mount_dir:
        return default_mount_dir(name)
    if "\x00" in mount_dir:
        raise UsageError("--datastore_mount_dir contains a NUL byte.")
    clean = posixpath.normpath(mount_dir)
    if clean in ("/", ".", "..") or clean.startswith("../"):
        raise UsageError(
            f"--datastore_mount_dir '{mount_dir}' cannot be used: it would hide the root "
            "or the working directory itself.",
            hint=f"Use a dedicated folder such as {default_mount_dir(name)}.",
        )
    return clean


def users_of(store: Store, name: str, version: int) -> list[str]:
    """Names of the active runs whose experiments mount this version."""
    users = []
    for run in store.list_runs():
        for d in run.spec.datastores:
            if d.name == name and d.version == version and run.derived_status().active:
                users.append(run.name)
                break
    return users


def delete_version(home: GridHome, store: Store, name: str, version: int) -> tuple[int, int]:
    """Delete one version, then every object no version links to; return (objects, bytes)
    freed. Refused while an active run uses the version or while it is being created."""
    v = layout.get_version(home, validate_name(name), version)
    if v.status == PROCESSING:
        raise DatastoreError(
            f"Datastore {name} version {version} is being created (pid {v.pid}).",
            hint="Wait for it, or stop that process first.",
        )
    users = users_of(store, name, version)
    if users:
        raise DatastoreError(
            f"Datastore {name} version {version} is used by active run(s): {', '.join(users)}.",
            hint="Wait for them to finish, or `grid stop` them first.",
        )
    trash = layout.root(home) / ".trash"
    trash.mkdir(exist_ok=True)
    with layout.creator_lock(v.path, wait=0.5):
        # One rename makes the version vanish at once; the slow removal happens after.
        gone = trash / f"{name}.{version}.{uuid.uuid4().hex[:8]}"
        os.replace(v.path, gone)
    for leftover in trash.iterdir():  # includes any removal cut short earlier
        layout.remove_tree(leftover)
    try:
        v.path.parent.rmdir()  # the name goes with its last version
    except OSError:
        pass
    return objects.collect_garbage(layout.objects_dir(home))


def clear_cache(home: GridHome, store: Store) -> list[tuple[str, int]]:
    """Grid's ``datastore clearcache``: delete every failed (interrupted) version.

    What an interrupted ``create`` left (its partial tree and the objects only it
    linked) is freed; ``resume`` cannot finish those afterwards, as in Grid. Complete
    versions and ones being created are kept. Returns the (name, version) removed.
    """
    from gridrun.datastores.layout import FAILED

    removed = []
    for v in layout.list_datastores(home):
        if v.status == FAILED:
            delete_version(home, store, v.name, v.version)
            removed.append((v.name, v.version))
    return removed
