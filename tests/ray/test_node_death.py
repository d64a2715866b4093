"""A Ray node that dies under an experiment: a preemption, through the real CLI.

The session's cluster stays whole: the node that dies is an extra worker started for
this test. Placement is made certain rather than hoped for: every experiment asks for
the custom resource ``special`` (``ray.resources`` in the config). A first run holds the
session worker's only unit; the extra node, started after, has two; so both runs under
test land on the extra node, and the restart can only run on the session worker once
the holder is released (the cluster is busy meanwhile: the restart waits, queued).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

HOLD = """
import os, sys, time
print("holding", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.2)
"""

# As a checkpointing script would: the first attempt works until its node dies, a
# restart (GRID_RESTART_COUNT > 0) resumes and finishes.
WORK = """
import os, time
print("attempt", os.environ.get("GRID_RESTART_COUNT"), "started", flush=True)
if os.environ.get("GRID_RESTART_COUNT", "0") == "0":
    time.sleep(900)
print("finished", flush=True)
"""


def _node(ray_grid, exp: str) -> str:  # type: ignore[no-untyped-def]
    """The short node id `grid status` shows for ``exp``: ``ip (id8)``."""
    data = ray_grid.json("status", exp)
    node = data["experiments"][0]["node"]
    return node.split("(")[1].rstrip(")") if node else ""


def _wait_status(ray_grid, exp: str, wanted: set[str], timeout: float) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        e = ray_grid.json("status", exp)["experiments"][0]
        if e["status"] in wanted:
            return e
        assert time.monotonic() < deadline, f"{exp} never reached {wanted}: {e}"
        time.sleep(0.5)


def test_a_node_that_dies_preempts_its_experiments(ray_grid, ray_cluster, tmp_path: Path):  # type: ignore[no-untyped-def]
    (ray_grid.home / "config.yaml").write_text(
        "stop_grace_seconds: 3\nagent_idle_seconds: 5\nray:\n  resources: {special: 1}\n"
    )
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "hold.py").write_text(HOLD)
    (proj / "work.py").write_text(WORK)
    release = tmp_path / "release"
    ray_grid("run", "--backend", "ray", "--name", "holder", "hold.py", str(release), cwd=proj)
    ray_grid.wait_for_line("holder", "holding", timeout=600)
    ids = {n["node_id"][:8]: n for n in ray_cluster.alive_nodes()}
    worker = _node(ray_grid, "holder-exp0")
    assert ids[worker]["resources_total"].get("special") == 1  # the session's worker

    extra = ray_cluster.add_worker(cpus=2, resources={"special": 2})
    try:
        doomed = {n["node_id"][:8] for n in ray_cluster.alive_nodes()} - set(ids)
        assert len(doomed) == 1, doomed
        (doomed_id,) = doomed
        ray_grid("run", "--backend", "ray", "--name", "resumed", "--auto_resume", "work.py",
                 cwd=proj)  # fmt: skip
        ray_grid("run", "--backend", "ray", "--name", "failing", "work.py", cwd=proj)
        for run in ("resumed", "failing"):
            ray_grid.wait_for_line(run, "attempt 0 started", timeout=600)
            assert _node(ray_grid, f"{run}-exp0") == doomed_id
        # Each run's record (its coordinator) is on the head node, never on the node
        # that dies under its experiments.
        head = {n["node_id"] for n in ray_cluster.alive_nodes() if n.get("is_head_node")}
        label = hashlib.sha256(str(Path(ray_grid.home).absolute()).encode()).hexdigest()[:10]
        coordinators = {
            a["name"].split("-")[2]: a["node_id"]
            for a in ray_cluster.actors()
            if a.get("class_name") == "Coordinator" and a["name"].startswith(f"gridrun-{label}-")
        }
        assert set(coordinators) == {"holder", "resumed", "failing"}, coordinators
        assert len(head) == 1 and set(coordinators.values()) == head, (coordinators, head)

        ray_cluster.kill_node(extra)

        # Without --auto_resume: failed, the reason a preemption naming the node.
        failed = _wait_status(ray_grid, "failing-exp0", {"failed", "succeeded"}, 300)
        assert failed["status"] == "failed", failed
        assert failed["ending"] == "preempted", failed
        assert failed["error"].startswith("preempted"), failed
        assert doomed_id in failed["error"] and "died" in failed["error"], failed
        assert failed["preemptions"] == 1 and failed["restarts"] == 0, failed
        assert "attempt 1" not in ray_grid("logs", "failing").stdout

        # With it: queued again at once, waiting while the cluster has no room...
        again = ray_grid.json("status", "resumed-exp0")["experiments"][0]
        assert again["status"] in ("pending", "running"), again
        assert again["preemptions"] == 1, again
        table = ray_grid("status", "resumed").stdout
        assert "Restarts" in table and "1 (1 preempted)" in table, table
        assert doomed_id in table and "died" in table, table  # "last preempted: lost: ..."
        time.sleep(3)
        assert "attempt 1" not in ray_grid("logs", "resumed").stdout  # no room yet

        # ...and run to success on the node that is left once there is.
        release.write_text("")
        done = _wait_status(ray_grid, "resumed-exp0", {"succeeded", "failed", "stopped"}, 600)
        assert done["status"] == "succeeded", done
        assert done["preemptions"] == 1 and done["restarts"] == 1, done
        assert _node(ray_grid, "resumed-exp0") == worker
        log = ray_grid("logs", "resumed").stdout
        assert "attempt 0 started" in log and "attempt 1 started" in log and "finished" in log
        table = ray_grid("status", "resumed").stdout
        assert "succeeded" in table and "1 (1 preempted)" in table, table
        assert worker in table, table
        assert ray_grid.wait("holder", timeout=120)["experiments"][0]["status"] == "succeeded"
    finally:
        release.write_text("")
        ray_cluster.remove_node(extra)


def test_a_run_outlives_the_death_of_its_driver_process(ray_grid, ray_cluster, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The run's driver process can die on its own: the run's coordinator is detached
    on the head node, so its experiments go on and are reported, and the agent ends
    the orphaned coordinator once the run is over."""
    import signal

    import psutil

    (ray_grid.home / "config.yaml").write_text("stop_grace_seconds: 3\nagent_idle_seconds: 5\n")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "hold.py").write_text(HOLD + 'print("done", flush=True)\n')
    release = tmp_path / "release"
    ray_grid("run", "--backend", "ray", "--name", "orphan", "hold.py", str(release), cwd=proj)
    ray_grid.wait_for_line("orphan", "holding", timeout=600)

    def drivers() -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "gridrun.backends.ray.driver" in cmd and "-orphan-" in cmd:
                found.append(p)
        return found

    found = drivers()  # the entrypoint, and the shell Ray may start it from
    assert found, "the run's driver process was not found"
    for p in found:
        p.send_signal(signal.SIGKILL)
    psutil.wait_procs(found, timeout=30)
    time.sleep(3)
    assert ray_grid.json("status", "orphan-exp0")["experiments"][0]["status"] == "running"

    release.write_text("")
    done = ray_grid.wait("orphan", timeout=300)["experiments"][0]
    assert done["status"] == "succeeded", done
    assert "done" in ray_grid("logs", "orphan").stdout

    # Nothing of the run is left on the cluster: its coordinator was ended too.
    deadline = time.monotonic() + 120
    while True:
        alive = ray_cluster.actors(state="ALIVE")
        left = [a for a in alive if "-orphan-" in (a.get("name") or "")]
        if not left:
            break
        assert time.monotonic() < deadline, left
        time.sleep(1)
