"""Opening the state database from many processes at once: busy is never "corrupt"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OPENER = """
import sys
from pathlib import Path
from gridrun.store.db import Store
Store(Path(sys.argv[1])).close()
print("opened")
"""


def test_many_processes_create_the_database_at_once(tmp_path: Path) -> None:
    for trial in range(3):
        db = tmp_path / f"grid{trial}.db"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, str(db)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0 and "opened" in out, err
