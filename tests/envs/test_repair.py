"""Version repair and completion inside real uv builds of wheels made on the fly.

Everything installs offline from a find-links folder (``--no-index``), so each case
is a real build whose outcome depends only on the wheels made here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from envhelpers import make_wheel, offline, run_python

from gridrun.envs.venv import build_venv, build_warnings

pytestmark = pytest.mark.slow


def test_a_module_an_installed_package_needs_but_does_not_declare_is_added(
    tmp_path: Path,
) -> None:
    # Like keras without a backend: the package installs, then its import fails with
    # "No module named six". The module is mapped to its distribution and installed.
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "gridneedy", "1.0", body="import six\n")
    make_wheel(wheels, "six", "1.0")
    lines: list[str] = []
    env = build_venv(
        tmp_path / "envs",
        "needy",
        "3.11",
        ["gridneedy"],
        lines.append,
        offline(wheels),
        best_effort=True,
        checks=["gridneedy", "gridneedy.main"],
    )
    assert run_python(env, "import gridneedy, six; print(gridneedy.VERSION, six.VERSION)") == (
        "1.0 1.0"
    )
    added = [w for w in build_warnings(env) if "added six" in w]
    assert added == [
        "Warning: inferred requirement added six: gridneedy imports six without requiring it"
    ]


def test_a_module_of_another_distribution_a_submodule_imports_is_added_not_stepped_back(
    tmp_path: Path,
) -> None:
    # Like torch.utils.tensorboard, which imports tensorboard (a distribution torch
    # does not require), and torch itself, which imports without numpy but warns
    # "Failed to initialize NumPy: No module named 'numpy'". The modules are mapped to
    # their distributions (yaml -> PyYAML) and added; the package is not stepped back to
    # its older release, which would not have them either.
    wheels = tmp_path / "wheels"
    warns = (
        "try:\n    import six\nexcept ImportError as exc:\n"
        "    import warnings\n    warnings.warn('Failed to initialize six: %s' % exc)\n"
    )
    board = {"utils/__init__.py": "", "utils/board.py": "import yaml\nWriter = yaml.Dumper\n"}
    make_wheel(wheels, "gridtorch", "1.0", body=warns, modules=board)
    make_wheel(wheels, "gridtorch", "2.0", body=warns, modules=board)
    make_wheel(wheels, "PyYAML", "6.0", package="yaml", body="Dumper = object\n")
    make_wheel(wheels, "six", "1.0")
    lines: list[str] = []
    env = build_venv(
        tmp_path / "envs",
        "board",
        "3.11",
        ["gridtorch"],
        lines.append,
        offline(wheels),
        best_effort=True,
        checks=["gridtorch", "gridtorch.utils.board.Writer"],
    )
    code = "import gridtorch, six\nfrom gridtorch.utils.board import Writer\n"
    code += "print(gridtorch.VERSION)"
    assert run_python(env, code) == "2.0"
    assert sorted(build_warnings(env)) == [
        "Warning: inferred requirement added PyYAML: gridtorch.utils.board imports yaml"
        " without requiring it",
        "Warning: inferred requirement added six: gridtorch imports six without requiring it",
    ]
    assert not any("Version repair" in line for line in lines)


def test_a_missing_module_nothing_provides_is_left_for_the_run(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "gridlonely", "1.0", body="import gridrun_no_such_module_xyz\n")
    lines: list[str] = []
    env = build_venv(
        tmp_path / "envs",
        "lonely",
        "3.11",
        ["gridlonely"],
        lines.append,
        offline(wheels),
        best_effort=True,
        checks=["gridlonely"],
    )
    assert not any("added" in w for w in build_warnings(env))
    assert (env / ".grid-complete").is_file()


def test_version_repair_pins_the_release_that_still_has_the_name(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "gridold", "1.0", body="def legacy():\n    return 1\n")
    make_wheel(wheels, "gridold", "2.0")
    lines: list[str] = []
    env = build_venv(
        tmp_path / "envs",
        "old",
        "3.11",
        ["gridold"],
        lines.append,
        offline(wheels),
        best_effort=True,
        checks=["gridold", "gridold.legacy"],
    )
    assert run_python(env, "import gridold; print(gridold.VERSION)") == "1.0"
    assert any("pinned gridold==1.0" in w for w in build_warnings(env))


def test_an_older_release_broken_by_a_newer_dependency_gets_that_dependency_repaired(
    tmp_path: Path,
) -> None:
    # Like Flask 0.12 under Jinja2 3 (no jinja2.Markup): the release that has the name
    # cannot be imported until its dependency is stepped back too.
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "gridlib", "1.0", body="class Old:\n    pass\n")
    make_wheel(wheels, "gridlib", "2.0")
    old_app = "from gridlib import Old\next = 'ext'\n"
    make_wheel(wheels, "gridapp", "1.0", body=old_app, requires=("gridlib",))
    make_wheel(wheels, "gridapp", "2.0", requires=("gridlib",))
    lines: list[str] = []
    env = build_venv(
        tmp_path / "envs",
        "app",
        "3.11",
        ["gridapp"],
        lines.append,
        offline(wheels),
        best_effort=True,
        checks=["gridapp", "gridapp.ext"],
    )
    got = run_python(env, "import gridapp, gridlib; print(gridapp.VERSION, gridlib.VERSION)")
    assert got == "1.0 1.0"
    warnings = build_warnings(env)
    assert any("pinned gridapp==1.0" in w for w in warnings), warnings
    assert any("pinned gridlib==1.0: gridapp needs gridlib.Old" in w for w in warnings), warnings


def test_a_package_the_code_imports_broken_by_its_dependency_gets_that_dependency_repaired(
    tmp_path: Path,
) -> None:
    # Like Flask-Script under Flask 2 (no flask._compat): the package the code imports
    # is fine, the name it takes from its dependency is gone.
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "gridcore", "1.0", body="_compat = 'old'\n")
    make_wheel(wheels, "gridcore", "2.0")
    plug = "from gridcore import _compat\n"
    make_wheel(wheels, "gridplug", "1.0", body=plug, requires=("gridcore",))
    lines: list[str] = []
    env = build_venv(
        tmp_path / "envs",
        "plug",
        "3.11",
        ["gridplug"],
        lines.append,
        offline(wheels),
        best_effort=True,
        checks=["gridplug", "gridplug.main"],
    )
    got = run_python(env, "import gridplug, gridcore; print(gridcore.VERSION)")
    assert got == "1.0"
    warnings = build_warnings(env)
    assert any("pinned gridcore==1.0: gridcore 2.0 has no gridcore._compat" in w for w in warnings)
    assert not any("added" in w for w in warnings), warnings


def test_version_repair_steps_back_minor_releases_once_no_older_major_is_left(
    tmp_path: Path,
) -> None:
    # Like django.utils.importlib: gone in Django 1.9, so 1.11 lacks it and 1.8 has it.
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "gridstep", "1.0", body="importlib = 'old'\n")
    make_wheel(wheels, "gridstep", "1.1")
    make_wheel(wheels, "gridstep", "1.2")
    make_wheel(wheels, "gridstep", "2.0")
    lines: list[str] = []
    env = build_venv(
        tmp_path / "envs",
        "step",
        "3.11",
        ["gridstep"],
        lines.append,
        offline(wheels),
        best_effort=True,
        checks=["gridstep", "gridstep.importlib"],
    )
    assert run_python(env, "import gridstep; print(gridstep.VERSION)") == "1.0"
    tried = [line.split(" for ")[0] for line in lines if line.startswith("Version repair: trying")]
    assert tried == [
        "Version repair: trying gridstep<2",
        "Version repair: trying gridstep<1",
        "Version repair: trying gridstep<1.2",
        "Version repair: trying gridstep<1.1",
    ]


def test_the_newest_major_series_is_not_stepped_by_minor_releases(tmp_path: Path) -> None:
    # Like tensorflow.contrib: gone in 2.0, and no 1.x installs here. Trying every 2.x
    # release would cost a TensorFlow install each, for nothing.
    wheels = tmp_path / "wheels"
    for version in ("2.0", "2.1", "2.2"):
        make_wheel(wheels, "gridnew", version)
    lines: list[str] = []
    env = build_venv(
        tmp_path / "envs",
        "new",
        "3.11",
        ["gridnew"],
        lines.append,
        offline(wheels),
        best_effort=True,
        checks=["gridnew", "gridnew.contrib"],
    )
    tried = [line.split(" for ")[0] for line in lines if line.startswith("Version repair: trying")]
    assert tried == ["Version repair: trying gridnew<2"]
    assert run_python(env, "import gridnew; print(gridnew.VERSION)") == "2.2"


def test_a_name_that_needs_another_distribution_when_called_gets_it(tmp_path: Path) -> None:
    # pandas.read_excel imports openpyxl only when called: no import fails at the build,
    # the run would. The code's use of the name is enough to add the distribution.
    # (Tiny local wheels named pandas and openpyxl: nothing is downloaded.)
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "pandas", "0.1", body="def read_excel(path):\n    import openpyxl\n")
    make_wheel(wheels, "openpyxl", "0.1")
    lines: list[str] = []
    env = build_venv(
        tmp_path / "envs",
        "excel",
        "3.11",
        ["pandas"],
        lines.append,
        offline(wheels),
        best_effort=True,
        checks=["pandas", "pandas.read_excel"],
    )
    assert run_python(env, "import openpyxl; print(openpyxl.VERSION)") == "0.1"
    assert build_warnings(env) == [
        "Warning: inferred requirement added openpyxl: pandas.read_excel needs openpyxl, "
        "which pandas does not require"
    ]
