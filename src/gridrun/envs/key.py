"""The environment key: a content hash naming a cached environment by what is in it.

Two runs that need the same Python, platform and requirements (and the same pip
index/constraints, passed as ``extra``) share one environment; any change that could
alter what gets installed gives a new key. Cosmetic differences (case, ``_`` vs
``-``, spacing, comments, order of requirement lines) do not.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
from collections.abc import Sequence

# Bump when the normalisation below or the build recipe changes: old keys must not be
# reused. 2: environments have their own pip.
KEY_SCHEME = 2
_ARCHIVES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tar.xz")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_NAME = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[[^\]]*\])?\s*(.*)$", re.S)
_COMMENT = re.compile(r"(^|\s+)#.*$")  # pip's rule: '#' starts a comment after whitespace
_PY = re.compile(r"^(?:python|py|cpython)?-?(\d+)\.(\d+)(?:\.\d+)?(?:[a-z]+\d*)?$", re.I)


def canonical_name(name: str) -> str:
    """PEP 503 normalisation: ``Foo_Bar.baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def python_minor(python: str) -> str:
    """``3.11.7`` or ``python3.11`` -> ``3.11``; anything else (a path) as given."""
    m = _PY.match(python.strip())
    return f"{m.group(1)}.{m.group(2)}" if m else python.strip()


def is_option(line: str) -> bool:
    """A requirements-file option line (``--extra-index-url X``, ``-c file``)."""
    return line.lstrip().startswith("-")


def normalize_requirement(line: str) -> str | None:
    """One requirement line in canonical form; None for a blank or comment line."""
    line = _COMMENT.sub("", line).strip()
    if not line:
        return None
    if is_option(line):
        return " ".join(line.split())
    head = re.split(r"[@;\[<>=!~\s]", line, maxsplit=1)[0]
    if _URL.match(line) or "/" in head or "\\" in head or head.lower().endswith(_ARCHIVES):
        return line  # a URL or a local path: case and separators matter
    m = _NAME.match(line)
    if not m:
        return " ".join(line.split())
    name = canonical_name(m.group(1))
    extras = ""
    if m.group(2):
        names = sorted(
            {canonical_name(e.strip()) for e in m.group(2)[1:-1].split(",") if e.strip()}
        )
        extras = f"[{','.join(names)}]" if names else ""
    rest = m.group(3).strip()
    if rest.startswith("@"):  # PEP 508 direct reference: the URL is kept verbatim
        url, _, marker = rest[1:].partition(" ;")
        out = f"{name}{extras} @ {url.strip()}"
        return f"{out}; {' '.join(marker.split())}" if marker.strip() else out
    spec, _, marker = rest.partition(";")
    clauses = sorted(c for c in "".join(spec.split()).strip("()").split(",") if c)
    out = f"{name}{extras}{','.join(clauses)}"
    return f"{out}; {' '.join(marker.split())}" if marker.strip() else out


def normalize_requirements(requirements: Sequence[str]) -> list[str]:
    """Option lines first, in their order (it can matter); then sorted unique packages."""
    options: list[str] = []
    packages: set[str] = set()
    for raw in requirements:
        for line in raw.splitlines() or [raw]:
            norm = normalize_requirement(line)
            if norm is None:
                continue
            if is_option(norm) and not norm.startswith(("-e ", "--editable")):
                options.append(norm)
            else:
                packages.add(norm)
    return options + sorted(packages)


def count_packages(requirements: Sequence[str]) -> int:
    """How many requirement lines name something to install (not options)."""
    return sum(
        1
        for r in normalize_requirements(requirements)
        if not is_option(r) or r.startswith(("-e ", "--editable"))
    )


def environment_key(python: str, requirements: Sequence[str], extra: str = "") -> str:
    """sha256 (16 hex chars) of Python X.Y, platform, requirements and ``extra``."""
    payload = {
        "scheme": KEY_SCHEME,
        "python": python_minor(python),
        "platform": f"{sys.platform}-{platform.machine()}",
        "requirements": normalize_requirements(requirements),
        "extra": extra,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
