"""The web dashboard behind ``grid ui``: it reads the store, as the CLI does.

Server-rendered pages (Starlette + Jinja2) with small scripts; chart libraries are
vendored from npm under ``static/vendor`` so it works with no internet. The only
writes are the same ones the CLI makes: stopping experiments and submitting runs
through :mod:`gridrun.submission`.
"""

from __future__ import annotations

from gridrun.ui.app import create_app

__all__ = ["create_app"]
