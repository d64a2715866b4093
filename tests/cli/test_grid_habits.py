"""A Grid user's habits through the ``grid`` CLI: typos, Grid's flags, bad values, dry runs.

Refusals are checked in-process with click's CliRunner (``cli``), which runs the same
command objects and error printing as the real process but costs no interpreter start
per case; what has to run for real (a submission, logs, exact stderr of the process)
uses the ``grid`` subprocess fixture.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli_helpers import assert_one_line_error
from gridrun.cli import cli as grid_cli


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "argecho"
    p.mkdir()
    (p / "argecho.py").write_text("import sys\nprint('Argument List:', sys.argv)\n")
    return p


def nothing_recorded(grid) -> None:
    assert grid.json("history") == []


def nothing_recorded_in(cli: CLI) -> None:
    assert json.loads(cli("-o", "json", "history").stdout) == []


CLI = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(grid_home: Path, project: Path, monkeypatch: pytest.MonkeyPatch) -> CLI:
    """``grid ARGS`` in-process, in the project folder; a CompletedProcess-like result."""
    monkeypatch.chdir(project)
    monkeypatch.setenv("COLUMNS", "250")

    def invoke(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = CliRunner().invoke(grid_cli, list(args), catch_exceptions=False, prog_name="grid")
        proc = subprocess.CompletedProcess(
            list(args), result.exit_code, result.stdout, result.stderr
        )
        if check:
            assert proc.returncode == 0, proc
        return proc

    return invoke


# ------------------------------------------------------------------ option typos
@pytest.mark.unit
@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("--cpu", "--cpus"),
        ("--gpu", "--gpus"),
        ("--follw", "--follow"),
        ("--dry-run", "--dry_run"),
        ("--dryrun", "--dry_run"),
        ("--instance-type", "--instance_type"),
        ("--instancetype", "--instance_type"),
        ("--use-spot", "--use_spot"),
        ("--framwork", "--framework"),
        ("--disksize", "--disk_size"),
        ("--grid_cpu", "--grid_cpus"),
        ("--grid_instancetype", "--grid_instance_type"),
        ("--strategie", "--strategy"),
        ("--nmae", "--name"),
    ],
)
def test_option_typo_before_the_script_is_named_with_a_suggestion(
    cli: CLI, typo: str, meant: str
) -> None:
    proc = cli("run", typo, "2", "argecho.py")
    assert proc.stderr.strip() == f"Error: No such option '{typo}'. Did you mean '{meant}'?"
    assert proc.returncode == 2


def test_option_typo_in_a_real_process(grid, project: Path) -> None:
    proc = grid("run", "--cpu", "2", "main.py", cwd=project, check=False)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == "Error: No such option '--cpu'. Did you mean '--cpus'?\n"
    nothing_recorded(grid)


@pytest.mark.unit
def test_unknown_option_without_a_near_one(cli: CLI) -> None:
    proc = cli("run", "--xyzzy", "argecho.py")
    assert_one_line_error(proc, "No such option '--xyzzy'.", "grid run --help")


@pytest.mark.unit
def test_typo_with_equals_and_after_valid_options(cli: CLI) -> None:
    proc = cli("run", "--cpus", "1", "--memry=1G", "argecho.py")
    assert proc.stderr.strip() == "Error: No such option '--memry'. Did you mean '--memory'?"


def test_arguments_after_the_script_are_untouched(cli: CLI, grid_home: Path, project: Path) -> None:
    proc = cli("run", "--dry_run", "--cpus", "1", "argecho.py", "--cpu", "2", "--follw", "-x")
    assert proc.stdout.strip() == "exp0: python argecho.py --cpu 2 --follw -x"


def test_double_dash_still_separates(cli: CLI, grid_home: Path, project: Path) -> None:
    proc = cli("run", "--dry_run", "--cpus", "1", "argecho.py", "--", "--name", "x")
    assert proc.stdout.strip() == "exp0: python argecho.py --name x"


def test_other_commands_use_grid_wording_too(grid) -> None:
    proc = grid("logs", "--folow", "x", check=False)
    assert proc.stderr.strip() == "Error: No such option '--folow'. Did you mean '--follow'?"
    proc = grid("--verson", check=False)
    assert proc.stderr.strip() == "Error: No such option '--verson'. Did you mean '--version'?"


def test_version(grid) -> None:
    from gridrun import __version__

    proc = grid("--version")
    assert proc.stdout.strip() == f"gridrun, version {__version__}"


# ------------------------------------------------------------------ Grid's flags
@pytest.mark.parametrize("spelling", ["--instance_type", "--grid_instance_type"])
def test_instance_type_sizes_experiments(grid, project: Path, spelling: str) -> None:
    proc = grid("run", spelling, "t2.medium", "argecho.py", cwd=project)
    assert (
        "NOTE --instance_type t2.medium: each experiment gets 2 CPUs, 4 GiB of this machine."
        in proc.stderr
    )
    assert "Neither a CPU or GPU" not in proc.stderr
    assert "instance_type:           t2.medium" in proc.stdout
    (run,) = grid.json("history")
    assert run["instance_type"] == "t2.medium"
    (exp,) = run["experiments"]
    assert exp["cpus"] == 2 and exp["gpus"] == 0 and exp["memory"] == 4 * 2**30
    grid.wait(run["name"])


def test_explicit_resources_win_over_the_instance_type(grid, project: Path) -> None:
    proc = grid("run", "--instance_type", "c5.large", "--cpus", "1", "argecho.py", cwd=project)
    assert "--cpus given, and kept" in proc.stderr
    (run,) = grid.json("history")
    assert run["experiments"][0]["cpus"] == 1
    assert run["experiments"][0]["memory"] == 4 * 2**30


@pytest.mark.parametrize("dry", [False, True])
@pytest.mark.parametrize(
    ("itype", "problem"),
    [
        ("p3.2xlarge", "asks for 8 CPUs but this machine has 4"),
        ("m5.24xlarge", "asks for 96 CPUs but this machine has 4"),
        ("g4dn.xlarge", "asks for 1 GPU(s) but this machine has 0"),
    ],
)
def test_instance_type_the_machine_can_never_fit_is_refused(
    cli: CLI, grid_home: Path, project: Path, itype: str, problem: str, dry: bool
) -> None:
    # A fixed capacity, so the test means the same on any machine.
    (grid_home / "config.yaml").write_text(
        "agent_idle_seconds: 5\ncapacity:\n  cpus: 4\n  memory: 16Gi\n  gpus: 0\n"
    )
    args = ["run", *(["--dry_run"] if dry else []), "--instance_type", itype, "argecho.py"]
    proc = cli(*args)
    assert_one_line_error(proc, f"(--instance_type {itype}:", problem)
    nothing_recorded_in(cli)


@pytest.mark.unit
def test_unknown_instance_type_suggests(cli: CLI, grid_home: Path, project: Path) -> None:
    proc = cli("run", "--instance_type", "p3.2xlarg", "argecho.py")
    assert_one_line_error(proc, "Unknown instance type 'p3.2xlarg'", "'p3.2xlarge'")


@pytest.mark.parametrize("spelling", ["--use_spot", "--grid_use_spot"])
def test_use_spot_is_recorded_with_a_note(grid, project: Path, spelling: str) -> None:
    proc = grid("run", "--cpus", "1", spelling, "argecho.py", cwd=project)
    assert "NOTE --use_spot: no spot machines here" in proc.stderr
    assert "use_spot:                True" in proc.stdout
    (run,) = grid.json("history")
    assert run["use_spot"] is True
    spec = _spec(grid, run["name"])
    assert spec["use_spot"] is True and spec["auto_resume"] is True


@pytest.mark.parametrize("spelling", ["--framework", "--grid_framework"])
def test_framework_is_noted_on_local(
    cli: CLI, grid_home: Path, project: Path, spelling: str
) -> None:
    proc = cli("run", "--dry_run", "--cpus", "1", spelling, "lightning", "argecho.py")
    assert "NOTE --framework lightning: the local backend installs what the script imports" in (
        proc.stderr
    )


@pytest.mark.unit
def test_framework_julia_needs_a_julia_script(cli: CLI, grid_home: Path, project: Path) -> None:
    """Julia runs are tested in test_julia.py; a Python script under Julia's flag is refused."""
    proc = cli("run", "--framework", "julia", "argecho.py")
    assert_one_line_error(proc, "--framework julia runs Julia (.jl) scripts", "argecho.py")
    proc = cli("run", "--framework", "jax", "argecho.py")
    assert_one_line_error(proc, "'--framework'", "jax")


@pytest.mark.parametrize("spelling", ["--disk_size", "--grid_disk_size"])
def test_disk_size_is_noted(cli: CLI, grid_home: Path, project: Path, spelling: str) -> None:
    proc = cli("run", "--dry_run", "--cpus", "1", spelling, "200", "argecho.py")
    assert "NOTE --disk_size 200: experiments use this machine's disk" in proc.stderr
    proc = cli("run", spelling, "0", "argecho.py")
    assert_one_line_error(proc, "--disk_size", "positive")


def test_the_tutorial_command_line(grid, project: Path) -> None:
    """``grid run --instance_type t2.medium --use_spot argecho.py``, from the README."""
    proc = grid(
        "run",
        "--instance_type",
        "t2.medium",
        "--use_spot",
        "argecho.py",
        "--arg1",
        "1",
        cwd=project,
    )
    name = json.loads(grid("-o", "json", "history").stdout)[0]["name"]
    assert f"grid_name:               {name}" in proc.stdout
    grid.wait(name)
    assert "Argument List: ['argecho.py', '--arg1', '1']" in grid("logs", name).stdout


@pytest.mark.parametrize(
    ("grid_spelling", "value"),
    [
        ("--grid_cpus", "1"),
        ("--grid_gpus", "1"),
        ("--grid_memory", "1G"),
        ("--grid_name", "spelled-2021"),
        ("--grid_strategy", "grid_search"),
    ],
)
def test_2021_spellings(
    cli: CLI, grid_home: Path, project: Path, grid_spelling: str, value: str
) -> None:
    # A machine that declares one GPU (config.yaml capacity), so --grid_gpus 1 fits.
    (grid_home / "config.yaml").write_text("capacity:\n  gpus: 1\n")
    proc = cli("run", "--dry_run", grid_spelling, value, "argecho.py")
    assert proc.stdout.strip() == "exp0: python argecho.py"


# ------------------------------------------------------------------ numeric options
@pytest.mark.unit
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--cpus", "nan"),
        ("--cpus", "inf"),
        ("--cpus", "-inf"),
        ("--cpus", "0"),
        ("--cpus", "-1"),
        ("--gpus", "-1"),
        ("--gpus", "0"),
        ("--grid_gpus", "0"),
        ("--gpus", "nan"),
        ("--gpus", "1.5"),
        ("--memory", "0"),
        ("--memory", "-1G"),
        ("--memory", "nan"),
        ("--memory", "inf"),
        ("--grid_cpus", "nan"),
    ],
)
@pytest.mark.parametrize("dry", [False, True])
def test_bad_numbers_name_the_option(
    cli: CLI, grid_home: Path, project: Path, option: str, value: str, dry
) -> None:
    args = ["run", *(["--dry_run"] if dry else []), option, value, "argecho.py"]
    proc = cli(*args)
    base = option.replace("grid_", "")
    assert_one_line_error(proc, f"'{base}'")
    assert "already exists" not in proc.stderr
    nothing_recorded_in(cli)


@pytest.mark.unit
@pytest.mark.parametrize("option", ["--gpus", "--grid_gpus"])
@pytest.mark.parametrize("dry", [False, True])
def test_gpus_zero_on_the_command_line_is_refused(
    cli: CLI, grid_home: Path, project: Path, option: str, dry: bool
) -> None:
    """Leaving --gpus out means no GPU, so a typed 0 is refused with that hint."""
    proc = cli("run", *(["--dry_run"] if dry else []), option, "0", "argecho.py")
    assert_one_line_error(proc, "'--gpus'", "got 0", "Leave it out to run on CPUs only.")
    nothing_recorded_in(cli)


def test_gpus_zero_in_a_grid_yaml_and_the_default_still_work(grid, project: Path) -> None:
    """``compute.train.gpus: 0`` is common in Grid's configs: it stays valid."""
    (project / "grid.yml").write_text("compute:\n  train:\n    cpus: 1\n    gpus: 0\n")
    dry = grid("run", "--dry_run", "--config", "grid.yml", "argecho.py", cwd=project)
    assert dry.stdout.strip() == "exp0: python argecho.py"
    proc = grid("run", "--config", "grid.yml", "--name", "yaml-zero", "argecho.py", cwd=project)
    assert re.search(r"^gpus: +0$", proc.stdout, re.M), proc.stdout
    proc = grid("run", "--cpus", "1", "--name", "no-gpus", "argecho.py", cwd=project)
    assert re.search(r"^gpus: +0$", proc.stdout, re.M), proc.stdout
    assert {r["name"] for r in grid.json("history")} == {"yaml-zero", "no-gpus"}


def test_name_clash_only_when_the_name_exists(grid, project: Path) -> None:
    grid("run", "--cpus", "1", "--name", "taken", "argecho.py", cwd=project)
    for dry in ([], ["--dry_run"]):
        proc = grid(
            "run", *dry, "--cpus", "1", "--name", "taken", "argecho.py", cwd=project, check=False
        )
        assert_one_line_error(proc, "A run named 'taken' already exists.")
    proc = grid("run", "--cpus", "1", "--name", "free", "argecho.py", cwd=project)
    assert proc.returncode == 0
    assert [r["name"] for r in grid.json("history")] == ["free", "taken"]


@pytest.mark.unit
def test_other_integrity_errors_are_not_name_clashes(tmp_path: Path) -> None:
    """NaN reaches SQLite as NULL: a NOT NULL failure, which is no name clash."""
    from gridrun.errors import StateError
    from gridrun.store.db import Store
    from spec_helpers import experiments, run_spec

    store = Store(tmp_path / "grid.db")
    with pytest.raises(StateError, match=r"experiments\.cpus") as info:
        store.create_run(
            name="fresh",
            backend="local",
            spec=run_spec(),
            env_key="k",
            experiments=experiments([], cpus=float("nan")),
        )
    assert "already exists" not in str(info.value)
    assert store.run_names() == set()


# ------------------------------------------------------------------ sweeps
MALFORMED = [
    ("[0.1 0.01]", "missing comma"),
    ("[]", "empty list"),
    ("{'a': 1}", "a dict is not a sweep value"),
    ("[1, 2", "unclosed list"),
    ("[[1]", "unclosed list"),
    ("[a] [b]", "unexpected text"),
    ("range(1, 10", "unclosed call"),
    ("uniform(0, 1)", "uniform() takes 3 arguments"),
    ("rnage(1, 5)", "not range()"),
]


@pytest.mark.unit
@pytest.mark.parametrize("dry", [False, True])
@pytest.mark.parametrize(("value", "problem"), MALFORMED)
def test_malformed_sweep_is_refused(
    cli: CLI, grid_home: Path, project: Path, value: str, problem: str, dry
) -> None:
    args = ["run", *(["--dry_run"] if dry else []), "--cpus", "1", "argecho.py", "--lr", value]
    proc = cli(*args)
    assert_one_line_error(proc, f'--lr "{value}"', problem, "backslash")
    nothing_recorded_in(cli)


def test_escaped_value_reaches_the_script_literally(grid, project: Path) -> None:
    proc = grid("run", "--cpus", "1", "argecho.py", "--lr", "\\[0.1 0.01]", cwd=project)
    assert "experiments:             1" in proc.stdout
    name = grid.json("history")[0]["name"]
    grid.wait(name)
    assert "'--lr', '[0.1 0.01]'" in grid("logs", name).stdout


@pytest.mark.parametrize("extra", [[], ["--dry_run"], ["--ignore_warnings"]])
def test_huge_sweep_is_refused_at_once_with_its_count(grid, project: Path, extra) -> None:
    proc = grid(
        "run",
        *extra,
        "--cpus",
        "1",
        "argecho.py",
        "--i",
        "range(10**12)",
        cwd=project,
        check=False,
        timeout=20,
    )
    assert_one_line_error(
        proc, "1,000,000,000,000 experiments", "more than max_experiments (10,000)"
    )
    assert "MemoryError" not in proc.stderr
    nothing_recorded(grid)


def test_max_experiments_from_config(cli: CLI, grid_home: Path, project: Path) -> None:
    (grid_home / "config.yaml").write_text("agent_idle_seconds: 5\nmax_experiments: 5\n")
    proc = cli("run", "--dry_run", "--cpus", "1", "argecho.py", "--i", "range(6)")
    assert_one_line_error(proc, "6 experiments", "max_experiments (5)")
    proc = cli("run", "--dry_run", "--cpus", "1", "argecho.py", "--i", "range(5)")
    assert len(proc.stdout.splitlines()) == 5
    (grid_home / "config.yaml").write_text("max_experiments: 0\n")
    proc = cli("run", "--dry_run", "argecho.py")
    assert_one_line_error(proc, "max_experiments", "positive integer")


# ------------------------------------------------------------------ dry-run parity
def _parity_cases(project: Path) -> list[list[str]]:
    (project / "grid.yml").write_text("compute:\n  train:\n    cpus: .nan\n")
    return [
        ["--gpus", "1"],
        ["--name", "Bad_Name"],
        ["--name", "ends-exp1"],
        ["--cpus", "64"],
        ["--memory", "100Ti"],
        ["--cpus", "nan"],
        ["--instance_type", "p3.2xlarge"],
        ["--instance_type", "nope.large"],
        ["--framework", "julia"],
        ["--dockerfile", "Dockerfile.missing"],
        ["--backend", "nope"],
        ["--datastore_name", "no-such-data"],
        ["--config", "grid.yml"],
        ["--strategy", "random_search", "--num_trials", "5", "argecho.py", "--lr", "[1, 2]"],
        ["argecho.py", "--lr", "[0.1 0.01]"],
        ["argecho.py", "--i", "range(10**5)"],
    ]


def test_dry_run_refuses_what_a_submission_refuses(
    cli: CLI, grid_home: Path, project: Path
) -> None:
    (grid_home / "config.yaml").write_text(
        "agent_idle_seconds: 5\ncapacity:\n  cpus: 2\n  memory: 8Gi\n  gpus: 0\n"
    )
    for case in _parity_cases(project):
        args = case if "argecho.py" in case else [*case, "argecho.py"]
        real = cli("run", *args)
        dry = cli("run", "--dry_run", *args)
        assert real.returncode != 0, (case, real.stdout)
        assert (dry.returncode, dry.stderr) == (real.returncode, real.stderr), case
        assert_one_line_error(dry)
    nothing_recorded_in(cli)


def test_dry_run_checks_the_docker_engine(grid, project: Path) -> None:
    env = dict(grid.env, DOCKER_HOST="unix:///nonexistent/docker.sock")
    import subprocess

    procs = [
        subprocess.run(
            [sys.executable, "-m", "gridrun", "run", *dry, "--backend", "docker", "argecho.py"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        for dry in ([], ["--dry_run"])
    ]
    assert procs[0].returncode == procs[1].returncode != 0
    assert procs[0].stderr == procs[1].stderr and "Docker" in procs[0].stderr


# ------------------------------------------------------------------ run YAML
def _config(project: Path, text: str) -> str:
    (project / "grid.yml").write_text(text)
    return "grid.yml"


def test_yaml_machine_keys_are_mapped(cli: CLI, grid_home: Path, project: Path) -> None:
    cfg = _config(
        project,
        "compute:\n  provider:\n    vendor: aws\n    credentials: cc-qdfdk\n"
        "  train:\n    instance: t2.medium\n    use_spot: true\n    disk_size: 200\n"
        "    framework: torch\n"
        "hyper_params:\n  settings:\n    strategy: grid_search\n  params:\n    lr: [0.1, 0.01]\n",
    )
    proc = cli("run", "--dry_run", "--config", cfg, "argecho.py")
    for note in (
        "NOTE compute.provider: gridrun runs on this machine",
        "NOTE --instance_type t2.medium: each experiment gets 2 CPUs, 4 GiB",
        "NOTE --use_spot:",
        "NOTE --framework torch:",
        "NOTE --disk_size 200:",
    ):
        assert note in proc.stderr
    assert proc.stdout.splitlines() == [
        "exp0: python argecho.py --lr 0.1",
        "exp1: python argecho.py --lr 0.01",
    ]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("yaml_text", "needles"),
    [
        (
            "compute:\n  train:\n    actions:\n      on_image_build: [make]\n",
            ["compute.train.actions"],
        ),
        ("compute:\n  train:\n    environment:\n      A: b\n", ["compute.train.environment"]),
        ("compute:\n  train:\n    scratch_mount_path: /tmp/x\n", ["needs --scratch_size"]),
        ("compute:\n  train:\n    cpu: 1\n", ["Unknown key(s) cpu", "cpus"]),
        ("compute:\n  trian:\n    cpus: 1\n", ["Unknown key(s) trian", "train"]),
        ("hyper_params:\n  setings: {}\n", ["Unknown key(s) setings", "hyper_params"]),
        ("hyper_params:\n  settings:\n    stratgy: x\n", ["stratgy", "hyper_params.settings"]),
        (
            "hyper_params:\n  settings:\n    strategy_options:\n      trails: 2\n",
            ["trails", "strategy_options"],
        ),
        ("hyper_params:\n  params:\n    lr: '[0.1 0.01]'\n", ['--lr "[0.1 0.01]"', "comma"]),
        ("run: train.py\n", ["Unknown key(s) run"]),
        (
            "compute:\n  train:\n    instance: t2.medium\n    instance_type: t2.large\n",
            ["both instance and instance_type"],
        ),
    ],
)
def test_yaml_keys_are_refused_in_one_line(
    cli: CLI, grid_home: Path, project: Path, yaml_text: str, needles
) -> None:
    cfg = _config(project, yaml_text)
    for dry in ([], ["--dry_run"]):
        proc = cli("run", *dry, "--config", cfg, "argecho.py")
        assert_one_line_error(proc, *needles)
    nothing_recorded_in(cli)


def _spec(grid, name: str) -> dict:
    conn = sqlite3.connect(grid.home / "grid.db")
    try:
        (spec,) = conn.execute("SELECT spec FROM runs WHERE name = ?", (name,)).fetchone()
    finally:
        conn.close()
    return json.loads(spec)


# ------------------------------------------------------------------ --follow summary
def _summary(stdout: str) -> tuple[str, str]:
    """(the summary joined, its last line): wrapped to 80 columns, the pointer last."""
    lines = stdout.rstrip("\n").splitlines()
    start = max(i for i, line in enumerate(lines) if " ended: " in line)
    assert all(len(line) <= 80 for line in lines[start:]), lines[start:]
    return " ".join(lines[start:]), lines[-1]


def test_follow_ends_with_a_summary_in_80_columns(grid, project: Path) -> None:
    (project / "exits.py").write_text(
        "import sys\nprint('code', sys.argv[2])\nsys.exit(int(sys.argv[2]))\n"
    )
    proc = grid(
        "run",
        "--cpus",
        "1",
        "--name",
        "two-ways",
        "--follow",
        "exits.py",
        "--code",
        "[0, 3]",
        cwd=project,
        check=False,
    )
    assert proc.returncode == 3
    summary, last = _summary(proc.stdout)
    assert re.fullmatch(
        r"Run two-ways ended: 1 succeeded, 1 failed, 0 stopped in 0d-\d\d:\d\d:\d\d\. "
        r"Why: `grid logs two-ways-exp1`",
        summary,
    ), proc.stdout
    assert last == "Why: `grid logs two-ways-exp1`"  # the log that explains it
    proc = grid("logs", "--follow", "two-ways-exp0")
    summary, last = _summary(proc.stdout)
    assert re.fullmatch(
        r"Experiment two-ways-exp0 ended: 1 succeeded, 0 failed, 0 stopped in 0d-\d\d:\d\d:\d\d\. "
        r"Artifacts: `grid artifacts two-ways-exp0`",
        summary,
    )
    # Its lines are short too: the time of day, not the full timestamp.
    assert re.search(r"^\[stdout\] \d\d:\d\d:\d\d code 0$", proc.stdout, re.M), proc.stdout


@pytest.mark.unit
def test_run_help_lists_grids_flags(cli: CLI) -> None:
    out = cli("run", "--help").stdout
    for opt in ("--instance_type", "--use_spot", "--framework", "--disk_size", "--grid_name"):
        assert opt in out
    proc = cli("run", "--cpus", "1")
    assert proc.returncode == 2 and proc.stderr == "Error: Missing argument 'SCRIPT'.\n"
