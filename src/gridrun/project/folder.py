"""Which folders may be a project: never the whole machine, a system folder or GRID_HOME.

A snapshot walks every file under the project folder. ``/`` (or ``/proc``, ``/usr``)
would scan the whole machine for minutes before any warning; a folder inside
``GRID_HOME`` would copy ``grid.db``, every run's recorded environment and other runs'
files into an experiment, which is how an experiment could read past its confinement
by submitting a run through the dashboard. Both are refused before anything is read,
the same for ``grid run --localdir`` and the dashboard's new-run form.
"""

from __future__ import annotations

import os
from pathlib import Path

from gridrun.errors import ProjectError

# Folders that are the operating system's, never a project: refused themselves, and
# anything below the pseudo file systems (whose files are not files).
SYSTEM_FOLDERS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
    }
)
PSEUDO_FILE_SYSTEMS = ("/proc", "/sys", "/dev", "/run")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def check_project_folder(localdir: Path, grid_home: Path) -> None:
    """Raise a one-line :class:`ProjectError` for a folder no run may snapshot."""
    real = os.path.realpath(localdir)
    home = os.path.realpath(grid_home)
    if _inside(real, home):
        raise ProjectError(
            f"Project folder {localdir} is inside GRID_HOME ({grid_home}), "
            "which holds every run's records.",
            hint="Pass the folder that holds your script.",
        )
    if real in SYSTEM_FOLDERS or any(_inside(real, p) for p in PSEUDO_FILE_SYSTEMS):
        raise ProjectError(
            f"Project folder {localdir} is a system folder, not a project.",
            hint="Run grid from the folder that holds your script, or pass it with --localdir.",
        )
