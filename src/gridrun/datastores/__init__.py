"""Datastores: versioned, deduplicated, read-only data for experiments.

``grid datastore create SOURCE`` stores a folder, an archive or an http(s) archive as
the next immutable version of a datastore. Files are content-addressed (sha256) in
``GRID_HOME/datastores/.objects``, so a file present in two versions or two
datastores is stored once. That store is separate from the snapshot objects in
``GRID_HOME/objects`` on purpose: deleting a datastore version garbage-collects
objects no version links to, and it can never touch a project snapshot's file.
Each version's tree (``<name>/<N>/files``) is hard links to those objects, made
once at creation; :func:`resolve` hands that tree to the backends. See
:mod:`gridrun.datastores.layout` for the on-disk layout and status rules.

How experiments see a datastore, by backend:

* Docker: the docker backend bind-mounts ``DatastoreMount.source`` read-only at the
  mount dir (default ``/datastores/NAME``). Writes fail with EROFS, root included.
* Local: :func:`local_mount_command` runs the experiment in a private mount
  namespace (``unshare``; as root, or as any user where unprivileged user
  namespaces are allowed) with a read-only bind mount of the tree at the mount dir,
  or at ``<workdir>/datastores/NAME`` when the mount dir cannot be created. Writes
  fail with EROFS, root included; the mount vanishes with the experiment and is
  never visible on the host. ``GRID_DATASTORE_<NAME>_DIR`` gives the path.
  Where no namespace can be made (a container without CAP_SYS_ADMIN and without
  user namespaces), the experiment gets a symlink to the tree instead: files 0444
  and folders 0555 stop ordinary users, but **root could then write through it
  and change the stored data for every later run** -- gridrun says so in the docs
  because it cannot prevent it there.

An unfinished version (Ctrl-C, kill -9, an error) is ``failed``, can never be
mounted, and ``grid datastore resume --name NAME`` (or creating the same source
again) finishes it, skipping every file already stored.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridrun.datastores.create import create_datastore, resume
    from gridrun.datastores.layout import DatastoreVersion, get_version, list_datastores
    from gridrun.datastores.manage import delete_version, resolve
    from gridrun.datastores.mount import isolation_mode, local_confinement, local_mount_command
    from gridrun.datastores.names import env_var, parse_grid_uri, validate_name
    from gridrun.datastores.progress import NullProgress, Progress

# Each public name and the module that defines it, imported on first use (PEP 562):
# an experiment's supervisor on a node needs ``local_confinement`` alone, and importing
# ``create`` would pull in http.client, email and ssl for every Slurm task (~40 ms each).
_WHERE = {
    "create_datastore": "create",
    "resume": "create",
    "DatastoreVersion": "layout",
    "get_version": "layout",
    "list_datastores": "layout",
    "delete_version": "manage",
    "resolve": "manage",
    "isolation_mode": "mount",
    "local_confinement": "mount",
    "local_mount_command": "mount",
    "env_var": "names",
    "parse_grid_uri": "names",
    "validate_name": "names",
    "NullProgress": "progress",
    "Progress": "progress",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "DatastoreVersion",
    "NullProgress",
    "Progress",
    "create_datastore",
    "delete_version",
    "env_var",
    "get_version",
    "isolation_mode",
    "list_datastores",
    "local_confinement",
    "local_mount_command",
    "parse_grid_uri",
    "resolve",
    "resume",
    "validate_name",
]
