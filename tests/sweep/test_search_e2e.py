"""``grid run --strategy bayesian`` through the real CLI, agent and supervisors.

The scripts print ``val_loss`` lines as any training script would; nothing here sleeps
and hopes: a trial that must be pruned holds until its search stops it, and the agent
is killed while a trial waits for a file the test writes.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from search_helpers import CURVE, submit_pruned_search, wait_search, wait_until

# Appends its --x to a ledger, then waits for the file go<N> (N: its line in the
# ledger), so the test says when each trial may end.
GATED = """\
import argparse, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
p.add_argument("--gates")
a = p.parse_args()
with open(os.path.join(a.gates, "ledger"), "a+") as f:
    f.write(f"{a.x}\\n")
    f.flush()
    f.seek(0)
    n = len(f.read().splitlines()) - 1
while not os.path.exists(os.path.join(a.gates, f"go{n}")):
    time.sleep(0.05)
print(f"val_loss={(a.x - 0.3) ** 2:.6f}", flush=True)
"""


@pytest.fixture
def project(tmp_path: Path, grid_home: Path) -> Path:
    # Two CPUs whatever the machine: a trial asking for 2 runs alone, one asking for
    # 0.25 runs with seven others.
    (grid_home / "config.yaml").write_text(
        "stop_grace_seconds: 3\nagent_idle_seconds: 5\ncapacity: {cpus: 2}\n"
    )
    p = tmp_path / "proj"
    p.mkdir()
    (p / "curve.py").write_text(CURVE)
    (p / "gated.py").write_text(GATED)
    return p


def test_bayesian_search_prunes_the_bad_trials_and_reports_the_best(grid, project: Path) -> None:
    out = submit_pruned_search(grid, project, "tpe")
    assert "8 trials of a bayesian search for val_loss:min:last, pruned by median" in out
    data = wait_search(grid, "tpe")
    exps = data["experiments"]
    assert [e["name"] for e in exps] == [f"tpe-exp{i}" for i in range(8)]
    xs = {e["name"]: float(e["params"]["x"]) for e in exps}
    for e in exps:
        assert e["argv"] == ["--x", e["params"]["x"]]
        if xs[e["name"]] > 0.5:
            assert e["status"] == "pruned", e
            assert "val_loss" in e["prune_reason"] and "worse than the median" in e["prune_reason"]
        else:
            assert e["status"] == "succeeded", e
            assert e["prune_reason"] is None
    assert sum(e["status"] == "pruned" for e in exps) >= 1
    good = {n: x for n, x in xs.items() if x <= 0.5}
    best_name = min(good, key=good.__getitem__)
    search = data["search"]
    assert search["state"] == "done"
    assert search["best"]["experiment"] == best_name
    assert search["best"]["value"] == pytest.approx(good[best_name] + 1 / 3, abs=1e-5)

    table = grid("status", "tpe").stdout
    assert "pruned" in table
    assert f"Best so far: {best_name} val_loss" in table
    pruned = next(n for n, x in xs.items() if x > 0.5)
    assert f"{pruned} pruned: val_loss" in table
    assert (grid.home / "runs" / "tpe" / "study.journal").is_file()


def test_a_killed_agent_resumes_the_study_without_rerunning_a_trial(
    grid, project: Path, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    grid(
        "run",
        "--name",
        "resumed",
        "--strategy",
        "bayesian",
        "--num_trials",
        "4",
        "--objective",
        "val_loss:min",
        "--cpus",
        "2",  # one trial at a time
        "gated.py",
        "--x",
        "uniform(0, 1)",
        "--gates",
        str(gates),
        cwd=project,
    )
    ledger = gates / "ledger"

    def lines() -> int:
        return len(ledger.read_text().splitlines()) if ledger.exists() else 0

    (gates / "go0").touch()
    wait_until("trial 1 started after trial 0 ended", lambda: lines() == 2)
    first = grid.json("status", "resumed")["experiments"][0]
    assert first["status"] == "succeeded"

    pid = int((grid.home / "agent.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)  # mid-search: trial 1 runs, trials 2 and 3 are not asked
    wait_until("the agent is gone", lambda: not _alive(pid))
    for n in range(1, 4):
        (gates / f"go{n}").touch()
    data = wait_search(grid, "resumed")
    exps = data["experiments"]
    assert [e["name"] for e in exps] == [f"resumed-exp{i}" for i in range(4)]
    assert all(e["status"] == "succeeded" for e in exps), exps
    # Each trial ran once: four lines in the ledger, one per experiment, in order.
    assert [float(x) for x in ledger.read_text().split()] == [float(e["params"]["x"]) for e in exps]
    study = _study(grid.home / "runs" / "resumed" / "study.journal", "resumed")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    for t, e in zip(study.trials, exps, strict=True):
        assert t.value == pytest.approx((float(e["params"]["x"]) - 0.3) ** 2, abs=1e-5)


def test_grid_stop_ends_the_study(grid, project: Path, tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    out = grid(
        "run",
        "--name",
        "stopped",
        "--strategy",
        "bayesian",
        "--objective",
        "val_loss:min",
        "--cpus",
        "2",
        "gated.py",
        "--x",
        "uniform(0, 1)",
        "--gates",
        str(gates),
        cwd=project,
    )
    assert "20 trials (the default; --num_trials sets it) of a bayesian search" in out.stdout
    wait_until("trial 0 started", lambda: (gates / "ledger").exists())
    grid("stop", "run", "stopped")
    data = wait_search(grid, "stopped")
    assert data["search"]["state"] == "stopped"
    assert data["search"]["num_trials"] == 20  # the default, said in the summary
    assert [e["status"] for e in data["experiments"]] == ["stopped"]


def test_follow_streams_each_trial_as_it_is_asked_for(grid, project: Path) -> None:
    (project / "quick.py").write_text(
        "import sys\nprint(f'val_loss={(float(sys.argv[2]) - 0.3) ** 2:.6f}')\n"
    )
    out = grid(
        "run",
        "--name",
        "followed",
        "--follow",
        "--strategy",
        "bayesian",
        "--num_trials",
        "3",
        "--objective",
        "val_loss:min",
        "quick.py",
        "--x",
        "uniform(0, 1)",
        cwd=project,
    ).stdout
    for i in range(3):
        assert f"followed-exp{i} | [stdout]" in out and "val_loss=" in out
    assert "Run followed ended: 3 succeeded, 0 failed, 0 stopped" in out
    assert grid.json("status", "followed")["search"]["state"] == "done"


BAYES = ["--strategy", "bayesian", "--objective"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "bayesian", "curve.py", "--x", "uniform(0, 1)"], "needs --objective"),
        (
            ["--strategy", "bayesian", "--objective", "loss", "curve.py", "--x", "[1, 2]"],
            "is not NAME:min or NAME:max",
        ),
        (["--objective", "loss:min", "curve.py", "--x", "[1, 2]"], "add --strategy bayesian"),
        (
            ["--strategy", "bayesian", "--objective", "loss:min", "curve.py", "--x", "1"],
            "nothing to search",
        ),
        (
            [*BAYES, "l:min", "curve.py", "--x", "normal(0, 1, 2)"],
            "no bounds to search",
        ),
        (
            [*BAYES, "l:min", "--num_trials", "0", "curve.py", "--x", "[1, 2]"],
            "--num_trials must be a positive integer",
        ),
    ],
)
def test_bad_search_input_is_one_line_and_records_nothing(
    grid, project: Path, args: list[str], message: str
) -> None:
    out = grid("run", *args, cwd=project, check=False)
    assert out.returncode != 0
    assert message in out.stderr + out.stdout
    assert "Traceback" not in out.stderr
    assert grid.json("history") == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie until its parent reaps it: dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _study(path: Path, name: str):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.load_study(study_name=name, storage=storage)
