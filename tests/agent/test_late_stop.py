"""A stop requested after the script exited 0 on its own leaves it succeeded.

Real supervisors and scripts, no race: the test records the prune in the store as the
search does (``Store.request_prune``), then either only lets the script finish (the
pruner judged it after its last step, and its supervisor was never signalled) or
signals its supervisor as the agent does, and the script obeys the stop by exiting 0
from its SIGTERM handler.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gridrun.agent.stopping import signal_supervisor
from gridrun.home import GridHome
from gridrun.store.db import Store
from gridrun.store.models import Status

# Says it is waiting, then exits 0 on SIGTERM, or (--obey 0) once the file go exists.
SCRIPT = """\
import argparse, os, signal, sys, time
p = argparse.ArgumentParser()
p.add_argument("--obey", type=int)
p.add_argument("--gates")
a = p.parse_args()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"val_loss=0.5 waiting{a.obey}", flush=True)
while a.obey or not os.path.exists(os.path.join(a.gates, "go")):
    time.sleep(0.05)
"""


@pytest.fixture
def project(tmp_path: Path, grid_home: Path) -> Path:
    (grid_home / "config.yaml").write_text("stop_grace_seconds: 20\nagent_idle_seconds: 5\n")
    p = tmp_path / "proj"
    p.mkdir()
    (p / "late.py").write_text(SCRIPT)
    return p


def test_a_prune_never_sent_leaves_an_exit_0_succeeded_and_a_sent_one_prunes(
    grid, project: Path, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    grid("run", "--name", "late", "late.py", "--obey", "[0, 1]", "--gates", str(gates),
         cwd=project)  # fmt: skip
    grid.wait_for_line("late", "waiting0")
    grid.wait_for_line("late", "waiting1")
    store = Store(grid.home / "grid.db")
    finishes, obeys = store.get_run("late").experiments
    assert store.request_prune(finishes.id, "late") and store.request_prune(obeys.id, "sent")
    signal_supervisor(GridHome(grid.home), store.get_experiment(obeys.id))
    (gates / "go").write_text("")
    data = grid.wait("late")
    finished, obeyed = data["experiments"]
    assert finished["status"] == "succeeded", finished
    assert finished["prune_reason"] is None
    assert obeyed["status"] == "pruned", obeyed
    assert obeyed["prune_reason"] == "sent"
    assert obeyed["exit_code"] == 0  # obeyed the stop: an exit 0 that is not a success
    assert store.get_experiment(finishes.id).status == Status.SUCCEEDED
