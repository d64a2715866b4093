"""gridrun: run any script with zero modifications on local or Docker compute.

The public API is the ``grid`` command line; the modules below are laid out in the
order data flows through them: cli -> project -> deps -> envs -> sweep -> store ->
agent -> backends.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
