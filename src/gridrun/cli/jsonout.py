"""JSON for scripts (``grid -o json ...``), without importing rich.

A script that polls ``grid -o json status RUN`` starts an interpreter each time;
the tables' library is a fifth of that start, and JSON needs none of it.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
