"""Reproduction 1: experiments got the environment of whichever shell started the agent.

Shell 1 ran ``SECRET_A=alpha grid run e.py``; shell 2 then ran ``env -u SECRET_A
SECRET_B=beta grid run e.py`` and its run printed ``SECRET_A=alpha SECRET_B=None``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gridrun import runenv
from gridrun.errors import UsageError

SCRIPT = """\
import os
print("SEEN", {k: os.environ.get(k) for k in ("SECRET_A", "SECRET_B", "FROM_FLAG",
      "FROM_FILE", "OMP_NUM_THREADS")})
"""


def _seen(out: str) -> dict:
    import ast

    line = next(x for x in out.splitlines() if "SEEN " in x)
    return ast.literal_eval(line.split("SEEN ", 1)[1])


def test_each_run_gets_its_own_shells_environment(grid, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "e.py").write_text(SCRIPT)
    shell1 = dict(grid.env, SECRET_A="alpha")
    shell1.pop("SECRET_B", None)
    shell2 = {k: v for k, v in grid.env.items() if k != "SECRET_A"}
    shell2.update(SECRET_B="beta", OMP_NUM_THREADS="3")
    (project / "vars.env").write_text("# comment\nexport FROM_FILE='from file'\n")

    first = type(grid)(grid.home, shell1)  # starts the agent with SECRET_A in its env
    one = first("run", "--name", "one", "--follow", "e.py", cwd=project).stdout
    two = type(grid)(grid.home, shell2)(
        "run", "--name", "two", "--env", "FROM_FLAG=x=1", "--env_file", "vars.env",
        "--follow", "e.py", cwd=project,
    ).stdout  # fmt: skip
    assert _seen(one)["SECRET_A"] == "alpha" and _seen(one)["SECRET_B"] is None
    seen = _seen(two)
    assert seen["SECRET_A"] is None, "the agent's (shell 1's) environment leaked"
    assert seen["SECRET_B"] == "beta"
    assert seen["FROM_FLAG"] == "x=1" and seen["FROM_FILE"] == "from file"
    assert seen["OMP_NUM_THREADS"] == "3"  # the shell's choice beats the default cap

    # Recorded owner-only with the run; never in grid.db, job.json or -o json.
    path = grid.home / "runs" / "two" / "environment.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["explicit"] == {
        "FROM_FLAG": "x=1",
        "FROM_FILE": "from file",
    }
    for f in grid.home.glob("grid.db*"):
        assert b"beta" not in f.read_bytes() and b"from file" not in f.read_bytes()
    for f in (grid.home / "experiments").rglob("job.json"):
        assert "beta" not in f.read_text()
    shown = first("-o", "json", "status", "two").stdout
    assert "beta" not in shown and "from file" not in shown
    # ... but the names are there, so a user can check what the run got.
    names = json.loads(shown)["environment"]
    assert names["explicit"] == ["FROM_FILE", "FROM_FLAG"]
    assert {"SECRET_B", "FROM_FLAG", "OMP_NUM_THREADS", "PATH"} <= set(names["passed"])
    assert "SECRET_A" not in names["passed"]
    history = json.loads(first("-o", "json", "history").stdout)
    assert [r["environment"]["explicit"] for r in history if r["name"] == "two"] == [
        ["FROM_FILE", "FROM_FLAG"]
    ]
    # grid delete takes the record with the run.
    first("delete", "run", "two")
    assert not path.exists()


def test_bad_env_options_are_one_line_errors(grid, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "e.py").write_text(SCRIPT)
    for args, text in (
        (["--env", "NOEQUALS"], "is not KEY=VALUE"),
        (["--env", "1BAD=x"], "Invalid environment variable name '1BAD'"),
        (["--env_file", "missing.env"], "cannot be read"),
    ):
        out = grid("run", *args, "e.py", cwd=project, check=False)
        assert out.returncode != 0 and text in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert not (grid.home / "runs").exists() or not any((grid.home / "runs").iterdir())


@pytest.mark.unit
def test_containers_get_only_explicit_values_and_the_allow_list(tmp_path: Path) -> None:
    shell = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "HTTPS_PROXY": "http://proxy:3128",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    runenv.save(tmp_path, "r", shell, {"WANDB_MODE": "offline"})
    assert runenv.container_environment(tmp_path, "r") == {
        "HTTPS_PROXY": "http://proxy:3128",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "WANDB_MODE": "offline",
    }
    assert runenv.local_environment(tmp_path, "r")["AWS_SECRET_ACCESS_KEY"] == "s3cr3t"
    # What -o json shows: names by the backend's rule, never a value.
    assert runenv.names(tmp_path, "r", "docker") == {
        "passed": ["HTTPS_PROXY", "LC_ALL", "PYTHONUNBUFFERED", "WANDB_MODE"],
        "explicit": ["WANDB_MODE"],
    }
    assert runenv.names(tmp_path, "r", "ray") == runenv.names(tmp_path, "r", "docker")
    local = runenv.names(tmp_path, "r", "local")
    assert local is not None and "AWS_SECRET_ACCESS_KEY" in local["passed"]
    assert runenv.names(tmp_path, "old", "local") is None
    # A run recorded before this existed gets a neutral environment, not the agent's.
    os.environ["GRIDRUN_TEST_AGENT_ONLY"] = "1"
    try:
        assert "GRIDRUN_TEST_AGENT_ONLY" not in runenv.local_environment(tmp_path, "old")
    finally:
        del os.environ["GRIDRUN_TEST_AGENT_ONLY"]


@pytest.mark.unit
def test_env_file_syntax(tmp_path: Path) -> None:
    f = tmp_path / "a.env"
    f.write_text('A=1\nexport B="two words"\n\n# c\nC=\n')
    assert runenv.read_env_file(f) == {"A": "1", "B": "two words", "C": ""}
    f.write_text("oops\n")
    with pytest.raises(UsageError, match="line 1 is not KEY=VALUE"):
        runenv.read_env_file(f)
