"""Import scanning: every form, stdlib and project-local filtering, optional imports."""

from __future__ import annotations

import json

from gridrun.deps.imports import local_names, scan_project, scan_source

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


def test_every_import_form() -> None:
    imports, error = scan_source(FORMS.encode())
    assert error is None
    found = dict(imports)
    assert found == {
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
        "xi": False,
        "omicron": False,
        "pi": True,
        "rho": True,
        "sigma": False,  # KeyError does not make an import optional
        "upsilon": False,
        "phi": False,
    }


def test_required_anywhere_wins_over_optional() -> None:
    source = b"try:\n    import yaml\nexcept ImportError:\n    yaml = None\nimport yaml\n"
    assert scan_source(source) == ([("yaml", False)], None)


def test_syntax_error_is_reported_not_raised() -> None:
    imports, error = scan_source(b"import a\ndef f(:\n")
    assert imports == []
    assert error is not None and error.startswith("line 2:")


def test_invalid_escape_does_not_warn_as_error() -> None:
    # pytest runs with filterwarnings=error: a DeprecationWarning would fail the scan.
    assert scan_source(b'import numpy\nx = "\\d"\n') == ([("numpy", False)], None)


def test_local_names_at_any_depth() -> None:
    files = [
        "train.py",
        "utils.py",
        "models/resnet/blocks.py",
        "data/loaders/__init__.py",
        "scripts/run.py",
        "scripts/helpers.py",
        "src/mylib/core.py",
        "native/fast.cpython-311-x86_64-linux-gnu.so",
        "configs/base.yaml",
    ]
    common, children = local_names(files, "scripts/run.py")
    assert {"train", "utils", "models", "data", "scripts", "run", "helpers", "mylib"} <= common
    assert "configs" not in common  # a folder without Python files is not a package
    assert "fast" in children["native"]
    assert children["models/resnet"] == {"blocks"}


def test_scan_project_filters_stdlib_and_local_modules(project) -> None:
    root, files = project(
        {
            "train.py": (
                "import os, numpy\n"
                "import models.resnet\n"
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


def test_script_folder_modules_are_local(project) -> None:
    root, files = project({"exp/run.py": "import helpers\nimport click\n", "exp/helpers.py": ""})
    assert scan_project(root, files, "exp/run.py").imports == {"click": True}


def test_syntax_errors_are_skipped(project) -> None:
    root, files = project({"train.py": "import click\n", "legacy/old.py": "print 'python 2'\n"})
    result = scan_project(root, files, "train.py")
    assert result.imports == {"click": True}
    assert len(result.skipped) == 1 and result.skipped[0].startswith("legacy/old.py (line 1:")


def test_disk_cache_is_used_and_follows_content(project, tmp_path) -> None:
    cache = tmp_path / "cache"
    root, files = project({"train.py": "import click\n", "b.py": "import rich\n"})
    assert scan_project(root, files, "train.py", cache).imports == {"click": True, "rich": True}
    [cache_file] = cache.glob("imports-*.json")
    data = json.loads(cache_file.read_text())
    # Tamper with the cached entry: an unchanged file is read from the cache, not parsed.
    digest = data["files"]["b.py"][0]
    data["files"]["b.py"] = [digest, [["from_cache", 0]], None]
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
