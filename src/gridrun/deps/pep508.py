"""A small PEP 508 checker: enough to reject a broken line before the build does.

gridrun validates requirement lines itself instead of importing ``packaging`` because
``packaging`` is not a declared dependency and because its grammar accepts lines that
no installer will ever satisfy (``numpy===>1`` parses there as arbitrary equality with
the version ``>1``). The result is also the canonical spelling of the line, so that
two files writing the same requirement differently hash to the same environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
NAME_RE = re.compile(rf"^{NAME}$")
_VERSION_OP = r"~=|===|==|!=|<=|>=|<|>"
# A version must start with a letter or digit: this is what turns ``===>1`` away.
_SPEC = rf"\s*(?:{_VERSION_OP})\s*[A-Za-z0-9][A-Za-z0-9._*+!-]*\s*"
_SPECS = rf"{_SPEC}(?:,{_SPEC})*"
_REQ_RE = re.compile(
    rf"""^\s*(?P<name>{NAME})\s*
    (?:\[(?P<extras>[^\]]*)\]\s*)?
    (?:@\s*(?P<url>\S+)\s*|\((?P<pspecs>{_SPECS})\)\s*|(?P<specs>{_SPECS}))?
    (?:;(?P<marker>.*))?$""",
    re.X,
)
_ONE_SPEC_RE = re.compile(rf"^\s*({_VERSION_OP})\s*(\S+?)\s*$")
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")

MARKER_VARIABLES = frozenset(
    {
        "python_version",
        "python_full_version",
        "os_name",
        "sys_platform",
        "platform_release",
        "platform_system",
        "platform_version",
        "platform_machine",
        "platform_python_implementation",
        "implementation_name",
        "implementation_version",
        "extra",
        # legacy spellings still accepted by pip
        "os.name",
        "sys.platform",
        "platform.version",
        "platform.machine",
        "platform.python_implementation",
        "python_implementation",
    }
)
_MARKER_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'[^']*'|"[^"]*")
      | (?P<op>===|==|!=|<=|>=|~=|<|>|not\s+in\b|in\b)
      | (?P<paren>[()])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.X,
)


class InvalidRequirement(ValueError):
    """A line that is not PEP 508; the message says which part is wrong."""


@dataclass(frozen=True)
class Requirement:
    name: str
    extras: tuple[str, ...]
    specifier: str  # "" or e.g. ">=1.0,<2"
    url: str | None
    marker: str | None

    def __str__(self) -> str:
        text = self.name
        if self.extras:
            text += "[" + ",".join(self.extras) + "]"
        if self.url:
            text += f" @ {self.url}"
        else:
            text += self.specifier
        if self.marker:
            text += f"{' ' if self.url else ''}; {self.marker}"
        return text


def canonicalize_name(name: str) -> str:
    """PEP 503 normalisation: ``PyYAML`` and ``pyyaml`` and ``py_yaml`` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(line: str) -> Requirement:
    """Parse one PEP 508 requirement; raise :class:`InvalidRequirement` if it is not."""
    match = _REQ_RE.match(line)
    if not match:
        raise InvalidRequirement(f"not a valid requirement: {line.strip()!r}")
    extras: tuple[str, ...] = ()
    if match["extras"] is not None:
        items = [item.strip() for item in match["extras"].split(",") if item.strip()]
        bad = [item for item in items if not NAME_RE.match(item)]
        if bad:
            raise InvalidRequirement(f"invalid extra {bad[0]!r} in {line.strip()!r}")
        extras = tuple(sorted(set(items), key=str.lower))
    url = match["url"]
    if url is not None and not _URL_RE.match(url):
        raise InvalidRequirement(f"invalid URL {url!r} in {line.strip()!r}")
    raw_specs = match["pspecs"] or match["specs"] or ""
    specs = []
    for part in raw_specs.split(",") if raw_specs.strip() else []:
        found = _ONE_SPEC_RE.match(part)
        if found is None:  # pragma: no cover - the line regex already accepted it
            raise InvalidRequirement(f"invalid version specifier {part.strip()!r}")
        specs.append(found.group(1) + found.group(2))
    marker = None
    if match["marker"] is not None:
        marker = normalize_marker(match["marker"])
    return Requirement(match["name"], extras, ",".join(sorted(specs)), url, marker)


def normalize_marker(text: str) -> str:
    """Check an environment marker's grammar and return it with canonical spacing."""
    tokens = _tokenize_marker(text)
    if not tokens:
        raise InvalidRequirement("empty environment marker after ';'")
    pos = _parse_or(tokens, 0)
    if pos != len(tokens):
        raise InvalidRequirement(f"unexpected {tokens[pos][1]!r} in marker {text.strip()!r}")
    text = ""
    previous = ""
    for kind, value in tokens:
        if kind == "str" and '"' not in value[1:-1]:
            value = '"' + value[1:-1] + '"'
        elif kind == "op":
            value = " ".join(value.split())
        glue = "" if not text or previous == "(" or value == ")" else " "
        text += glue + value
        previous = value if kind == "paren" else ""
    return text


def _tokenize_marker(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _MARKER_TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise InvalidRequirement(f"cannot read marker {text.strip()!r} at {text[pos:]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _parse_or(tokens: list[tuple[str, str]], pos: int) -> int:
    pos = _parse_and(tokens, pos)
    while pos < len(tokens) and tokens[pos] == ("word", "or"):
        pos = _parse_and(tokens, pos + 1)
    return pos


def _parse_and(tokens: list[tuple[str, str]], pos: int) -> int:
    pos = _parse_atom(tokens, pos)
    while pos < len(tokens) and tokens[pos] == ("word", "and"):
        pos = _parse_atom(tokens, pos + 1)
    return pos


def _parse_atom(tokens: list[tuple[str, str]], pos: int) -> int:
    if pos < len(tokens) and tokens[pos] == ("paren", "("):
        pos = _parse_or(tokens, pos + 1)
        if pos >= len(tokens) or tokens[pos] != ("paren", ")"):
            raise InvalidRequirement("unbalanced parentheses in marker")
        return pos + 1
    pos = _parse_value(tokens, pos)
    if pos >= len(tokens) or tokens[pos][0] != "op":
        raise InvalidRequirement("marker comparison without an operator")
    return _parse_value(tokens, pos + 1)


def _parse_value(tokens: list[tuple[str, str]], pos: int) -> int:
    if pos >= len(tokens):
        raise InvalidRequirement("marker ends too early")
    kind, value = tokens[pos]
    if kind == "str" or (kind == "word" and value in MARKER_VARIABLES):
        return pos + 1
    raise InvalidRequirement(f"unknown marker variable {value!r}")


def is_url(text: str) -> bool:
    """True for ``https://...``, ``git+ssh://...``, ``file:...``: a direct reference."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text)) or text.startswith("file:")
