"""A separate builder process for the concurrency and crash tests.

usage: builder_proc.py ENVS_DIR KEY PYTHON LOG_FILE [REQUIREMENT...]

Builds with this machine's pip configuration, as the local backend does, appends
every log line to LOG_FILE as it comes (so a test can watch a build it will kill),
prints the environment path on success, and exits 1 with the error otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gridrun.envs.pipconf import load_pip_config
from gridrun.envs.venv import build_venv
from gridrun.errors import GridError


def main() -> int:
    envs_dir, key, python, log_file, *requirements = sys.argv[1:]
    with open(log_file, "a", encoding="utf-8", buffering=1) as fh:

        def log(line: str) -> None:
            fh.write(line + "\n")

        try:
            path = build_venv(Path(envs_dir), key, python, requirements, log, load_pip_config())
        except GridError as exc:
            print(exc, file=sys.stderr)
            return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
