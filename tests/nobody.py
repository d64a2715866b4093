"""Running code as the unprivileged user ``nobody`` (uid 65534), for the tests that check
what an unprivileged experiment can and cannot do."""

from __future__ import annotations

import subprocess
import sys

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def python_for_nobody(imports: str = "json, hashlib, sqlite3, ctypes") -> str | None:
    """An interpreter the unprivileged user may run (pyenv under /root is not one)."""
    for candidate in (sys.executable, "/usr/local/bin/python3", "/usr/bin/python3"):
        try:
            ok = subprocess.run(
                # Through `env`, so that the interpreter is exec'd by the unprivileged user.
                [*NOBODY, "env", candidate, "-c", f"import {imports}"],
                capture_output=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if ok.returncode == 0:
            return candidate
    return None
