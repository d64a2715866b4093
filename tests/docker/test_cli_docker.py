"""``grid run --backend docker`` end to end through the real CLI and a real engine."""

from __future__ import annotations

import ast
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BASE = "gridrun-test-base:bookworm"


def docker_run(grid, project: Path, *args: str, check: bool = True):
    return grid(
        "run",
        "--backend",
        "docker",
        "--base_image",
        BASE,
        *args,
        cwd=project,
        check=check,
        timeout=600,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "dproj"
    p.mkdir()
    (p / "app.py").write_text(  # unique code: the first build in each test is cold
        f"# {uuid.uuid4().hex}\nimport sys, six\nprint(repr(sys.argv), flush=True)\n"
        "open('result.txt', 'w').write('made in a container')\n"
    )
    return p


def argv_line(text: str) -> list[str]:
    for line in text.splitlines():
        if "[stdout]" in line and "['app.py'" in line:
            return ast.literal_eval(line.split("] ", 2)[2])
    raise AssertionError(text)


def test_inferred_dependency_sweep_reuse_artifacts(grid, project: Path, tmp_path: Path) -> None:
    out = docker_run(
        grid, project, "--name", "dk", "--cpus", "1", "--follow", "app.py", "--x", "[1, 2]"
    )
    assert "six" in " ".join(out.stderr.split())  # inferred, with the seed's warning
    data = grid.json("status", "dk")
    assert [e["status"] for e in data["experiments"]] == ["succeeded", "succeeded"]
    assert argv_line(grid("logs", "dk-exp0").stdout) == ["app.py", "--x", "1"]
    assert argv_line(grid("logs", "dk-exp1").stdout) == ["app.py", "--x", "2"]
    build = grid("logs", "dk-exp0", "--show-build-logs").stdout
    assert "[build]" in build and "Successfully tagged" in build
    dest = tmp_path / "arts"
    grid("artifacts", "dk", "--download_dir", str(dest))
    assert (dest / "dk-exp1" / "result.txt").read_text() == "made in a container"
    assert not (dest / "dk-exp0" / "app.py").exists()

    # The same code again: the image is reused, nothing is built.
    docker_run(grid, project, "--name", "dk-again", "--follow", "app.py")
    again = grid("logs", "dk-again", "--show-build-logs").stdout
    assert "Reusing cached image" in again and "Step " not in again
    assert data["env_ref"] == grid.json("status", "dk-again")["env_ref"]

    # A code-only change keeps the dependency layers: only the code layer is new.
    (project / "app.py").write_text((project / "app.py").read_text() + "print('v2')\n")
    start = time.monotonic()
    docker_run(grid, project, "--name", "dk-code", "--follow", "app.py")
    elapsed = time.monotonic() - start
    code = grid("logs", "dk-code", "--show-build-logs").stdout
    assert "pip install" not in code.split("Step")[-1]
    assert "Using cache" in code and "v2" in code
    print(f"code-only rebuild and run through grid: {elapsed:.1f}s")
    images = grid.json("images")
    assert any(i["tag"] == grid.json("status", "dk-code")["env_ref"] for i in images)


def test_stop_a_container_and_build_failure(grid, project: Path) -> None:
    (project / "sleepy.py").write_text(
        "import time\nprint('started', flush=True)\ntime.sleep(600)\n"
    )
    (project / "requirements.txt").write_text("six\n")
    docker_run(grid, project, "--name", "dk-stop", "sleepy.py")
    grid.wait_for_line("dk-stop-exp0", "started", timeout=300)
    grid("stop", "run", "dk-stop")
    exp = grid.json("status", "dk-stop")["experiments"][0]
    assert exp["status"] == "stopped"
    import docker

    client = docker.from_env()
    try:
        left = client.containers.list(all=True, filters={"label": "gridrun.run=dk-stop"})
        assert left == []
    finally:
        client.close()

    (project / "requirements.txt").write_text("gridrun-no-such-package-4b1d==1.0\n")
    proc = docker_run(grid, project, "--name", "dk-bad", "--follow", "app.py", check=False)
    assert proc.returncode != 0
    data = grid.json("status", "dk-bad")
    assert data["status"] == "failed" and "gridrun-no-such-package-4b1d" in data["error"]


def test_no_engine_is_a_one_line_error(grid, project: Path, tmp_path: Path) -> None:
    grid.env["DOCKER_HOST"] = f"unix://{tmp_path}/nothing.sock"
    proc = docker_run(grid, project, "app.py", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--backend local" in " ".join(proc.stderr.split())
    assert grid.json("history") == []


def test_engine_restarted_mid_experiment(grid, project: Path, second_engine) -> None:
    host, restart = second_engine
    grid.env["DOCKER_HOST"] = host
    (project / "sleepy.py").write_text(
        "import time\nprint('started', flush=True)\ntime.sleep(600)\n"
    )
    (project / "requirements.txt").write_text("")
    docker_run(grid, project, "--name", "dk-restart", "sleepy.py")
    grid.wait_for_line("dk-restart-exp0", "started", timeout=300)
    restart()  # the engine stops every container: the experiment ends with the engine
    data = grid.wait("dk-restart", timeout=180)
    exp = data["experiments"][0]
    assert exp["status"] == "failed" and exp["exit_code"] not in (None, 0)
    # And the agent still serves this engine afterwards.
    (project / "quick.py").write_text("print('after restart')\n")
    docker_run(grid, project, "--name", "dk-after", "--follow", "quick.py")
    assert "after restart" in grid("logs", "dk-after").stdout


# Checkpoints every step in its working directory (/gridai/project); SIGTERM saves and
# exits 0. Prints "start <GRID_RESTART_COUNT> <step>" per attempt, "finished" once.
DOCKER_CKPT = """\
import json, os, signal, sys, time
state = {"step": 0}
if os.path.exists("ckpt.json"):
    state = json.load(open("ckpt.json"))

def save():
    json.dump(state, open("ckpt.tmp", "w"))
    os.replace("ckpt.tmp", "ckpt.json")

def on_term(*_):
    save()
    print("sigterm", state["step"], flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
print("start", os.environ["GRID_RESTART_COUNT"], state["step"], flush=True)
while state["step"] < int(sys.argv[1]):
    time.sleep(0.3)
    state["step"] += 1
    save()
    print("step", state["step"], flush=True)
print("finished", flush=True)
"""


def _starts(grid, name: str) -> list[list[str]]:
    out = grid("logs", name).stdout
    return [ln.split("] ", 2)[-1].split() for ln in out.splitlines() if "] start " in ln]


def test_grid_preempt_on_docker_resumes_in_the_same_directory(grid, project: Path) -> None:
    (project / "ckpt.py").write_text(DOCKER_CKPT)
    (project / "requirements.txt").write_text("")
    docker_run(grid, project, "--name", "dk-pre", "--auto_resume", "ckpt.py", "30")
    grid.wait_for_line("dk-pre-exp0", "step 2", timeout=300)
    out = grid("preempt", "dk-pre-exp0").stdout
    assert "preempted" in out and "restart 1" in out, out
    exp = grid.wait("dk-pre", timeout=300)["experiments"][0]
    assert exp["status"] == "succeeded" and exp["restarts"] == 1, exp
    starts = _starts(grid, "dk-pre-exp0")
    assert [s[1] for s in starts] == ["0", "1"] and int(starts[1][2]) >= 2, starts
    assert (grid.home / "experiments" / "dk-pre-exp0" / "artifacts" / "ckpt.json").exists()


def test_engine_restart_under_auto_resume_resumes_from_its_checkpoint(
    grid, project: Path, second_engine
) -> None:
    """The resume case on Docker: the engine restarts under a checkpointing experiment.

    dockerd's shutdown sends the container SIGTERM; the script saves and exits 0. That
    is a preemption (the engine ended it), so under --auto_resume it runs again once
    the engine is back, in the same working directory, and finishes exactly once.
    """
    host, restart = second_engine
    grid.env["DOCKER_HOST"] = host
    (project / "ckpt.py").write_text(DOCKER_CKPT)
    (project / "requirements.txt").write_text("")
    docker_run(grid, project, "--name", "dk-eng", "--auto_resume", "ckpt.py", "30")
    grid.wait_for_line("dk-eng-exp0", "step 2", timeout=300)
    restart()
    exp = grid.wait("dk-eng", timeout=300)["experiments"][0]
    assert exp["status"] == "succeeded" and exp["restarts"] == 1, (
        exp,
        grid("logs", "dk-eng-exp0").stdout,
    )
    starts = _starts(grid, "dk-eng-exp0")
    assert [s[1] for s in starts] == ["0", "1"] and int(starts[1][2]) >= 2, starts
    log = grid("logs", "dk-eng-exp0").stdout
    assert log.count("finished") == 1, log
    assert "Docker engine restarted" in log, log


def test_scratch_space_is_a_size_capped_tmpfs_in_the_container(grid, tmp_path: Path) -> None:
    from scratch_fill import FILLS_SCRIPT

    project = tmp_path / "sproj"
    project.mkdir()
    (project / "fill.py").write_text(FILLS_SCRIPT)
    out = docker_run(grid, project, "--name", "dscr", "--scratch_size", "1", "--follow",
                     "fill.py").stdout  # fmt: skip
    line = next(x for x in out.splitlines() if "SCRATCH " in x)
    assert '"error": "ENOSPC"' in line and '"where": "/tmp/scratch"' in line, line
