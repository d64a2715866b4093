"""Real repositories, unmodified, through the real CLI and real uv builds of small packages."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_examples_repository_run_from_its_root(grid, tmp_path: Path) -> None:
    repo = tmp_path / "examples"
    write(
        repo,
        {
            "README.md": "# Examples\n",
            "docs/conf.py": "import sphinx_gallery_nowhere_xyz\n",
            "legacy/compat.py": "try:\n    import urllib2\nexcept ImportError:\n    pass\n",
            "dcgan/main.py": (
                "import argparse\nimport six\nfrom helpers import describe\n"
                "p = argparse.ArgumentParser()\np.add_argument('--dataset')\n"
                "print(describe(p.parse_args().dataset), six.__version__)\n"
            ),
            "dcgan/helpers.py": (
                "try:\n    import cPickle as pickle\nexcept ImportError:\n    import pickle\n"
                "def describe(name):\n    return 'dataset=' + name\n"
            ),
            "dcgan/requirements.txt": "six==1.16.0\n",
            "mnist/main.py": "import click_nowhere_xyz\n",
            "mnist/requirements.txt": "click_nowhere_xyz\n",
        },
    )
    out = grid("run", "--name", "dcgan", "--follow", "dcgan/main.py", "--dataset", "fake", cwd=repo)
    assert "from dcgan/requirements.txt" in one_line(out.stdout)
    assert "dataset=fake 1.16.0" in grid("logs", "dcgan-exp0").stdout


def test_requirements_file_of_import_names(grid, tmp_path: Path) -> None:
    project = tmp_path / "tutorial"
    write(
        project,
        {
            "requirements.txt": "sys\nos\nsubprocess\ntime\npkg_resources\nyaml\n",
            "app.py": (
                "import pkg_resources, yaml\n"
                "print('yaml', yaml.safe_load('a: 1'), pkg_resources.__name__)\n"
            ),
        },
    )
    out = grid("run", "--name", "names", "--follow", "app.py", cwd=project)
    err = one_line(out.stderr)
    assert "pkg_resources -> setuptools<82" in err and "yaml -> PyYAML" in err
    assert "standard-library" in err
    assert "yaml {'a': 1} pkg_resources" in grid("logs", "names-exp0").stdout


def test_script_importing_pkg_resources(grid, tmp_path: Path) -> None:
    project = tmp_path / "plugin"
    write(project, {"load.py": "import pkg_resources\nprint('ok', pkg_resources.__name__)\n"})
    out = grid("run", "--name", "pkgres", "--follow", "load.py", cwd=project)
    assert "setuptools" in one_line(out.stderr)
    assert "ok pkg_resources" in grid("logs", "pkgres-exp0").stdout


def test_uninstallable_inferred_import_is_dropped_and_the_build_goes_on(
    grid, tmp_path: Path
) -> None:
    project = tmp_path / "gist"
    write(
        project,
        {
            "gist.py": (
                "import six\n"
                "def inside_another_program():\n"
                "    import gridrun_no_such_distribution_xyz\n"
                "print('six', six.__name__)\n"
            )
        },
    )
    out = grid("run", "--name", "besteffort", "--follow", "gist.py", cwd=project)
    assert "six six" in grid("logs", "besteffort-exp0").stdout
    build = one_line(out.stdout + out.stderr)
    assert "dropped gridrun_no_such_distribution_xyz" in build.lower().replace("-", "_")
    assert "not found in the package index" in build
    status = one_line(grid("status", "besteffort").stdout)
    assert "dropped gridrun" in status.lower()
    data = grid.json("status", "besteffort")
    assert isinstance(data, dict)
    assert any("gridrun_no_such" in w.replace("-", "_") for w in data["build_warnings"])


def test_an_import_whose_first_choice_fails_to_build_gets_the_next_namesake(
    grid, tmp_path: Path
) -> None:
    # pigar's index lists several distributions with a top-level `graphql`; the one
    # named exactly like it is an old sdist that no longer builds.
    project = tmp_path / "schema"
    write(project, {"schema.py": "import graphql\nprint('graphql', graphql.__name__)\n"})
    out = grid("run", "--name", "alt", "--follow", "schema.py", cwd=project, timeout=600)
    build = one_line(out.stdout + out.stderr)
    assert "trying graphql-core for import graphql instead" in build
    assert "graphql graphql" in grid("logs", "alt-exp0").stdout


def test_declared_requirement_that_cannot_be_installed_is_an_error(grid, tmp_path: Path) -> None:
    project = tmp_path / "strict"
    write(
        project,
        {"requirements.txt": "gridrun-no-such-distribution-xyz\n", "train.py": "print(1)\n"},
    )
    grid("run", "--name", "strict", "train.py", cwd=project)
    data = grid.wait("strict")
    assert data["experiments"][0]["status"] == "failed"
    assert "gridrun-no-such-distribution-xyz" in grid.json("status", "strict")["error"]  # type: ignore[index]


def test_shell_script_pip_installs_into_the_runs_environment(grid, tmp_path: Path) -> None:
    project = tmp_path / "shell"
    write(
        project,
        {
            "setup_and_run.sh": (
                "set -e\n"
                "pip install -q six==1.16.0\n"
                "python -c \"import six, sys; print('six', six.__version__, sys.prefix)\"\n"
                "python -m pip --version\n"
                "pip freeze\n"
            )
        },
    )
    grid("run", "--name", "shellpip", "--follow", "setup_and_run.sh", cwd=project)
    logs = grid("logs", "shellpip-exp0").stdout
    envs = str(grid.home / "envs")
    assert "six 1.16.0 " + envs in logs
    pip_line = next(line for line in logs.splitlines() if " from " in line and "pip" in line)
    assert envs in pip_line  # python -m pip is the environment's own pip
    assert "six==1.16.0" in logs
    assert "click==" not in logs  # gridrun's own packages are not in the run's freeze


def test_version_repair_steps_back_to_a_release_with_the_name(grid, tmp_path: Path) -> None:
    # MarkupSafe 2.1 removed soft_unicode; old code still imports it.
    project = tmp_path / "oldapi"
    write(
        project,
        {"render.py": "from markupsafe import soft_unicode\nprint('soft', soft_unicode('x'))\n"},
    )
    out = grid("run", "--name", "repair", "--follow", "render.py", cwd=project, timeout=600)
    build = one_line(out.stdout + out.stderr)
    assert "version repair pinned MarkupSafe==1." in build
    assert "soft x" in grid("logs", "repair-exp0").stdout
    assert any("pinned MarkupSafe" in w for w in grid.json("status", "repair")["build_warnings"])  # type: ignore[index]


def test_removed_stdlib_name_selects_an_older_installed_python(grid, tmp_path: Path) -> None:
    from gridrun.envs.pyselect import choose_python

    chosen = choose_python((3, 9))
    assert chosen is not None, "CI has Python 3.6-3.13 under ~/.pyenv/versions"
    project = tmp_path / "abcs"
    write(
        project,
        {"abcs.py": "import sys\nfrom collections import Mapping\nprint(sys.version_info[:2])\n"},
    )
    out = grid("run", "--name", "abcs", "--follow", "abcs.py", cwd=project)
    assert f"Using Python {chosen}" in one_line(out.stderr)
    major, minor = chosen.split(".")
    assert f"({major}, {minor})" in grid("logs", "abcs-exp0").stdout


def test_python2_code_runs_on_python2(grid, tmp_path: Path) -> None:
    from gridrun.envs.pyselect import choose_python

    assert choose_python((2, 7)) == "2.7", "CI has Python 2.7 under ~/.pyenv/versions"
    project = tmp_path / "old"
    write(project, {"old.py": "import urllib2\nimport sys\nprint 'py', sys.version_info[0]\n"})
    out = grid("run", "--name", "old", "--follow", "old.py", cwd=project, timeout=600)
    assert "Using Python 2.7" in one_line(out.stderr)
    assert "py 2" in grid("logs", "old-exp0").stdout


def test_summary_says_inferred_requirements_are_best_effort(grid, tmp_path: Path) -> None:
    project = tmp_path / "summary"
    write(project, {"s.py": "print('no imports')\n"})
    out = grid("run", "--name", "summ", "s.py", cwd=project)
    assert "0 from inferred (best effort" in one_line(out.stdout)
    assert "grid status summ" in one_line(out.stdout)
    grid.wait("summ")
