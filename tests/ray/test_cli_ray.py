"""``grid run --backend ray`` end to end: the real CLI, agent, supervisors and cluster."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path

import pytest

# The submitting shell's environment does not travel to Ray nodes: the test's settings
# travel in the snapshot.
TRAIN = """
import json, os, sys, time
cfg = json.load(open("settings.json"))
print("argv", sys.argv)
print("cwd-has-train", os.path.exists("train.py"))
print("warn", file=sys.stderr)
with open(os.path.join(cfg["marks"], os.environ["GRID_EXPERIMENT_NAME"]), "a") as fh:
    fh.write("ran\\n")
time.sleep(cfg["sleep"])
os.makedirs("out", exist_ok=True)
open("out/model.txt", "w").write(os.environ["GRID_EXPERIMENT_NAME"])
"""

pytestmark = pytest.mark.ray


def _project(tmp_path: Path, files: dict[str, str] | None = None, sleep: float = 2.0) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(TRAIN)
    (proj / "settings.json").write_text(
        json.dumps({"marks": str(tmp_path / "marks"), "sleep": sleep})
    )
    for rel, text in (files or {}).items():
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text(text)
    return proj


def _ids(ray_cluster) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {n["node_id"][:8]: n["resources_total"].get("CPU", 0) for n in ray_cluster.alive_nodes()}


def test_sweep_runs_across_both_nodes_with_exact_argv_and_logs(ray_grid, ray_cluster, tmp_path):  # type: ignore[no-untyped-def]
    proj = _project(tmp_path)
    out = ray_grid(
        "run", "--backend", "ray", "--name", "spread", "--cpus", "1", "train.py",
        "--lr", "[0.1, 0.01, 0.001, 1e-4]", "--tag", "it's a test",
        cwd=proj,
    )  # fmt: skip
    assert "backend:                 ray" in out.stdout
    data = ray_grid.wait("spread", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"] * 4, data
    lrs = ["0.1", "0.01", "0.001", "1e-4"]
    nodes = set()
    for i, e in enumerate(data["experiments"]):
        log = ray_grid("logs", e["name"]).stdout
        argv = ["train.py", "--lr", lrs[i], "--tag", "it's a test"]
        assert f"argv {argv!r}" in log, log
        assert "cwd-has-train True" in log
        assert "[stderr]" in log and "warn" in log
        assert "[build]" in log  # built on the node, or reused from its cache
        assert e["node"], e
        nodes.add(e["node"].split("(")[1].rstrip(")"))
        assert (ray_grid.marks / e["name"]).read_text() == "ran\n"
        arts = ray_grid("artifacts", e["name"], "--download_dir", str(tmp_path / "dl")).stdout
        assert "out/model.txt" in arts
    assert nodes == set(_ids(ray_cluster)), (nodes, _ids(ray_cluster))
    table = ray_grid("status", "spread").stdout
    assert "Node" in table and "(" in table


def test_custom_resource_pins_the_second_node_and_artifacts_come_back(
    ray_grid, ray_cluster, tmp_path
):  # type: ignore[no-untyped-def]
    (ray_grid.home / "config.yaml").write_text(
        "stop_grace_seconds: 3\nagent_idle_seconds: 5\nray:\n  resources: {special: 1}\n"
    )
    proj = _project(tmp_path, sleep=0)
    ray_grid("run", "--backend", "ray", "--name", "pinned", "train.py", "--x", "[1, 2]", cwd=proj)
    data = ray_grid.wait("pinned", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"] * 2, data
    worker = [i for i, cpus in _ids(ray_cluster).items() if cpus == 2]
    for e in data["experiments"]:
        assert e["node"].endswith(f"({worker[0]})"), e
        saved = ray_grid.home / "experiments" / e["name"] / "artifacts" / "out" / "model.txt"
        assert saved.read_text() == e["name"]


SPAN = """
import json, os, sys, time
cfg = json.load(open("settings.json"))
start = time.time()
time.sleep(3)
with open(os.path.join(cfg["marks"], os.environ["GRID_EXPERIMENT_NAME"]), "w") as fh:
    fh.write(f"{start} {time.time()}")
"""


def test_an_experiment_keeps_the_cpus_it_asked_for(ray_grid, tmp_path):  # type: ignore[no-untyped-def]
    """Only the 2-CPU node holds ``--cpus 2``, so three such experiments run one after
    another there, never two at once: a task that waited on its coordinator's reply
    (``ray.get``) would hand its CPUs back to Ray meanwhile, and Ray would start the
    next experiment on them."""
    proj = _project(tmp_path, {"span.py": SPAN})
    ray_grid("run", "--backend", "ray", "--name", "cpus", "--cpus", "2", "span.py",
             "--i", "[1, 2, 3]", cwd=proj)  # fmt: skip
    # Two of them wait in Ray's queue while one runs: they show as queued meanwhile.
    seen: set[str] = set()
    deadline = time.monotonic() + 600
    while True:
        data = ray_grid.json("status", "cpus")
        seen |= {e["engine_state"] or e["status"] for e in data["experiments"]}
        if all(e["status"] not in ("building", "pending", "running") for e in data["experiments"]):
            break
        assert time.monotonic() < deadline, data
        time.sleep(0.2)
    assert "queued" in seen, seen
    assert [e["status"] for e in data["experiments"]] == ["succeeded"] * 3, data
    spans = {
        e["name"]: tuple(map(float, (ray_grid.marks / e["name"]).read_text().split()))
        for e in data["experiments"]
    }
    order = sorted(data["experiments"], key=lambda e: spans[e["name"]][0])
    for before, after in itertools.pairwise(order):
        end, start = spans[before["name"]][1], spans[after["name"]][0]
        assert start >= end - 0.05, (spans, [e["node"] for e in data["experiments"]])
        # Its run time starts when Ray placed it, not when gridrun handed it over.
        assert after["started_at"] >= end - 0.05, (after, spans)


def test_a_request_no_node_can_hold_is_refused_at_submission(ray_grid, tmp_path):  # type: ignore[no-untyped-def]
    proj = _project(tmp_path)
    bad = ray_grid("run", "--backend", "ray", "--cpus", "3", "train.py", cwd=proj, check=False)
    assert bad.returncode != 0
    assert "asks for 3 CPUs" in bad.stderr and "has 2 CPUs" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
    assert ray_grid.json("history") == []


def test_no_cluster_named_is_one_line(grid, tmp_path):  # type: ignore[no-untyped-def]
    proj = _project(tmp_path)
    grid.env.pop("RAY_ADDRESS", None)
    bad = grid("run", "--backend", "ray", "train.py", cwd=proj, check=False)
    assert bad.returncode != 0
    assert "No Ray cluster named" in bad.stderr and "ray start --head" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) <= 2, bad.stderr


def test_a_snapshot_above_rays_limit_is_refused_naming_the_largest_file(ray_grid, tmp_path):  # type: ignore[no-untyped-def]
    proj = _project(tmp_path, {"data/big.bin": "x" * 300_000})
    ray_grid.env["RAY_max_grpc_message_size"] = "200000"  # Ray's own limit, made small
    bad = ray_grid("run", "--backend", "ray", "train.py", cwd=proj, check=False)
    assert bad.returncode != 0
    assert "data/big.bin" in bad.stderr and ".gridignore" in bad.stderr, bad.stderr


def test_grid_stop_terminates_a_running_experiment(ray_grid, tmp_path):  # type: ignore[no-untyped-def]
    proj = _project(
        tmp_path,
        {
            "slow.py": "import signal, sys, time\n"
            "def bye(*a):\n    print('got SIGTERM', flush=True)\n    sys.exit(3)\n"
            "signal.signal(signal.SIGTERM, bye)\nprint('started', flush=True)\n"
            "time.sleep(600)\n"
        },
    )
    ray_grid("run", "--backend", "ray", "--name", "stopme", "slow.py", cwd=proj)
    ray_grid.wait_for_line("stopme", "started", timeout=600)
    ray_grid("stop", "run", "stopme")
    data = ray_grid.wait("stopme", timeout=120)
    assert [e["status"] for e in data["experiments"]] == ["stopped"]
    assert "got SIGTERM" in ray_grid("logs", "stopme").stdout


def test_agent_killed_mid_sweep_every_experiment_runs_exactly_once(ray_grid, tmp_path):  # type: ignore[no-untyped-def]
    proj = _project(tmp_path, sleep=3)
    ray_grid("run", "--backend", "ray", "--name", "crashy", "train.py", "--i", "range(6)",
             cwd=proj)  # fmt: skip
    deadline = time.monotonic() + 600
    while not any(ray_grid.marks.iterdir()):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    pid = int((ray_grid.home / "agent.pid").read_text().split()[0])  # "pid start-time"
    os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    data = ray_grid.wait("crashy", timeout=600)  # `grid status` starts a new agent
    assert [e["status"] for e in data["experiments"]] == ["succeeded"] * 6, data
    for e in data["experiments"]:
        assert (ray_grid.marks / e["name"]).read_text() == "ran\n", e["name"]


def test_datastore_is_mounted_read_only_on_the_node(ray_grid, tmp_path):  # type: ignore[no-untyped-def]
    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "x.txt").write_text("hello data\n")
    ray_grid("datastore", "create", str(src), "--name", "mydata")
    reader = (
        "import os\nd = os.environ['GRID_DATASTORE_MYDATA_DIR']\n"
        "print('READ', open(os.path.join(d, 'sub', 'x.txt')).read().strip())\n"
        "try:\n    open(os.path.join(d, 'sub', 'x.txt'), 'w').write('oops')\n    print('WROTE')\n"
        "except OSError as exc:\n    print('REFUSED', exc.errno)\n"
    )
    proj = _project(tmp_path, {"read.py": reader})
    ray_grid("run", "--backend", "ray", "--name", "ds", "--datastore_name", "mydata", "read.py",
             cwd=proj)  # fmt: skip
    data = ray_grid.wait("ds", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], data
    log = ray_grid("logs", "ds").stdout
    assert "READ hello data" in log and "REFUSED" in log and "WROTE" not in log, log
    stored = ray_grid.home / "datastores" / "mydata" / "1" / "files" / "sub" / "x.txt"
    assert stored.read_text() == "hello data\n"


def test_only_explicit_values_and_the_allow_list_reach_a_node(ray_grid, tmp_path):  # type: ignore[no-untyped-def]
    """As for Docker: a node never gets the submitting shell's secrets unasked."""
    show = (
        "import os\nfor k in ('GRIDRUN_TEST_SECRET', 'HTTPS_PROXY', 'LC_TIME', 'WANDB_MODE',"
        " 'FROM_FILE'):\n    print('ENV', k, os.environ.get(k))\n"
    )
    proj = _project(tmp_path, {"show.py": show, "vars.env": "FROM_FILE=filed\n"})
    ray_grid.env.update(
        GRIDRUN_TEST_SECRET="s3cr3t", HTTPS_PROXY="http://proxy.test:3128", LC_TIME="C.UTF-8"
    )
    ray_grid("run", "--backend", "ray", "--name", "envs", "--env", "WANDB_MODE=offline",
             "--env_file", "vars.env", "show.py", cwd=proj)  # fmt: skip
    data = ray_grid.wait("envs", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"], data
    log = ray_grid("logs", "envs").stdout
    assert "ENV GRIDRUN_TEST_SECRET None" in log, log
    assert "ENV HTTPS_PROXY http://proxy.test:3128" in log and "ENV LC_TIME C.UTF-8" in log
    assert "ENV WANDB_MODE offline" in log and "ENV FROM_FILE filed" in log
    names = data["environment"]
    assert names["explicit"] == ["FROM_FILE", "WANDB_MODE"]
    assert {"FROM_FILE", "HTTPS_PROXY", "LC_TIME", "WANDB_MODE"} <= set(names["passed"])
    assert not {"GRIDRUN_TEST_SECRET", "PATH", "HOME"} & set(names["passed"]), names


def test_the_dashboard_address_form_runs_end_to_end(ray_grid, ray_cluster, tmp_path):  # type: ignore[no-untyped-def]
    """``--ray_address http://host:8265``, the address Ray Jobs' own tools take."""
    proj = _project(tmp_path, sleep=0)
    ray_grid.env.pop("RAY_ADDRESS")
    url = ray_cluster.dashboard_url
    assert url.startswith("http://")
    out = ray_grid("run", "--backend", "ray", "--ray_address", url, "--name", "viadash",
                   "train.py", "--x", "[1, 2]", cwd=proj)  # fmt: skip
    assert "Traceback" not in out.stderr
    data = ray_grid.wait("viadash", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"] * 2, data
    for e in data["experiments"]:
        assert "argv ['train.py', '--x'" in ray_grid("logs", e["name"]).stdout
        assert e["node"], e
    # The run's driver is a job of that cluster, found through the same address.
    from ray.job_submission import JobSubmissionClient

    jobs = JobSubmissionClient(url).list_jobs()
    drivers = [
        j for j in jobs if (j.metadata or {}).get("gridrun_coordinator", "").count("viadash")
    ]
    assert drivers, [j.metadata for j in jobs]
    # A dashboard nobody serves is one line naming it.
    bad = ray_grid("run", "--backend", "ray", "--ray_address", "http://127.0.0.1:9",
                   "train.py", cwd=proj, check=False)  # fmt: skip
    assert bad.returncode != 0 and "http://127.0.0.1:9" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr


FAKE_JULIA = '#!/bin/bash\necho "fake julia argv: $*"\ns="$1"\nshift\nexec bash "$s" "$@"\n'


def test_a_julia_script_runs_with_the_nodes_julia_or_says_it_has_none(ray_grid, tmp_path):  # type: ignore[no-untyped-def]
    """A ``.jl`` script on Ray: no virtualenv on the node, ``julia`` from its PATH.

    Julia cannot be installed here (no package, julialang.org unreachable), so a
    stand-in ``julia`` (prints its arguments, runs the file's lines as bash) is put on
    the node's PATH with ``--env PATH=...``: the interpreter is the one boundary faked.
    """
    bin_dir = tmp_path / "julia-bin"
    bin_dir.mkdir()
    (bin_dir / "julia").write_text(FAKE_JULIA)
    (bin_dir / "julia").chmod(0o755)
    proj = _project(tmp_path, {"train.jl": 'echo "hello from julia: $*"\n'})
    path = f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"
    ray_grid("run", "--backend", "ray", "--name", "jl", "--env", f"PATH={path}",
             "train.jl", "--n", "[1, 2]", cwd=proj)  # fmt: skip
    data = ray_grid.wait("jl", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["succeeded"] * 2, data
    for i, e in enumerate(data["experiments"]):
        log = ray_grid("logs", e["name"]).stdout
        assert f"fake julia argv: train.jl --n {i + 1}" in log, log
        assert f"hello from julia: --n {i + 1}" in log, log
        assert "no Python environment" in ray_grid("logs", "--show-build-logs", e["name"]).stdout
    # Without it, the node has no julia: the experiment ends at once, saying so.
    ray_grid("run", "--backend", "ray", "--name", "nojl", "train.jl", cwd=proj)
    data = ray_grid.wait("nojl", timeout=600)
    assert [e["status"] for e in data["experiments"]] == ["failed"], data
    assert data["experiments"][0]["exit_code"] == 127, data
    assert "no julia on the PATH of Ray node" in ray_grid("logs", "nojl").stdout
