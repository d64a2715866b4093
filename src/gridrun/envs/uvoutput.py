"""Turning uv's failure output into the one line a user needs.

uv explains a failed resolution at length; the run's status line should instead say
which package could not be installed and why, so the user can fix the requirement.
Anything not recognised falls back to the last meaningful line uv printed, which is
usually the root cause (the build backend's exception, the HTTP error).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_NAME = r"([A-Za-z0-9][A-Za-z0-9._-]*)"
_NOT_FOUND = re.compile(
    rf"Because {_NAME} was not found in the (?:package registry|provided package locations)"
)
_NO_VERSIONS = re.compile(rf"Because there are no versions of {_NAME}")
_ONLY = re.compile(rf"Because only (\S+?) (?:is|are) available and you require {_NAME}(\S*?),? ")
_NO_VERSION_OF = re.compile(rf"there is no version of {_NAME}(\S*?)(?: and| ,|,|$)")
_BUILD = re.compile(r"Failed to (?:build|prepare distributions|download and build)[: ]*`([^`]+)`")
_DOWNLOAD = re.compile(r"Failed to (?:download|fetch)[: ]*`([^`]+)`")
# pip's own wording (Python 2 environments are installed by pip, not uv).
_PIP_NOT_FOUND = re.compile(rf"No matching distribution found for {_NAME}")
_PIP_BUILD = re.compile(rf"Failed building wheel for {_NAME}|Running setup.py install for {_NAME}")
_INCLUDED = re.compile(rf"was included because `{_NAME}`")
_TREE = "×│├╰─▶ \t"
_NOISE = ("hint:", "help:", "[stderr]", "[stdout]", "--- stderr", "--- stdout")


def clean(line: str) -> str:
    """A uv line without its tree drawing and ``error:``/``cause:`` prefix."""
    text = line.strip().lstrip(_TREE).strip()
    for prefix in ("error:", "cause:", "Caused by:"):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
    return text


def last_meaningful(lines: Sequence[str]) -> str:
    """The last line that says something (not a hint, a caret marker or framing)."""
    for line in reversed(lines):
        text = clean(line)
        if not text or text.startswith(_NOISE) or not text.strip("^~|-. "):
            continue
        return _shorten(text)
    return "uv failed without output"


def requirement_name(requirement: str) -> str:
    """``foo[bar]>=1 @ url`` -> ``foo``; a URL or path is returned as given."""
    m = re.match(_NAME, requirement.strip())
    if m and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", requirement.strip()):
        return m.group(1)
    return requirement.strip()


def failing_name(lines: Sequence[str]) -> str | None:
    """The package a failed ``uv pip install`` names as the cause, if any."""
    text = "\n".join(clean(line) for line in lines)
    for pattern, group in (
        (_NOT_FOUND, 1),
        (_NO_VERSIONS, 1),
        (_ONLY, 2),
        (_NO_VERSION_OF, 1),
        (_BUILD, 1),
        (_DOWNLOAD, 1),
        (_PIP_NOT_FOUND, 1),
    ):
        if m := pattern.search(text):
            return requirement_name(m.group(group))
    if m := _PIP_BUILD.search(text):
        return requirement_name(m.group(1) or m.group(2))
    if "ERROR:" in text and (found := re.findall(rf"Collecting {_NAME}", text)):
        return requirement_name(found[-1])  # pip failed on what it was collecting last
    return None


def failing_line(lines: Sequence[str], requirements: Sequence[str]) -> str | None:
    """The requirement line (of ``requirements``) that the failure names, if any."""
    name = failing_name(lines)
    if name is None:
        return None
    wanted = [_canonical(name)]
    # A dependency failed: uv's hint names the requirement that pulled it in.
    text = "\n".join(clean(line) for line in lines)
    if m := _INCLUDED.search(text):
        wanted.append(_canonical(m.group(1)))
    for key in wanted:
        for line in requirements:
            if not line.startswith("-") and _canonical(requirement_name(line)) == key:
                return line
    return None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def failure_message(lines: Sequence[str]) -> str:
    """The one-line reason a ``uv pip install`` failed, naming the package if it can."""
    text = "\n".join(clean(line) for line in lines)
    if m := _NOT_FOUND.search(text) or _PIP_NOT_FOUND.search(text):
        return f"Could not install '{m.group(1)}': not found in the package index."
    if m := _NO_VERSIONS.search(text):
        return f"Could not install '{m.group(1)}': no version of it can be installed here."
    if m := _ONLY.search(text):
        available, name, spec = m.groups()
        return (
            f"Could not install '{name}': no version satisfies {name}{spec} "
            f"(only {available} is available)."
        )
    if m := _NO_VERSION_OF.search(text):
        name, spec = m.groups()
        return f"Could not install '{name}': there is no version {name}{spec}."
    if m := _BUILD.search(text):
        why = last_meaningful(lines)
        return _sentence(f"Could not install '{requirement_name(m.group(1))}': build failed: {why}")
    if m := _DOWNLOAD.search(text):
        why = last_meaningful(lines)
        return _sentence(
            f"Could not install '{requirement_name(m.group(1))}': download failed: {why}"
        )
    return _sentence(_generic(lines))


def _generic(lines: Sequence[str]) -> str:
    """uv's first error line with its root cause; else the last meaningful line.

    The root cause is uv's last ``cause:`` line, unless a subprocess's own output
    (``[stderr]`` or ``--- stderr``) follows it: then that output's last line, which
    names the actual problem (``fatal: could not resolve host``).
    """
    causes = [i for i, line in enumerate(lines) if _is_error(line) or _is_cause(line)]
    if not causes:
        return last_meaningful(lines)
    first = _shorten(clean(lines[causes[0]]))
    after = lines[causes[-1] + 1 :]
    if any(clean(line).startswith(("[stderr]", "--- stderr")) for line in after):
        reason = last_meaningful(after)
    else:
        reason = _shorten(clean(lines[causes[-1]]))
    return first if reason == first else _shorten(f"{first.rstrip(':')}: {reason}")


def _is_error(line: str) -> bool:
    return line.startswith("error:") or line.strip().startswith("×")


def _is_cause(line: str) -> bool:
    text = line.strip()
    return text.startswith(("cause:", "Caused by:", "╰─▶", "├─▶"))


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?", ")")) else text + "."


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Chatter:
    """Lines of a build's output that tell the user nothing, dropped from the build log.

    uv's ``Activate with: source .tmp-<key>-<hex>/bin/activate`` names the temporary
    folder that is renamed into place (gone by the time anyone reads it; gridrun
    activates the environment itself). A pyenv shim for a Python that is installed but
    not selected prints a block (``pyenv: python3.10: command not found``, the versions
    that have it, a note on ``pyenv global``) when uv probes it; uv goes on to the
    next Python, so the block is noise. Stateful: the block spans several lines.
    """

    _ACTIVATE = re.compile(r"^Activate with: ")
    _PYENV_START = re.compile(r"^pyenv: \S+: command not found$")
    _PYENV_BLOCK = re.compile(
        r"^$|^The `\S+' command exists in these Python versions:$|^\s+\S+$|"
        r"^Note: See 'pyenv help global' for tips on allowing both$|"
        r"^\s+python2 and python3 to be found\.$"
    )

    def __init__(self) -> None:
        self.in_pyenv = False

    def drop(self, line: str) -> bool:
        if self._ACTIVATE.match(line) or self._PYENV_START.match(line):
            self.in_pyenv = self.in_pyenv or bool(self._PYENV_START.match(line))
            return True
        if self.in_pyenv and self._PYENV_BLOCK.match(line):
            return True
        self.in_pyenv = False
        return False
