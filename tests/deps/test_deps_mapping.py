"""The import-name -> distribution table: every entry well-formed, lookups by prefix."""

from __future__ import annotations

import keyword
import re
import sys

import pytest

from gridrun.deps.installed import table_lookup
from gridrun.deps.mapping import IMPORT_TO_DIST
from gridrun.deps.pep508 import canonicalize_name

pytestmark = pytest.mark.unit

DIST_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
STDLIB = set(sys.stdlib_module_names)


def test_table_is_large_enough() -> None:
    assert len(IMPORT_TO_DIST) >= 150


@pytest.mark.parametrize(("module", "dist"), sorted(IMPORT_TO_DIST.items()))
def test_entry_format(module: str, dist: str) -> None:
    parts = module.split(".")
    assert all(part.isidentifier() and not keyword.iskeyword(part) for part in parts), module
    assert DIST_NAME.match(dist), dist
    assert parts[0] not in STDLIB, f"{module} is a standard-library module"
    assert dist not in STDLIB, f"{module} maps to the standard-library name {dist}"
    # Only real mismatches: an entry equal to its import name after PEP 503 is noise.
    assert canonicalize_name(module) != canonicalize_name(dist) or "." in module


@pytest.mark.parametrize(
    ("module", "dist"),
    [
        ("sklearn", "scikit-learn"),
        ("sklearn.svm", "scikit-learn"),
        ("cv2", "opencv-python"),
        ("PIL.Image", "Pillow"),
        ("yaml", "PyYAML"),
        ("bs4", "beautifulsoup4"),
        ("skimage.io", "scikit-image"),
        ("attr", "attrs"),
        ("dateutil.parser", "python-dateutil"),
        ("Crypto.Cipher.AES", "pycryptodome"),
        ("google.protobuf", "protobuf"),
        ("google.protobuf.message", "protobuf"),
        ("google.cloud.storage.blob", "google-cloud-storage"),
        ("pkg_resources", "setuptools"),
        ("mpl_toolkits.mplot3d", "matplotlib"),
        ("mpl_toolkits.basemap", "basemap"),
    ],
)
def test_longest_dotted_prefix_wins(module: str, dist: str) -> None:
    assert table_lookup(module) == dist


def test_unknown_names_are_not_in_the_table() -> None:
    assert table_lookup("numpy") is None
    assert table_lookup("google") is None
    assert table_lookup("google.nothing_here") is None
