"""The embedded default backend: processes on this machine, in cached uv virtualenvs."""

from __future__ import annotations

from gridrun.backends.local.backend import LocalBackend, resume_workdir
from gridrun.specs import script_command

__all__ = ["LocalBackend", "resume_workdir", "script_command"]
