"""The small PEP 508 checker: what it accepts, rejects and how it spells lines."""

from __future__ import annotations

import pytest

from gridrun.deps.pep508 import InvalidRequirement, canonicalize_name, parse_requirement

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("line", "canonical"),
    [
        ("numpy", "numpy"),
        ("numpy >= 1.20 , < 2", "numpy<2,>=1.20"),
        ("numpy (>=1.20)", "numpy>=1.20"),
        ("torch==2.1.0+cu118", "torch==2.1.0+cu118"),
        ("scipy==1.*", "scipy==1.*"),
        ("ray[tune, default]>=2", "ray[default,tune]>=2"),
        ("requests[]", "requests"),
        (
            "pkg @ https://example.com/pkg-1.0-py3-none-any.whl",
            "pkg @ https://example.com/pkg-1.0-py3-none-any.whl",
        ),
        (
            "pkg @ git+https://github.com/o/r.git@v1 ; python_version >= '3.8'",
            'pkg @ git+https://github.com/o/r.git@v1 ; python_version >= "3.8"',
        ),
        (
            'tomli>=1;python_version<"3.11"',
            'tomli>=1; python_version < "3.11"',
        ),
        (
            "pywin32; (sys_platform=='win32' and platform_machine != 'arm64') or os_name == 'nt'",
            'pywin32; (sys_platform == "win32" and platform_machine != "arm64") or os_name == "nt"',
        ),
        ("zope.interface~=5.0", "zope.interface~=5.0"),
        (
            "foo; extra == 'bar' and 'linux' in sys_platform",
            'foo; extra == "bar" and "linux" in sys_platform',
        ),
        ("foo; 'win' not in sys_platform", 'foo; "win" not in sys_platform'),
        ("legacy===1.0-weird", "legacy===1.0-weird"),
    ],
)
def test_valid_lines_are_canonicalised(line: str, canonical: str) -> None:
    assert str(parse_requirement(line)) == canonical


@pytest.mark.parametrize(
    "line",
    [
        "numpy===>1",
        "numpy==",
        "numpy 1.0",
        "numpy>=1,",
        "numpy>>1",
        "-numpy",
        "numpy; python_version <",
        "numpy; python_versio == '3'",
        "numpy; (python_version == '3'",
        "numpy;",
        "pkg @ not a url",
        "ray[tu ne]",
        "na me",
    ],
)
def test_invalid_lines_are_rejected(line: str) -> None:
    with pytest.raises(InvalidRequirement):
        parse_requirement(line)


def test_pep503_normalisation() -> None:
    assert canonicalize_name("PyYAML") == "pyyaml"
    assert canonicalize_name("Foo__Bar.baz-Qux") == "foo-bar-baz-qux"
