"""Find the argument values of a script's command line that may hold a sweep.

gridrun never sees the script's parser, so it reads the command line the way most
parsers (argparse, click, fire) would:

- ``--key=value`` / ``-k=value``: the value part, named ``key``;
- an option token (``--lr``, ``-x``) followed by a token that is not an option: that
  token is the option's value, named ``lr`` / ``x``. A flag followed by another option
  (``--test --lr 1``) has no value and is left alone;
- any other token is positional, named ``arg0``, ``arg1``... counting positionals only;
- ``--`` ends the options: every later token is positional. Negative numbers
  (``-1``, ``-.5``, ``-1e-3``) are values, never options.

A flag that takes no value but is followed by a positional (``--verbose data.csv``)
makes that positional look like the flag's value; this only changes the name under
which a swept value is recorded, never the command line the script receives.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_NEGATIVE_NUMBER = re.compile(r"-(?:\d|\.\d)")
_KEY_VALUE = re.compile(r"(-{1,2}[^-=\s][^=\s]*)=(.*)\Z", re.DOTALL)


@dataclass(frozen=True)
class Slot:
    """One token (or the value part of one) that could be swept."""

    index: int  # position of the token in the argument list
    name: str  # key in ExperimentArgs.params
    value: str  # the value text as given
    prefix: str  # what precedes the value in its token: "--lr=" or ""
    display: str  # how error messages show the argument: --lr "[1, 2"

    def render(self, value: str) -> str:
        """The token carrying ``value`` in place of the original value."""
        return self.prefix + value


def _is_option(token: str) -> bool:
    return len(token) > 1 and token.startswith("-") and not _NEGATIVE_NUMBER.match(token)


def find_slots(args: Sequence[str]) -> list[Slot]:
    """Every value-bearing token of ``args`` in command-line order."""
    slots: list[Slot] = []
    positional = 0
    options_ended = False
    pending: str | None = None  # an option token still waiting for its value
    for index, token in enumerate(args):
        if not options_ended and token == "--":
            options_ended, pending = True, None
            continue
        if not options_ended and _is_option(token):
            match = _KEY_VALUE.match(token)
            if match:
                key, value = match.group(1), match.group(2)
                slots.append(Slot(index, key.lstrip("-"), value, key + "=", f'{key}="{value}"'))
                pending = None
            else:
                pending = token
            continue
        if pending is not None:
            slots.append(Slot(index, pending.lstrip("-"), token, "", f'{pending} "{token}"'))
            pending = None
        else:
            name = f"arg{positional}"
            positional += 1
            slots.append(Slot(index, name, token, "", f'positional {name} "{token}"'))
    return slots


def unique_names(slots: Sequence[Slot]) -> list[str]:
    """Param keys for ``slots``; a repeated name gets ``_2``, ``_3``... so none is lost."""
    names: list[str] = []
    used: set[str] = set()
    for slot in slots:
        name, suffix = slot.name, 2
        while name in used:
            name, suffix = f"{slot.name}_{suffix}", suffix + 1
        used.add(name)
        names.append(name)
    return names
