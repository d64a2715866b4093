"""The Slurm backend's pure parts: its sbatch script, Slurm's JSON, its settings.

The sbatch arguments and batch script are compared with recorded files
(``expected/``); ``squeue``/``sinfo`` JSON was recorded from Debian 12's Slurm 22.05
running the test cluster (``data/``), a node taken down mid-job included.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gridrun.backends.slurm.script import array_args, array_script, batch_script, sbatch_args
from gridrun.backends.slurm.settings import SlurmSettings, parse_section, resolve
from gridrun.backends.slurm.squeue import parse_capacity, parse_jobs
from gridrun.errors import ConfigError, UsageError
from gridrun.specs import Job

pytestmark = pytest.mark.unit

HERE = Path(__file__).parent
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
    script = batch_script(job, "/opt/venv/bin/python", Path("/home/u/.grid"))
    _compare("batch-gpu.sh", script)


def test_a_cpu_job_asks_for_no_gres_partition_or_time() -> None:
    args = sbatch_args(_job(cpus=1.0, memory=None, gpus=0), SlurmSettings())
    _compare("sbatch-cpu.txt", "\n".join(args) + "\n")
    assert not [a for a in args if a.startswith(("--gres", "--partition", "--time", "--mem"))]
    assert "--no-requeue" in args and "--open-mode=append" in args


def test_a_path_with_spaces_and_quotes_survives_the_batch_script() -> None:
    exp = Path("/tmp/we ird 'quo\"ted'/experiments/e")
    script = batch_script(_job(exp_dir=exp), "/opt/py thon/bin/python", Path("/tmp/we ird"))
    import shlex

    line = script.splitlines()[-1]
    assert shlex.split(line)[1:] == [
        "/opt/py thon/bin/python", "-m", "gridrun.backends.slurm.task",
        str(exp / "slurm-job.json"),
    ]  # fmt: skip


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
                          Path("/home/u/.grid"), "spiffy-sunfish-821")  # fmt: skip
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
