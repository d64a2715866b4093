"""environment.yml, pyproject.toml, PEP 723, an explicit file, and their priority."""

from __future__ import annotations

import pytest

from gridrun.deps import resolve_dependencies
from gridrun.errors import DependencyError

pytestmark = pytest.mark.unit

ENV_YML = """\
name: research
channels: [pytorch, conda-forge]
dependencies:
  - python=3.9
  - pytorch::pytorch=1.12
  - cudatoolkit=11.3
  - pip
  - pip:
      - PyYAML>=6
      - --extra-index-url https://example.com/simple
      - -r requirements-extra.txt
"""


def test_environment_yml_pip_section_and_conda_only_warning(project) -> None:
    root, files = project(
        {
            "train.py": "import yaml\nimport click\n",
            "environment.yml": ENV_YML,
            "requirements-extra.txt": "click>=8\n",
        }
    )
    report = resolve_dependencies(root, files, "train.py")
    assert report.source == "environment.yml"
    assert report.requirements == [
        "--extra-index-url https://example.com/simple",
        "click>=8",
        "PyYAML>=6",
    ]
    assert report.python_version == "3.9"
    assert report.conda_only == ["pytorch::pytorch=1.12", "cudatoolkit=11.3"]
    [warning] = [w for w in report.warnings if "conda packages" in w]
    assert "pytorch::pytorch=1.12, cudatoolkit=11.3" in warning
    assert not [w for w in report.warnings if "does not list" in w]


def test_environment_yaml_spelling_and_conda_packages_count_as_listed(project) -> None:
    root, files = project(
        {
            "train.py": "import numpy\n",
            "environment.yaml": "dependencies:\n  - numpy>=1.24\n  - python>=3.8\n",
        }
    )
    report = resolve_dependencies(root, files, "train.py")
    assert report.source == "environment.yaml"
    assert report.requirements == []
    assert report.python_version is None  # a range is not a pin
    assert report.conda_only == ["numpy>=1.24"]
    assert not [w for w in report.warnings if "does not list" in w]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            "dependencies:\n  - pip:\n      - numpy\n    - bad: [\n",
            r"^environment\.yml:\d+: invalid YAML",
        ),
        (
            "dependencies:\n  - pip\n  - pip:\n      - ok\n      - numpy===>1\n",
            r"^environment\.yml:5: ",
        ),
        ("dependencies: numpy\n", r"^environment\.yml:1: 'dependencies' must be a list"),
        ("- just\n- a list\n", r"^environment\.yml: expected a mapping"),
        (
            "dependencies:\n  - pip: numpy\n",
            r"^environment\.yml:2: the 'pip:' entry must be a list",
        ),
    ],
)
def test_broken_environment_yml(project, content: str, match: str) -> None:
    root, files = project({"train.py": "", "environment.yml": content})
    with pytest.raises(DependencyError, match=match):
        resolve_dependencies(root, files, "train.py")


PYPROJECT = """\
[project]
name = "thing"
requires-python = "==3.10.*"
dependencies = [
    "click>=8",
    "numpy",
]
"""


def test_pyproject_dependencies(project) -> None:
    root, files = project({"train.py": "import click, numpy\n", "pyproject.toml": PYPROJECT})
    report = resolve_dependencies(root, files, "train.py")
    assert report.source == "pyproject.toml"
    assert report.requirements == ["click>=8", "numpy"]
    assert report.python_version == "3.10"


def test_pyproject_without_dependencies_falls_through(project) -> None:
    root, files = project(
        {
            "train.py": "import click\n",
            "pyproject.toml": "[tool.ruff]\nline-length = 100\n",
        }
    )
    assert resolve_dependencies(root, files, "train.py").source == "inferred"


def test_poetry_dependencies_are_pointed_out(project) -> None:
    root, files = project(
        {
            "train.py": "import click\n",
            "pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.10"\nclick = "^8"\n',
        }
    )
    report = resolve_dependencies(root, files, "train.py")
    assert report.source == "inferred"
    assert any("[tool.poetry]" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("[project\nname = 'x'\n", r"^pyproject\.toml: invalid TOML: .*line 1"),
        ('[project]\ndependencies = "numpy"\n', "must be a list of strings"),
        (
            '[project]\nname = "x"\ndependencies = [\n  "ok",\n  "numpy===>1",\n]\n',
            r"^pyproject\.toml:5: ",
        ),
        ('[project]\ndependencies = ["-e ."]\n', r"^pyproject\.toml:2: .*not a PEP 508"),
    ],
)
def test_broken_pyproject(project, content: str, match: str) -> None:
    root, files = project({"train.py": "", "pyproject.toml": content})
    with pytest.raises(DependencyError, match=match):
        resolve_dependencies(root, files, "train.py")


PEP723 = """\
#!/usr/bin/env python
# /// script
# requires-python = "==3.12"
# dependencies = [
#   "click>=8",
#   "rich",
# ]
# ///
import click, rich
"""


def test_pep723_inline_metadata(project) -> None:
    root, files = project({"src/train.py": PEP723})
    report = resolve_dependencies(root, files, "src/train.py")
    assert report.source == "pep723"
    assert report.requirements == ["click>=8", "rich"]
    assert report.python_version == "3.12"
    assert report.warnings == []


def test_broken_pep723_block(project) -> None:
    root, files = project({"train.py": "# /// script\n# dependencies = [\n# ///\n"})
    with pytest.raises(DependencyError, match=r"^train\.py:1: invalid PEP 723 metadata"):
        resolve_dependencies(root, files, "train.py")
    root, files = project({"train.py": '# /// script\n# dependencies = ["x", "y=="]\n# ///\n'})
    with pytest.raises(DependencyError, match=r"^train\.py:2: "):
        resolve_dependencies(root, files, "train.py")


def test_priority_order(project) -> None:
    root, files = project(
        {
            "train.py": PEP723,
            "pyproject.toml": PYPROJECT,
            "environment.yml": "dependencies:\n  - pip:\n    - PyYAML\n",
            "requirements.txt": "numpy\n",
        }
    )
    order = ["requirements.txt", "environment.yml", "pyproject.toml", "train.py"]
    expected = ["requirements.txt", "environment.yml", "pyproject.toml", "pep723", "inferred"]
    for name, source in zip(order, expected, strict=False):
        assert resolve_dependencies(root, files, "train.py").source == source
        files.remove(name)
        if name == "train.py":
            (root / "train.py").write_text("import click\n")
            files.append("train.py")
    assert resolve_dependencies(root, files, "train.py").source == "inferred"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("deps/prod.txt", "click\n", ["click"]),
        ("conda/env.yaml", "dependencies:\n  - pip:\n    - rich\n", ["rich"]),
        ("cfg/pyproject.toml", PYPROJECT, ["click>=8", "numpy"]),
    ],
)
def test_explicit_dependency_file_wins(project, name: str, content: str, expected) -> None:
    root, files = project({"train.py": "", "requirements.txt": "numpy\n", name: content})
    report = resolve_dependencies(root, files, "train.py", dependency_file=name)
    assert report.source == f"dependency_file:{name}"
    assert report.requirements == expected


def test_explicit_pyproject_without_dependencies_is_empty(project) -> None:
    root, files = project({"train.py": "", "x/pyproject.toml": "[tool.black]\n"})
    report = resolve_dependencies(root, files, "train.py", dependency_file="x/pyproject.toml")
    assert report.requirements == []
    assert any("has no [project] dependencies" in w for w in report.warnings)


def test_explicit_dependency_file_must_exist(project) -> None:
    root, files = project({"train.py": ""})
    with pytest.raises(DependencyError, match=r"nope\.txt does not exist"):
        resolve_dependencies(root, files, "train.py", dependency_file="nope.txt")
