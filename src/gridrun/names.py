"""Run names: ``spiffy-sunfish-821`` style, and the rules for ``--name``."""

from __future__ import annotations

import random
import re

from gridrun.errors import UsageError

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_EXP_SUFFIX = re.compile(r"exp\d+$")
MAX_LEN = 63


def generate_run_name(taken: set[str] | None = None) -> str:
    """A two-word coolname slug and a number, unique among ``taken``."""
    from coolname import generate_slug

    taken = taken or set()
    while True:
        name = f"{generate_slug(2)}-{random.randint(100, 999)}"
        if name not in taken and validate_run_name(name, raise_error=False):
            return name


def validate_run_name(name: str, raise_error: bool = True) -> bool:
    """Lowercase alphanumerics and ``-``; must not end in ``exp<digit>`` (experiment names)."""
    problem = None
    if not name or len(name) > MAX_LEN:
        problem = f"must be 1 to {MAX_LEN} characters"
    elif not _NAME.match(name):
        problem = "may contain only lowercase letters, digits and '-', not at either end"
    elif _EXP_SUFFIX.search(name):
        problem = "must not end in 'exp<digit>' (that is how experiments are named)"
    if problem and raise_error:
        raise UsageError(f"Invalid run name '{name}': {problem}.")
    return problem is None


def experiment_name(run_name: str, index: int) -> str:
    return f"{run_name}-exp{index}"


def split_experiment_name(name: str) -> tuple[str, int] | None:
    """``spiffy-sunfish-821-exp3`` -> ``("spiffy-sunfish-821", 3)``."""
    m = re.match(r"^(.*)-exp(\d+)$", name)
    return (m.group(1), int(m.group(2))) if m else None
