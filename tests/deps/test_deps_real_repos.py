"""Repositories as people write them: nested examples, import names, pkg_resources."""

from __future__ import annotations

import pytest

from gridrun.deps import resolve_dependencies
from gridrun.deps.pypimodules import choose, choose_fallback, module_index

EXAMPLES = {
    "README.md": "# examples\n",
    "docs/conf.py": "import sphinx_rtd_theme\n",
    "compat.py": ("try:\n    import urllib2\nexcept ImportError:\n    import urllib.request\n"),
    "dcgan/main.py": "import argparse\nimport six\nfrom helpers import seed\n",
    "dcgan/helpers.py": (
        "try:\n    import cPickle as pickle\nexcept ImportError:\n    import pickle\n"
    ),
    "dcgan/requirements.txt": "six\n",
    "mnist/main.py": "import click\n",
    "mnist/requirements.txt": "click\n",
    "requirements.txt": "sphinx\n",
}


@pytest.mark.unit
def test_the_requirements_file_beside_the_script_wins(project) -> None:
    root, files = project(EXAMPLES)
    report = resolve_dependencies(root, files, "dcgan/main.py")
    assert report.source == "dcgan/requirements.txt"
    assert report.requirements == ["six"]
    assert not [w for w in report.warnings if "does not list" in w]
    # A script with no file of its own gets the nearest one above it.
    (root / "tools").mkdir()
    (root / "tools" / "run.py").write_text("import sphinx\n")
    report = resolve_dependencies(root, [*files, "tools/run.py"], "tools/run.py")
    assert report.source == "requirements.txt" and report.requirements == ["sphinx"]


@pytest.mark.unit
def test_inference_reads_only_the_closure(project) -> None:
    files = {k: v for k, v in EXAMPLES.items() if not k.endswith("requirements.txt")}
    root, snap = project(files)
    report = resolve_dependencies(root, snap, "dcgan/main.py")
    assert report.source == "inferred"
    names = [line.split("==")[0].lower() for line in report.requirements]
    assert names == ["six"]  # not urllib2, cPickle, sphinx_rtd_theme, click


@pytest.mark.unit
def test_requirements_file_of_import_names(project) -> None:
    root, files = project(
        {
            "train.py": "import yaml\n",
            "requirements.txt": "sys\nos\nyaml\nsklearn\nPIL\nbs4\ncv2\npkg_resources\nattr>=19\n",
        }
    )
    report = resolve_dependencies(root, files, "train.py")
    assert report.requirements == [
        "attr>=19",  # pinned: the author meant the distribution named attr
        "beautifulsoup4",
        "opencv-python",
        "Pillow",
        "PyYAML",
        "scikit-learn",
        "setuptools<82",
    ]
    [mapped] = [w for w in report.warnings if "import names" in w]
    for pair in ("yaml -> PyYAML", "sklearn -> scikit-learn", "pkg_resources -> setuptools<82"):
        assert pair in mapped
    assert any("standard-library" in w and "os, sys" in w for w in report.warnings)


@pytest.mark.unit
def test_inferred_pkg_resources_gets_a_setuptools_that_has_it(project) -> None:
    root, files = project({"train.py": "import pkg_resources\n"})
    report = resolve_dependencies(root, files, "train.py")
    [line] = report.requirements
    assert line == "setuptools<82" or (
        line.startswith("setuptools==") and int(line.split("==")[1].split(".")[0]) < 82
    )


@pytest.mark.unit
def test_choice_among_candidates_is_deterministic() -> None:
    rows = [("cronyo", 2, "0.4.5"), ("lazyaml", 1, "6.0.4"), ("PyYAML", 2, "6.0.3")]
    assert choose("yaml", rows) == "PyYAML"  # the pyX binding convention
    assert choose("yaml", list(reversed(rows))) == "PyYAML"
    rows = [("zmq", 1, "0.0.0"), ("pyzmq", 1, "27.1.0")]
    assert choose("zmq", rows) == "pyzmq"  # a reserved placeholder loses
    rows = [("py-dateutil", 1, "2.2"), ("python-dateutil", 1, "2.9.0")]
    assert choose("dateutil", rows) == "python-dateutil"
    rows = [("lgjs-crypto-v2", 1, "0.1"), ("pycryptodome", 1, "3.23.0")]
    assert choose("Crypto", rows) == "pycryptodome"
    assert choose("nothing", []) is None


@pytest.mark.unit
def test_a_plugin_of_a_framework_the_code_imports_wins_over_a_namesake() -> None:
    rows = [("haystack", 1, "0.42"), ("django-haystack", 1, "3.3.0"), ("farm-haystack", 1, "1")]
    assert choose("haystack", rows) == "haystack"
    assert choose("haystack", rows, ["django", "haystack"]) == "django-haystack"
    assert choose("haystack", rows, ["flask"]) == "haystack"


@pytest.mark.unit
def test_the_fallback_for_a_failed_first_choice_is_a_mature_namesake() -> None:
    rows = [
        ("GraphQL-core-next", 1, "1.1.1"),
        ("graphql-core", 1, "3.2.7"),
        ("graphql-py", 1, "0.8.1"),
        ("graphql-python", 1, "0.0.1"),
        ("lambda-bundle", 9, "4.0"),  # ships a graphql module, not named after it
    ]
    assert choose_fallback("graphql", rows) == "graphql-core"
    rows = [
        ("django-registration-fc", 2, "1.0.1"),
        ("django-registration-redux", 2, "2.13"),
        ("thunder-registration", 1, "3.0"),
    ]
    assert choose_fallback("registration", rows, ["django"]) == "django-registration-redux"
    assert choose_fallback("registration", rows) == "thunder-registration"
    assert choose_fallback("graphql", [("lambda-bundle", 9, "4.0")]) is None


@pytest.mark.unit
def test_inference_maps_a_django_app_to_its_django_distribution(project) -> None:
    code = "from django.db import models\nfrom haystack import indexes\n"
    root, files = project({"search_indexes.py": code})
    report = resolve_dependencies(root, files, "search_indexes.py")
    assert any(line.startswith("django-haystack") for line in report.requirements)
    assert not any(line.lower().startswith("haystack") for line in report.requirements)


@pytest.mark.unit
def test_pigar_database_knows_the_long_tail() -> None:
    notes: list[str] = []
    index = module_index(notes)
    assert index is not None, notes
    assert index.distribution("wx") == "wxPython"
    assert index.distribution("Levenshtein") == "Levenshtein"
    assert index.distribution("googleapiclient") == "google-api-python-client"
    assert index.distribution("no_such_module_anywhere_xyz") is None


def test_sync_env_uses_the_same_closure(project, tmp_path) -> None:
    import os
    import subprocess
    import sys

    files = {k: v for k, v in EXAMPLES.items() if not k.endswith("requirements.txt")}
    files["mnist/main.py"] = "import click\n"
    root, _ = project(files)
    env = dict(os.environ, GRID_HOME=str(tmp_path / "home"))
    proc = subprocess.run(
        [sys.executable, "-m", "gridrun", "sync-env", "--script", "dcgan/main.py", "-y"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    written = (root / "requirements.txt").read_text()
    assert "six" in written.lower()
    assert "click" not in written.lower() and "sphinx" not in written.lower(), proc.stdout


@pytest.mark.unit
def test_unreachable_module_database_is_one_warning_and_retried_later(
    tmp_path, monkeypatch
) -> None:
    from gridrun.deps import pypimodules

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("GRID_PIGAR_DB", str(tmp_path / "no-such.sqlite3"))
    monkeypatch.setattr(pypimodules, "_CONNECTIONS", {})
    notes: list[str] = []
    assert pypimodules.module_index(notes) is None
    assert len(notes) == 1 and "pigar" in notes[0]
    [failed] = (tmp_path / "xdg" / "gridrun").glob("*.failed")
    # A later process does not try again within a day: it reads the recorded failure.
    monkeypatch.setattr(pypimodules, "_CONNECTIONS", {})
    monkeypatch.setattr(pypimodules, "_build", lambda _p: (_ for _ in ()).throw(AssertionError))
    notes.clear()
    assert pypimodules.module_index(notes) is None and len(notes) == 1
    assert failed.is_file()


@pytest.mark.unit
def test_old_flask_extension_imports_name_the_extension(project) -> None:
    code = "from flask import Flask\nfrom flask.ext.httpauth import HTTPBasicAuth\n"
    root, files = project({"app.py": code})
    report = resolve_dependencies(root, files, "app.py")
    names = [line.split("==")[0].lower() for line in report.requirements]
    assert "flask-httpauth" in names and "flask" in names
    assert "flask.ext.httpauth.HTTPBasicAuth" in report.checks  # repair finds a Flask < 1
