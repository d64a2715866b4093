"""Import scanning: every form, optional imports, and the script's import closure."""

from __future__ import annotations

import json

import pytest

from gridrun.deps.imports import scan_project, scan_source

FORMS = """\
import alpha
import beta.sub as b, gamma
from delta.inner import thing
from epsilon import *
import os, sys, json.decoder
from __future__ import annotations
from . import sibling
from .pkg import other
from ..up import third

def load():
    import zeta
    from eta import x
    mod = importlib.import_module("theta.sub")
    other = __import__("iota")
    rel = importlib.import_module(".relative", package="x")
    dyn = importlib.import_module(name)

class Model:
    def method(self):
        with ctx():
            for _ in range(3):
                import kappa

if flag:
    import lam
else:
    import mu

try:
    import nu
except ImportError:
    import xi
else:
    import omicron

try:
    import pi
except (ValueError, ModuleNotFoundError):
    pi = None

try:
    import rho
except:  # noqa: E722
    rho = None

try:
    import sigma
except KeyError:
    pass

if TYPE_CHECKING:
    import tau
match value:
    case 1:
        import upsilon
lazy = lambda: import_module("phi")
"""


@pytest.mark.unit
def test_every_import_form() -> None:
    imports, error, *_ = scan_source(FORMS.encode())
    assert error is None
    found = dict(imports)
    assert found == {
        ".sibling": False,
        ".pkg.other": False,
        "..up.third": False,
        "alpha": False,
        "beta.sub": False,
        "gamma": False,
        "delta.inner.thing": False,
        "epsilon": False,
        "zeta": False,
        "eta.x": False,
        "theta.sub": False,
        "iota": False,
        "kappa": False,
        "lam": False,
        "mu": False,
        "nu": True,  # optional
        "xi": True,  # the fallback of an optional import is optional too
        "omicron": False,
        "pi": True,
        "rho": True,
        "sigma": False,  # KeyError does not make an import optional
        "upsilon": False,
        "phi": False,
    }


@pytest.mark.unit
def test_required_anywhere_wins_over_optional() -> None:
    source = b"try:\n    import yaml\nexcept ImportError:\n    yaml = None\nimport yaml\n"
    assert scan_source(source).imports == [("yaml", False)]


@pytest.mark.unit
def test_syntax_error_is_reported_not_raised() -> None:
    imports, error, *_ = scan_source(b"import a\ndef f(:\n")
    assert imports == []
    assert error is not None and error.startswith("line 2:")


@pytest.mark.unit
def test_invalid_escape_does_not_warn_as_error() -> None:
    # pytest runs with filterwarnings=error: a DeprecationWarning would fail the scan.
    assert scan_source(b'import numpy\nx = "\\d"\n').imports == [("numpy", False)]


@pytest.mark.unit
def test_scan_project_filters_stdlib_and_local_modules(project) -> None:
    root, files = project(
        {
            "train.py": (
                "import os, numpy\n"
                "from models.resnet import blocks\n"
                "from data.loaders import get\n"
                "import utils\n"
                "from mylib import core\n"
                "import helpers\n"
            ),
            "utils.py": "import requests\n",
            "models/resnet/blocks.py": "import torch\nimport layers\n",
            "models/resnet/layers.py": "",
            "data/loaders/__init__.py": "from .x import y\nfrom ..z import w\n",
            "src/mylib/core.py": "import scipy\n",
            "tools/helpers.py": "",
            "notes/readme.md": "import fake\n",
        }
    )
    result = scan_project(root, files, "train.py")
    # `helpers` lives in tools/, which is neither the root nor the script's folder.
    assert result.imports == {
        "numpy": True,
        "requests": True,
        "torch": True,
        "scipy": True,
        "helpers": True,
    }
    assert result.skipped == []


@pytest.mark.unit
def test_script_folder_modules_are_local(project) -> None:
    root, files = project({"exp/run.py": "import helpers\nimport click\n", "exp/helpers.py": ""})
    assert scan_project(root, files, "exp/run.py").imports == {"click": True}


def test_syntax_errors_are_skipped(project) -> None:
    root, files = project(
        {"train.py": "import click\nimport old\n", "old.py": "def broken(:\n    pass\n"}
    )
    result = scan_project(root, files, "train.py")
    assert result.imports == {"click": True}
    assert len(result.skipped) == 1 and result.skipped[0].startswith("old.py (line 1:")


@pytest.mark.unit
def test_disk_cache_is_used_and_follows_content(project, tmp_path) -> None:
    cache = tmp_path / "cache"
    root, files = project({"train.py": "import click\nimport b\n", "b.py": "import rich\n"})
    assert scan_project(root, files, "train.py", cache).imports == {"click": True, "rich": True}
    [cache_file] = cache.glob("imports-*.json")
    data = json.loads(cache_file.read_text())
    # Tamper with the cached entry: an unchanged file is read from the cache, not parsed.
    digest = data["files"]["b.py"][0]
    data["files"]["b.py"] = [digest, [["from_cache", 0]], None, [], [], 0, [3, 0, ""]]
    cache_file.write_text(json.dumps(data))
    from gridrun.deps import imports

    imports._MEMORY.clear()
    assert scan_project(root, files, "train.py", cache).imports == {
        "click": True,
        "from_cache": True,
    }
    # A changed file has a new digest and is parsed again.
    (root / "b.py").write_text("import numpy\n")
    assert scan_project(root, files, "train.py", cache).imports == {"click": True, "numpy": True}
    # A corrupt cache is ignored and rewritten.
    cache_file.write_text("{not json")
    imports._MEMORY.clear()
    assert scan_project(root, files, "train.py", cache).imports == {"click": True, "numpy": True}
    assert json.loads(cache_file.read_text())["files"]["b.py"][1] == [["numpy", 0]]


@pytest.mark.unit
def test_closure_follows_only_what_the_script_imports(project) -> None:
    root, files = project(
        {
            "dcgan/main.py": "import torch\nfrom models import Generator\nimport utils\n",
            "dcgan/models.py": "from .layers import conv\nimport torchvision\n",
            "dcgan/layers.py": "import numpy\n",
            "utils.py": "import tqdm\n",  # the project root comes after the script folder
            "mnist/main.py": "import pandas\n",  # another example: never read
            "docs/conf.py": "import sphinx\n",
            "compat.py": (
                "try:\n    import urllib2\nexcept ImportError:\n    import urllib.request\n"
            ),
        }
    )
    result = scan_project(root, files, "dcgan/main.py")
    assert result.imports == {"torch": True, "torchvision": True, "numpy": True, "tqdm": True}
    assert sorted(result.files) == [
        "dcgan/layers.py",
        "dcgan/main.py",
        "dcgan/models.py",
        "utils.py",
    ]


@pytest.mark.unit
def test_script_folder_shadows_project_root(project) -> None:
    root, files = project(
        {
            "ex/run.py": "import helpers\n",
            "ex/helpers.py": "import click\n",
            "helpers.py": "import rich\n",
        }
    )
    assert scan_project(root, files, "ex/run.py").imports == {"click": True}


@pytest.mark.unit
def test_python2_names_and_version_branches_are_never_required() -> None:
    source = b"""\
import sys
import urllib2, cPickle, StringIO, ConfigParser, commands, Queue
if sys.version_info < (3, 0):
    import py2only
else:
    import py3pkg
if sys.version_info[0] == 2:
    import also_py2
if six.PY2:
    import six_py2
try:
    import json
except ImportError:
    import simplejson as json
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import typed_only
"""
    scan = scan_source(source)
    assert dict(scan.imports) == {
        "py2only": True,
        "py3pkg": False,
        "also_py2": True,
        "six_py2": True,
        "simplejson": True,
    }
    stdlib = dict(scan.stdlib)
    assert stdlib["urllib2"] is False and stdlib["cPickle"] is False  # evidence, not packages


@pytest.mark.unit
def test_attribute_paths_and_removed_stdlib_names_are_recorded() -> None:
    scan = scan_source(b"import collections, flask\nclass S(collections.Set): pass\nflask.ext\n")
    assert "collections.Set" in scan.uses and "flask.ext" in scan.uses
    assert scan.imports == [("flask", False)]


@pytest.mark.unit
def test_entry_script_without_python_reads_every_file(project) -> None:
    root, files = project(
        {"run.sh": "python a.py\n", "a.py": "import click\n", "b/c.py": "import rich\n"}
    )
    assert scan_project(root, files, "run.sh").imports == {"click": True, "rich": True}


def test_python2_source_is_read_by_python2(project) -> None:
    from gridrun.envs.pyselect import python_path

    assert python_path("2.7") is not None, "CI has Python 2.7 under ~/.pyenv/versions"
    root, files = project(
        {"train.py": "import old\n", "old.py": "import urllib2, requests\nprint 'python 2'\n"}
    )
    result = scan_project(root, files, "train.py")
    assert result.imports == {"requests": True}
    assert result.python2 == ["old.py"] and result.skipped == []
    assert result.stdlib == {"urllib2": True}
