"""The Slurm backend's pure parts: its sbatch script, Slurm's JSON, its settings.

The sbatch arguments and batch script are compared with recorded files
(``expected/``); ``squeue``/``sinfo`` JSON was recorded from Debian 12's Slurm 22.05
running the test cluster (``data/``), a node taken down mid-job included.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gridrun.backends.slurm.script import (
    array_args,
    array_script,
    batch_script,
    runner_command,
    sbatch_args,
)
from gridrun.backends.slurm.settings import SlurmSettings, parse_section, resolve
from gridrun.backends.slurm.squeue import parse_capacity, parse_jobs
from gridrun.errors import ConfigError, UsageError
from gridrun.specs import Job

pytestmark = pytest.mark.unit

HERE = Path(__file__).parent
PACKAGE = Path("/opt/venv/lib/python3.11/site-packages/gridrun")  # where gridrun is installed
UPDATE = os.environ.get("GRIDRUN_UPDATE_EXPECTED") == "1"


def _job(**kw: object) -> Job:
    fields: dict = dict(
        run_name="spiffy-sunfish-821",
        experiment_name="spiffy-sunfish-821-exp3",
        experiment_id=4,
        env_ref="/home/u/.grid/envs/abc",
        script="train.py",
        args=["--lr", "0.1"],
        exp_dir=Path("/home/u/.grid/experiments/spiffy-sunfish-821-exp3"),
        workdir=Path("/home/u/.grid/experiments/spiffy-sunfish-821-exp3/workdir"),
        snapshot_manifest=Path("/home/u/.grid/snapshots/x.json"),
        objects_dir=Path("/home/u/.grid/objects"),
        env={"GRID_RESTART_COUNT": "0"},
        cpus=1.5,
        memory=3 * 2**30,
        gpus=2,
        stop_grace=30.0,
    )
    fields.update(kw)
    return Job(**fields)


def _compare(name: str, text: str) -> None:
    path = HERE / "expected" / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; GRIDRUN_UPDATE_EXPECTED=1 records it"


def test_the_sbatch_command_and_script_are_a_pure_function_of_the_specs() -> None:
    settings = SlurmSettings(
        partition="gpu", time="4:00:00", account="lab", extra=("--qos=normal",)
    )
    job = _job()
    text = "\n".join(sbatch_args(job, settings)) + "\n"
    _compare("sbatch-gpu.txt", text)
    assert sbatch_args(job, settings) == sbatch_args(_job(), settings)  # pure
    script = batch_script(job, "/opt/venv/bin/python", Path("/home/u/.grid"), PACKAGE)
    _compare("batch-gpu.sh", script)


def test_a_cpu_job_asks_for_no_gres_partition_or_time() -> None:
    args = sbatch_args(_job(cpus=1.0, memory=None, gpus=0), SlurmSettings())
    _compare("sbatch-cpu.txt", "\n".join(args) + "\n")
    assert not [a for a in args if a.startswith(("--gres", "--partition", "--time", "--mem"))]
    assert "--no-requeue" in args and "--open-mode=append" in args


def test_a_path_with_spaces_and_quotes_survives_the_batch_script() -> None:
    exp = Path("/tmp/we ird 'quo\"ted'/experiments/e")
    package = Path("/opt/we ird/gridrun")
    script = batch_script(
        _job(exp_dir=exp), "/opt/py thon/bin/python", Path("/tmp/we ird"), package
    )
    import shlex

    line = script.splitlines()[-1]
    assert shlex.split(line)[1:] == [
        *runner_command("/opt/py thon/bin/python", package), str(exp / "slurm-plan.bin"),
    ]  # fmt: skip
    assert runner_command("/opt/py thon/bin/python", package)[-1] == str(package)


def test_squeue_json_running_pending_and_a_node_failure() -> None:
    jobs = parse_jobs((HERE / "data" / "squeue-22.05.json").read_text())
    assert jobs["1"].state == "RUNNING" and jobs["1"].nodes == "node1" and jobs["1"].active
    assert jobs["3"].waiting and jobs["3"].reason == "Priority"
    assert not jobs["1"].preempted
    down = parse_jobs((HERE / "data" / "squeue-node-down-22.05.json").read_text())
    assert down["1"].state == "NODE_FAIL" and down["1"].preempted
    assert down["1"].reason == "NodeDown"
    assert down["4"].waiting and down["4"].reason == "Resources"


def test_squeue_json_of_later_versions_and_job_arrays() -> None:
    text = (
        '{"jobs": [{"job_id": 9, "array_job_id": {"set": true, "number": 7},'
        ' "array_task_id": {"set": true, "number": 2}, "job_state": ["PENDING"],'
        ' "state_reason": "Resources", "restart_cnt": 1,'
        ' "exit_code": {"return_code": {"set": true, "number": 0}}}]}'
    )
    (job,) = parse_jobs(text).values()
    assert job.job_id == "7_2" and job.waiting and job.preempted and job.exit_code == 0


def test_the_largest_node_of_a_partition() -> None:
    text = (HERE / "data" / "sinfo-22.05.json").read_text()
    cap, node = parse_capacity(text, None) or (None, "")
    assert cap is not None and cap.cpus == 2 and cap.memory == 4096 * 2**20 and node
    assert parse_capacity(text, "nope") is None
    gpus = '{"nodes": [{"name": "g1", "cpus": 8, "real_memory": 1000, "partitions": ["gpu"],' \
        ' "gres": "gpu:a100:2(S:0-1),gpu:t4:1"}]}'  # fmt: skip
    cap, node = parse_capacity(gpus, "gpu") or (None, "")
    assert cap is not None and len(cap.gpus) == 3 and node == "g1"


def test_settings_are_checked_key_by_key() -> None:
    s = parse_section({"partition": "gpu", "time": "1-00:00:00", "extra": ["--qos=x"]})
    assert (s.partition, s.time, s.extra) == ("gpu", "1-00:00:00", ("--qos=x",))
    with pytest.raises(ConfigError, match="Unknown key"):
        parse_section({"partitoin": "gpu"})
    assert parse_section({"repo_cache": "~/repos"}).repo_cache == str(Path("~/repos").expanduser())
    assert parse_section({}).repo_cache is None  # each node's own
    with pytest.raises(UsageError, match="not in a format Slurm takes"):
        parse_section({"time": "4 hours"})
    with pytest.raises(ConfigError, match="list of sbatch arguments"):
        parse_section({"extra": "--qos=x"})
    r = resolve({"slurm_partition": "debug", "slurm_time": "30"}, s)
    assert (r.partition, r.time) == ("debug", "30")
    with pytest.raises(UsageError, match="--slurm_partition"):
        resolve({"slurm_partition": "a b"}, s)


def test_a_sweep_is_one_job_array_reading_its_manifest() -> None:
    jobs = [_job(experiment_name=f"spiffy-sunfish-821-exp{i}") for i in range(3)]
    run_dir = Path("/home/u/.grid/runs/spiffy-sunfish-821")
    args = array_args(jobs, SlurmSettings(partition="gpu"), run_dir)
    _compare("sbatch-array.txt", "\n".join(args) + "\n")
    assert "--array=0-2" in args and f"--output={run_dir}/slurm-%A_%a.out" in args
    script = array_script(run_dir / "slurm-array-x.txt", "/opt/venv/bin/python",
                          Path("/home/u/.grid"), "spiffy-sunfish-821", PACKAGE)  # fmt: skip
    _compare("batch-array.sh", script)


def test_an_arrays_tasks_not_started_yet_wait_as_its_record_says() -> None:
    text = (
        '{"jobs": [{"job_id": 8, "array_job_id": 7, "array_task_id": 0, "job_state": "RUNNING",'
        ' "nodes": "node1", "array_task_string": ""},'
        ' {"job_id": 7, "array_job_id": 7, "array_task_id": null, "job_state": "PENDING",'
        ' "state_reason": "Resources", "array_task_string": "2-4%2"}]}'
    )
    jobs = parse_jobs(text)
    assert jobs["7_0"].active and not jobs["7_0"].waiting
    assert sorted(jobs) == ["7_0", "7_2", "7_3", "7_4"]
    assert jobs["7_3"].waiting and jobs["7_3"].reason == "Resources"


def test_the_runner_stamps_log_lines_as_gridrun_logs_does() -> None:
    """The runner formats times without ``datetime`` (a third of its start): the same
    text, to the microsecond, rounding included."""
    import random

    from gridrun.backends.slurm.runner import stamp
    from gridrun.logs import timestamp

    rng = random.Random(7)
    times = [1.5, 1796466221.0, 1796466221.455542, 1796466221.9999996, 1796466221.0000004]
    times += [rng.uniform(1e9, 2e9) for _ in range(2000)]
    for ts in times:
        assert stamp(ts) == timestamp(ts), ts


def test_the_runner_writes_json_strings_json_reads() -> None:
    import json

    from gridrun.backends.slurm.runner import _quote

    for text in ["node1", 'a"b\\c', "tab\there\nnew", "\x00\x1f", "nœud-é", ""]:
        assert json.loads(_quote(text)) == text


def test_a_plan_holds_what_the_runner_needs_and_names_what_needs_task_py(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import marshal

    from gridrun.backends.slurm.plan import needs_task, write_plan
    from gridrun.project.manifest import FileEntry, object_path, write_manifest
    from gridrun.specs import DatastoreMount

    home = tmp_path / "grid"
    objects = home / "objects"
    sha = "ab" * 32
    object_path(objects, sha).parent.mkdir(parents=True)
    object_path(objects, sha).write_text("print(1)\n")
    manifest = home / "snapshots" / "x.json"
    write_manifest(manifest, "x", {"train.py": FileEntry("train.py", sha, 9, 0o644, None, 5)})
    monkeypatch.setenv("GRID_HOME", str(home))
    exp = home / "experiments" / "r-exp0"
    job = _job(exp_dir=exp, workdir=exp / "workdir", snapshot_manifest=manifest,
               objects_dir=objects, env_ref=str(tmp_path / "env"), gpus=0)  # fmt: skip
    run_dir = home / "runs" / "r"
    exp.mkdir(parents=True)  # as the backend makes it, with the Job beside the plan
    plan = marshal.loads(write_plan(home, home / "nodes", job, run_dir).read_bytes())
    assert plan["full"] is False and plan["mode"] is None
    assert plan["argv"] == [str(tmp_path / "env" / "bin" / "python"), "train.py", "--lr", "0.1"]
    assert plan["env"]["GRID_EXPERIMENT_ID"] == "4" and plan["own"] == ["GRID_RESTART_COUNT"]
    assert plan["confine"][:2] == ["--mode", "root"] and "--pidns" in plan["confine"]
    tree = marshal.loads(Path(plan["tree"]).read_bytes())
    assert tree == [("train.py", str(object_path(objects, sha)), 0o644, 5, None)]
    # What the runner cannot do alone goes to task.py on the node.
    restart = _job(exp_dir=exp, env={"GRID_RESTART_COUNT": "1"})
    store = DatastoreMount(name="d", version=1, source=tmp_path, mount_dir="/data")
    assert needs_task(restart, run_dir).startswith("a restart")
    assert needs_task(_job(exp_dir=exp, datastores=[store]), run_dir).startswith("datastores")
    assert needs_task(_job(exp_dir=exp, scratch_bytes=1 << 20), run_dir) == "a scratch space"
    (run_dir / "slurm-origin.json").write_text("{}")
    assert needs_task(job, run_dir).startswith("a run from a repository")
    full = marshal.loads(write_plan(home, home / "nodes", restart, run_dir).read_bytes())
    assert full["full"] is True and "argv" not in full
