"""End to end through the real ``grid`` CLI on the local backend: run, watch, collect."""

from __future__ import annotations

import re
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

LOG_LINE = re.compile(
    r"^\[(build|stdout|stderr)\] \[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00\] "
)

ARGECHO = """\
import os, sys
print(sys.argv)
print("cwd", os.getcwd())
print("env", os.environ["GRID_RUN_NAME"], os.environ["GRID_EXPERIMENT_NAME"],
      os.environ["GRID_EXPERIMENT_ID"], repr(os.environ["CUDA_VISIBLE_DEVICES"]),
      os.environ["OMP_NUM_THREADS"])
print("to stderr", file=sys.stderr)
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def project(weird_tmp_path: Path) -> Path:
    write(weird_tmp_path, "argecho.py", ARGECHO)
    return weird_tmp_path


def test_script_sees_argv_exactly_and_runs_in_its_own_copy(grid, project: Path) -> None:
    out = grid(
        "run",
        "--name",
        "echo-run",
        "--follow",
        "argecho.py",
        "--arg1",
        "1",
        "--arg2",
        "2",
        "--test",
        cwd=project,
    )
    assert "Run submitted!" in out.stdout
    assert "grid_name:               echo-run" in out.stdout
    assert "Neither a CPU or GPU number was specified. 1 CPU will be used as a default." in (
        out.stderr.replace("\n", " ")
    )
    assert (
        "[stdout]" in out.stdout
        and "['argecho.py', '--arg1', '1', '--arg2', '2', '--test']" in out.stdout
    )
    logs = grid("logs", "echo-run-exp0").stdout.splitlines()
    assert logs and all(LOG_LINE.match(line) for line in logs), logs
    text = "\n".join(logs)
    assert "['argecho.py', '--arg1', '1', '--arg2', '2', '--test']" in text
    cwd = re.search(r"cwd (.*)", text).group(1)
    assert cwd != str(project) and cwd.endswith("workdir")
    assert "env echo-run echo-run-exp0" in text and "'' 1" in text
    assert re.search(r"^\[stderr\] .* to stderr$", text, re.M)
    status = grid.json("status", "echo-run")
    assert status["experiments"][0]["status"] == "succeeded"
    assert status["experiments"][0]["exit_code"] == 0


def test_double_dash_separates_script_options(grid, project: Path) -> None:
    grid("run", "--name", "dash", "--follow", "argecho.py", "--", "--name", "x", cwd=project)
    assert "['argecho.py', '--name', 'x']" in grid("logs", "dash").stdout


def test_failing_script_records_exit_code_and_follow_returns_it(grid, project: Path) -> None:
    write(project, "fail.py", "import sys\nprint('bye')\nsys.exit(3)\n")
    out = grid("run", "--name", "fails", "--follow", "fail.py", cwd=project, check=False)
    assert out.returncode == 3, out.stderr
    exp = grid.json("status", "fails")["experiments"][0]
    assert exp["status"] == "failed" and exp["exit_code"] == 3
    table = grid("status", "fails").stdout
    assert "fails-exp0" in table and "failed" in table and "exited with code 3" in table


def test_bash_script_gets_the_runs_python_first_on_path(grid, project: Path) -> None:
    write(
        project,
        "job.sh",
        ('echo "args: $@"\nwhich python\npython -c "import sys; print(sys.prefix)"\n'),
    )
    grid("run", "--name", "bashed", "--follow", "job.sh", "a b", "--flag", cwd=project)
    text = grid("logs", "bashed-exp0").stdout
    assert "args: a b --flag" in text
    assert str(grid.home / "envs") in text


def test_inferred_third_party_dependency_is_installed(grid, project: Path) -> None:
    """An import found in the source is pinned to the invoking environment's version.

    ``coolname`` is one of gridrun's own dependencies, so every environment that can run
    these tests has it: the test does not depend on what else the machine has installed.
    """
    import importlib.metadata as md

    version = md.version("coolname")
    write(project, "uses_coolname.py", "import coolname\nprint('coolname', coolname.__name__)\n")
    out = grid("run", "--name", "infer", "--follow", "uses_coolname.py", cwd=project)
    err = " ".join(out.stderr.split())
    assert (
        "No requirements.txt or environment.yml found but we identified below dependencies" in err
    )
    assert f"coolname=={version}" in err
    assert "coolname coolname" in grid("logs", "infer").stdout
    env_python = next((grid.home / "envs").glob("*/bin/python"))
    installed = subprocess.run(
        [str(env_python), "-c", "import importlib.metadata as m; print(m.version('coolname'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert installed == version


def test_artifacts_are_saved_and_downloaded(grid, project: Path, tmp_path: Path) -> None:
    write(
        project,
        "train.py",
        """\
        import os
        os.makedirs("checkpoints/epoch1", exist_ok=True)
        open("checkpoints/epoch1/model.txt", "w").write("weights")
        open("metrics.json", "w").write("{}")
        open("argecho.py", "a").write("# changed")
    """,
    )
    grid("run", "--name", "arty", "--follow", "train.py", cwd=project)
    dest = tmp_path / "dl"
    out = grid("artifacts", "arty", "--download_dir", str(dest)).stdout
    assert "Copied 3 artifact(s)" in out
    assert (dest / "arty-exp0/checkpoints/epoch1/model.txt").read_text() == "weights"
    assert (dest / "arty-exp0/metrics.json").exists()
    assert not (dest / "arty-exp0/train.py").exists()  # a snapshot file, unchanged
    dest2 = tmp_path / "dl2"
    grid("artifacts", "arty-exp0", "--download_dir", str(dest2), "-m", r"model\.txt$")
    files = sorted(p.name for p in dest2.rglob("*") if p.is_file())
    assert files == ["model.txt"]


def test_stop_a_running_experiment(grid, project: Path) -> None:
    write(
        project,
        "sleepy.py",
        """\
        import signal, sys, time
        print("started", flush=True)
        time.sleep(600)
    """,
    )
    grid("run", "--name", "sleepy", "sleepy.py", cwd=project)
    grid.wait_for_line("sleepy-exp0", "started")
    out = grid("stop", "run", "sleepy")
    assert "Stopped 1 experiment(s) of sleepy" in out.stdout
    exp = grid.json("status", "sleepy")["experiments"][0]
    assert exp["status"] == "stopped"
    assert grid.json("history")[0]["status"] == "stopped"


def test_stop_escalates_to_sigkill_after_grace(grid, project: Path) -> None:
    write(
        project,
        "stubborn.py",
        """\
        import signal, time
        signal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))
        print("started", flush=True)
        while True:
            time.sleep(0.1)
    """,
    )
    grid("run", "--name", "stubborn", "stubborn.py", cwd=project)
    grid.wait_for_line("stubborn-exp0", "started")
    grid("stop", "experiment", "stubborn-exp0")
    exp = grid.json("status", "stubborn")["experiments"][0]
    assert exp["status"] == "stopped" and exp["exit_code"] == -9
    assert "ignoring SIGTERM" in grid("logs", "stubborn-exp0").stdout


def test_status_history_and_delete(grid, project: Path) -> None:
    grid("run", "--name", "first", "--follow", "argecho.py", cwd=project)
    status = grid("status").stdout
    assert "1 Run(s) are not active. Use `grid history` to view your Run history." in status
    for col in (
        "Run",
        "Status",
        "Duration",
        "Experiments",
        "Running",
        "Queued",
        "Completed",
        "Failed",
        "Stopped",
    ):
        assert col in status
    history = grid("history").stdout
    for col in ("Run", "Created At", "Experiments", "Failed", "Stopped", "Completed"):
        assert col in history
    assert "first" in history and "┃" in history  # rich heavy head
    detail = grid("status", "first").stdout
    for col in ("Experiment", "Status", "Queued Duration", "Run Duration", "Command"):
        assert col in detail
    assert re.search(r"0d-00:00:\d\d", detail)
    grid("delete", "run", "first")
    assert grid.json("history") == []
    assert not (grid.home / "experiments" / "first-exp0").exists()


def test_logs_of_pending_experiment(grid, project: Path) -> None:
    write(project, "sleepy.py", "import time; print('started', flush=True); time.sleep(60)\n")
    (grid.home / "config.yaml").write_text(
        "capacity: {cpus: 1}\nstop_grace_seconds: 2\nagent_idle_seconds: 5\n"
    )
    grid("run", "--name", "hog", "sleepy.py", cwd=project)
    grid("run", "--name", "waits", "sleepy.py", cwd=project)
    # The two share one environment: the second run's build finds it the moment the
    # first one's releases it, and may be marked built a few ms sooner, so either run
    # can be the one that starts. With one CPU the other is queued behind it (not
    # still being built): wait for that before reading the queued one's logs.
    deadline = time.monotonic() + 120
    while True:
        states = {r: grid.json("status", r)["experiments"][0]["status"] for r in ("hog", "waits")}  # type: ignore[index]
        if sorted(states.values()) == ["pending", "running"]:
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.2)
    running = next(r for r, s in states.items() if s == "running")
    queued = next(r for r, s in states.items() if s == "pending")
    grid.wait_for_line(f"{running}-exp0", "started")
    out = grid("logs", f"{queued}-exp0").stdout
    assert "Experiment is pending. Logs will be available when experiment starts." in out
    grid("stop", "run", "hog", "waits")


def test_tail_lines(grid, project: Path) -> None:
    write(project, "count.py", "for i in range(10): print('line', i)\n")
    grid("run", "--name", "counts", "--follow", "count.py", cwd=project)
    out = grid("logs", "counts", "-l", "2").stdout.splitlines()
    assert len(out) == 2 and out[-1].endswith("line 9")
    built = grid("logs", "counts", "--show-build-logs").stdout
    assert "[build]" in built
