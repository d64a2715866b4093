"""Grid's scratch space: ``--scratch_size GB`` at ``--scratch_mount_path`` in each experiment.

A size-capped tmpfs in the experiment's own mount namespace (a tmpfs mount of the
container on Docker): a run that writes past it gets ENOSPC there, and the host's disk
is untouched; the space is gone when the experiment ends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gridrun.datastores.nsexec import Plan
from gridrun.errors import UsageError
from gridrun.submission import scratch_space
from scratch_fill import FILLS_SCRIPT as FILLS


def _seen(out: str) -> dict:
    line = next(x for x in out.splitlines() if "SCRATCH " in x)
    return json.loads(line.split("SCRATCH ", 1)[1])


@pytest.mark.unit
def test_the_scratch_options_are_checked() -> None:
    assert scratch_space(None, None) == {}
    assert scratch_space(2, None) == {"scratch_size": 2, "scratch_mount_path": "/tmp/scratch"}
    assert scratch_space(1, "/data/scratch/")["scratch_mount_path"] == "/data/scratch"
    for size, path, text in [
        (0, None, "positive number of GB"),
        (None, "/tmp/x", "needs --scratch_size"),
        (1, "relative/dir", "absolute folder"),
        (1, "/", "absolute folder"),
        (1, "/usr", "absolute folder"),
        (1, "/proc/x", "absolute folder"),
        (1, "/tmp/../etc", "absolute folder"),
    ]:
        with pytest.raises(UsageError, match=text):
            scratch_space(size, path)
    plan = Plan(["--mode", "root", "--scratch", "/tmp/s", "1024", "--", "true"])
    assert plan.scratch == ("/tmp/s", 1024) and plan.command == ["true"]


def test_a_run_that_fills_its_scratch_gets_enospc_and_the_host_is_untouched(
    grid, tmp_path: Path
) -> None:
    host = Path("/tmp/scratch")
    before = sorted(os.listdir(host)) if host.is_dir() else []
    project = tmp_path / "proj"
    project.mkdir()
    (project / "fill.py").write_text(FILLS)
    out = grid("run", "--name", "scr", "--scratch_size", "1", "--follow", "fill.py",
               cwd=project).stdout  # fmt: skip
    seen = _seen(out)
    assert seen["error"] == "ENOSPC", seen
    assert 900 <= seen["written_mb"] <= 1024, seen  # the cap, not the host's free space
    assert seen["where"] == "/tmp/scratch"
    assert (sorted(os.listdir(host)) if host.is_dir() else []) == before  # nothing on the host
    # Another path, given by the user; and it is gone with the experiment.
    out = grid("run", "--name", "scr2", "--scratch_size", "1", "--scratch_mount_path",
               str(tmp_path / "my scratch"), "--follow", "fill.py", cwd=project).stdout  # fmt: skip
    seen = _seen(out)
    assert seen["where"] == str(tmp_path / "my scratch") and seen["error"] == "ENOSPC"
    assert list((tmp_path / "my scratch").iterdir()) == []
    status = grid.json("status", "scr2")
    assert status["experiments"][0]["status"] == "succeeded"


def test_a_backend_without_scratch_space_refuses_it_in_one_line(grid, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "fill.py").write_text(FILLS)
    proc = grid("run", "--backend", "ray", "--ray_address", "127.0.0.1:9", "--scratch_size",
                "1", "fill.py", cwd=project, check=False)  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "no scratch space (--scratch_size)" in proc.stderr, proc.stderr
    proc = grid("run", "--scratch_mount_path", "/tmp/x", "fill.py", cwd=project, check=False)
    assert proc.returncode == 2 and "needs --scratch_size" in proc.stderr, proc.stderr
