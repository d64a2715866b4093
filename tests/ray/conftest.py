"""The Ray tests share the session's one real local Ray cluster (``ray_cluster`` in
``tests/conftest.py``). They are never skipped: ``scripts/test`` installs ``gridrun[ray]``,
and without Ray they fail at import.
"""

from __future__ import annotations
