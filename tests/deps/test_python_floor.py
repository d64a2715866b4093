"""The oldest Python the code runs on, computed at submission and carried on EnvSpec.

A build that steps down to an older Python for an old package (envs/venv.py) never goes
below what the code's own grammar and standard-library imports need.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gridrun.deps import python_floor, resolve_dependencies
from gridrun.deps.imports import scan_project, scan_source
from gridrun.home import GridHome
from gridrun.specs import EnvSpec
from gridrun.submission import RunRequest, prepare

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("source", "floor"),
    [
        ("x = 1\nprint(x)\n", (3, 0)),
        ("name = 'a'\nprint(f'{name}')\n", (3, 6)),
        ("count: int = 0\n", (3, 6)),
        ("if (n := 3) > 2:\n    pass\n", (3, 8)),
        ("def f(a, /, b):\n    return a\n", (3, 8)),
        ("match 1:\n    case 1:\n        pass\n", (3, 10)),
        ("try:\n    pass\nexcept* ValueError:\n    pass\n", (3, 11)),
    ],
)
def test_the_grammar_a_file_needs(source: str, floor: tuple[int, int]) -> None:
    assert scan_source(source.encode()).syntax[:2] == floor


def test_the_closure_takes_its_newest_grammar_and_stdlib_modules(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("import helper\nprint(f'{helper.X}')\n")
    (tmp_path / "helper.py").write_text("if (X := 1):\n    pass\n")
    (tmp_path / "unused.py").write_text("match 1:\n    case 1:\n        pass\n")
    scan = scan_project(tmp_path, ["main.py", "helper.py", "unused.py"], "main.py")
    assert python_floor(scan) == ((3, 8), "an assignment expression (:=) in helper.py")
    (tmp_path / "main.py").write_text("import helper\nimport tomllib\n")
    scan = scan_project(tmp_path, ["main.py", "helper.py"], "main.py")
    assert python_floor(scan) == ((3, 11), "the tomllib module")


def test_optional_new_modules_do_not_raise_the_floor(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "try:\n    import tomllib\nexcept ImportError:\n    tomllib = None\n"
    )
    report = resolve_dependencies(tmp_path, ["main.py"], "main.py")
    assert report.python_min == (3, 0)


def _spec(tmp_path: Path, files: dict[str, str], **kwargs: object) -> EnvSpec:
    project = tmp_path / "project"
    project.mkdir()
    for rel, text in files.items():
        (project / rel).write_text(text)
    home = GridHome(tmp_path / "home")
    req = RunRequest(script="main.py", script_args=[], localdir=str(project), cpus=1, **kwargs)
    sub = prepare(req, home, lambda _w: None, lambda _q: True)
    env = sub.spec.env
    assert EnvSpec.from_dict(env.to_dict()) == env  # recorded with the run
    return env


def test_inferred_requirements_carry_the_oldest_python(tmp_path: Path) -> None:
    env = _spec(tmp_path, {"main.py": "import six\nprint(f'{six}')\n"})
    assert env.oldest_python == "3.6"


def test_a_python_the_user_chose_is_never_stepped(tmp_path: Path) -> None:
    env = _spec(tmp_path, {"main.py": "import six\n"}, python="3.11")
    assert env.oldest_python == ""


def test_declared_requirements_are_never_stepped(tmp_path: Path) -> None:
    env = _spec(tmp_path, {"main.py": "import six\n", "requirements.txt": "six\n"})
    assert env.oldest_python == ""
