"""requirements.txt: every line form pip accepts, normalised; broken files fail early."""

from __future__ import annotations

import pytest

from gridrun.deps import resolve_dependencies
from gridrun.errors import DependencyError

pytestmark = pytest.mark.unit

SCRIPT = "train.py"
HASH = "ae74fb96c20a0277a1d615f1e4d73c8414f5a98db8b799a7931d1582f3390c28"


def resolve(root, files, **kwargs):
    return resolve_dependencies(root, files, SCRIPT, **kwargs)


def test_full_requirements_file(project) -> None:
    root, files = project(
        {
            SCRIPT: "print('hi')\n",
            "requirements.txt": (
                "# training deps\n"
                "\n"
                "--extra-index-url https://download.pytorch.org/whl/cu118\n"
                "torch==2.1.0  # pinned for CUDA 11.8\n"
                "Requests[socks,security] >= 2.0 ; python_version >= '3.8'\n"
                "-r reqs/base.txt\n"
                "-f https://data.pyg.org/whl/torch-2.1.0.html\n"
                "-i https://pypi.org/simple\n"
                "mypkg @ https://example.com/mypkg-1.0-py3-none-any.whl\n"
                "git+https://github.com/org/repo.git@main#egg=repo\n"
                "numpy \\\n"
                "    >=1.24\n"
            ),
            "reqs/base.txt": "pandas>=2\n-r more.txt\n",
            "reqs/more.txt": "scipy\nnumpy>=1.24\n",
        }
    )
    report = resolve(root, files)
    assert report.source == "requirements.txt"
    assert report.requirements == [
        "--extra-index-url https://download.pytorch.org/whl/cu118",
        "--find-links https://data.pyg.org/whl/torch-2.1.0.html",
        "--index-url https://pypi.org/simple",
        "mypkg @ https://example.com/mypkg-1.0-py3-none-any.whl",
        "numpy>=1.24",
        "pandas>=2",
        "git+https://github.com/org/repo.git@main#egg=repo",
        'Requests[security,socks]>=2.0; python_version >= "3.8"',
        "scipy",
        "torch==2.1.0",
    ]
    assert report.warnings == []


def test_order_and_spelling_do_not_change_the_result(project, tmp_path) -> None:
    root, files = project({SCRIPT: "", "requirements.txt": "b>=1\nA\n--pre\nc\nb >= 1\n"})
    first = resolve(root, files).requirements
    (root / "requirements.txt").write_text("--pre\nc\nA\n\n\nb>=1\n")
    assert resolve(root, files).requirements == first == ["--pre", "A", "b>=1", "c"]


def test_stdlib_names_are_dropped_with_a_warning(project) -> None:
    root, files = project({SCRIPT: "", "requirements.txt": "sys\nos\nnumpy\ntime\n"})
    report = resolve(root, files)
    assert report.requirements == ["numpy"]
    [warning] = [w for w in report.warnings if "standard-library" in w]
    assert "os, sys, time" in warning
    assert warning.startswith("requirements.txt")


def test_editable_and_local_paths_are_kept_with_a_warning(project) -> None:
    root, files = project(
        {
            SCRIPT: "",
            "setup.py": "",
            "libs/helper/setup.py": "",
            "requirements.txt": "-e .\n./libs/helper\n../outside\n",
        }
    )
    (root.parent / "outside").mkdir()  # exists, but is not part of the snapshot
    report = resolve(root, files)
    assert report.requirements == ["-e .", "../outside", "./libs/helper"]
    joined = "\n".join(report.warnings)
    assert "requirements.txt:1: '.' is a local path" in joined
    assert "requirements.txt:2: './libs/helper' is a local path" in joined
    assert "requirements.txt:3: '../outside' is a local path outside the project" in joined


def test_hashes_dropped_and_unknown_options_ignored(project) -> None:
    root, files = project(
        {
            SCRIPT: "",
            "requirements.txt": (
                f"click==8.1.7 \\\n    --hash=sha256:{HASH}\n--use-feature=fast-deps\n"
            ),
        }
    )
    report = resolve(root, files)
    assert report.requirements == ["click==8.1.7"]
    assert any("--hash options were dropped" in w for w in report.warnings)
    assert any("requirements.txt:3: the option --use-feature" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("numpy\nnumpy===>1\n", "requirements.txt:2"),
        ("ok\n\n# c\nbad line here\n", "requirements.txt:4"),
        ("-r missing.txt\n", "requirements.txt:1"),
        ("--index-url\n", "requirements.txt:1"),
        ("-e\n", "requirements.txt:1"),
        ("pkg; os_nam == 'nt'\n", "requirements.txt:1"),
    ],
)
def test_broken_lines_raise_with_file_and_line(project, content: str, where: str) -> None:
    root, files = project({SCRIPT: "", "requirements.txt": content})
    with pytest.raises(DependencyError) as info:
        resolve(root, files)
    assert info.value.message.startswith(where + ":"), info.value.message
    assert info.value.hint


def test_broken_line_in_an_included_file_names_that_file(project) -> None:
    root, files = project(
        {SCRIPT: "", "requirements.txt": "-r sub/r.txt\n", "sub/r.txt": "a\n==1\n"}
    )
    with pytest.raises(DependencyError, match=r"^sub/r\.txt:2: "):
        resolve(root, files)


def test_include_cycle_is_an_error(project) -> None:
    root, files = project(
        {SCRIPT: "", "requirements.txt": "-r a.txt\n", "a.txt": "-r requirements.txt\n"}
    )
    with pytest.raises(DependencyError, match="includes itself"):
        resolve(root, files)


def test_non_utf8_file_is_an_error(project) -> None:
    root, files = project({SCRIPT: "", "requirements.txt": ""})
    (root / "requirements.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(DependencyError, match="UTF-8"):
        resolve(root, files)


def test_missing_packages_warning(project) -> None:
    root, files = project(
        {
            SCRIPT: "import yaml\nimport click\nimport numpy\n",
            "requirements.txt": "PyYAML\n",
        }
    )
    report = resolve(root, files)
    [warning] = [w for w in report.warnings if "does not list" in w]
    assert "click, numpy" in warning
    assert "PyYAML" not in warning


def test_missing_packages_compare_pep503_names_and_dependencies(project) -> None:
    # rich requires Pygments and markdown-it-py: importing them is covered.
    root, files = project(
        {
            SCRIPT: "import yaml, rich, pygments, markdown_it\n",
            "requirements.txt": "pyyaml\nRICH\n",
        }
    )
    report = resolve(root, files)
    assert not [w for w in report.warnings if "does not list" in w], report.warnings


def test_requirements_txt_only_counts_at_the_root(project) -> None:
    root, files = project({SCRIPT: "import click\n", "sub/requirements.txt": "numpy\n"})
    assert resolve(root, files).source == "inferred"


def test_requirements_txt_outside_the_snapshot_is_not_used(project) -> None:
    root, files = project({SCRIPT: "import click\n", "requirements.txt": "numpy\n"})
    files.remove("requirements.txt")  # excluded by .gridignore, say
    assert resolve(root, files).source == "inferred"
