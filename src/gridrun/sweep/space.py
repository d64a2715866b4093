"""The search space of an adaptive search, read from the same sweep syntax as a grid.

``grid run --strategy bayesian train.py --lr "loguniform(1e-5, 1e-1)" --layers "[2, 4, 8]"``:

- a list, ``range()``, ``arange``/``linspace``/``logspace`` is categorical (``range`` an
  integer with its step, so ``range(1, 10**6)`` costs nothing);
- ``uniform(lo, hi)`` and ``loguniform(lo, hi)`` are continuous, ``randint(lo, hi)`` an
  integer in ``[lo, hi)``, as numpy's.

Grid's three-argument forms (``uniform(lo, hi, n)``) keep their meaning under grid and
random search, where ``n`` is the number of samples; here ``n`` means nothing, so it
is dropped with a one-line warning rather than refused. Any other distribution
(``normal``, ``beta``...) has no bounds to search within and is refused, naming the
ones that work.

Pure functions of the argument list, so the agent rebuilds each trial's command line
from the values Optuna chose (``render``) exactly as submission checked it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gridrun.errors import SweepSyntaxError, UsageError
from gridrun.sweep.argv import Slot, find_slots, unique_names
from gridrun.sweep.functions import Finite, ValueProblem, _RangeValues, format_number
from gridrun.sweep.syntax import _number, parse_value, unescape

CONTINUOUS = ("uniform", "loguniform", "randint")
_CALL = re.compile(r"\s*(uniform|loguniform|randint)\s*\((.*)\)\s*\Z", re.DOTALL)
#: More choices than this is a typo or a job for uniform()/randint().
MAX_CHOICES = 10_000
_HINT = (
    'Search over lists "[2, 4, 8]", range(1, 10), uniform(0, 0.5), '
    "loguniform(1e-5, 1e-1) or randint(1, 10)."
)


@dataclass(frozen=True)
class Param:
    """One searched argument: categorical ``choices``, or numbers in ``[low, high]``."""

    name: str  # the key in the experiment's params (--lr -> lr)
    slot: Slot
    kind: str  # "categorical", "float" or "int"
    choices: tuple[str, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: int = 1  # an int's step (range(0, 10, 2))
    log: bool = False

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"{self.name} in [{', '.join(self.choices)}]"
        shape = "log-uniform" if self.log else "uniform"
        if self.kind == "int":
            step = f" step {self.step}" if self.step != 1 else ""
            return f"{self.name} integer in [{self.low:g}, {self.high:g}]{step}"
        return f"{self.name} {shape} in [{self.low:g}, {self.high:g}]"


def search_space(args: Sequence[str], warn: Callable[[str], None]) -> list[Param]:
    """The searched arguments of ``args``, in command-line order; errors name the argument."""
    found: list[tuple[Slot, Param]] = []
    for slot in find_slots(args):
        if unescape(slot.value) is not None:
            continue
        try:
            param = _param(slot, warn)
        except ValueProblem as exc:
            raise SweepSyntaxError(f"{slot.display}: {exc}.", hint=_HINT) from exc
        if param is not None:
            found.append((slot, param))
    if not found:
        raise UsageError(
            "--strategy bayesian has nothing to search: no argument is a sweep value.",
            hint=_HINT,
        )
    names = unique_names([slot for slot, _ in found])
    return [
        Param(name, p.slot, p.kind, p.choices, p.low, p.high, p.step, p.log)
        for name, (_, p) in zip(names, found, strict=True)
    ]


def _param(slot: Slot, warn: Callable[[str], None]) -> Param | None:
    call = _CALL.match(slot.value)
    if call:
        return _continuous(slot, call.group(1), call.group(2), warn)
    dim = parse_value(slot.value)
    if dim is None:
        return None
    if not isinstance(dim, Finite):
        raise ValueProblem(
            f"{dim.name}() has no bounds to search within; bayesian search takes "
            "uniform(lo, hi), loguniform(lo, hi), randint(lo, hi) and lists"
        )
    if isinstance(dim.values, _RangeValues):
        r = dim.values._range
        if r.step > 0:  # an integer axis: Optuna models its order, and it is never built
            return Param(slot.name, slot, "int", low=r.start, high=r[-1], step=r.step)
    if len(dim) > MAX_CHOICES:
        raise ValueProblem(
            f"{len(dim):,} choices are too many to search; use uniform() or randint() instead"
        )
    return Param(slot.name, slot, "categorical", choices=tuple(dim.values))


def _continuous(slot: Slot, name: str, inner: str, warn: Callable[[str], None]) -> Param:
    parts = [p.strip() for p in inner.split(",")]
    if parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) == 3:
        warn(
            f"{slot.display}: bayesian search draws from {name}({parts[0]}, {parts[1]}); "
            f"the sample count {parts[2]} only means something to grid and random search."
        )
        parts = parts[:2]
    if len(parts) != 2 or not all(parts):
        raise ValueProblem(f"{name}() takes (low, high) under --strategy bayesian")
    low, high = (_number(name, i, text) for i, text in enumerate(parts, start=1))
    if name == "randint":
        if isinstance(low, float) or isinstance(high, float):
            raise ValueProblem("randint() low and high must be integers")
        if high <= low:
            raise ValueProblem(f"randint({low}, {high}) is empty (high is excluded)")
        return Param(slot.name, slot, "int", low=low, high=high - 1)
    if not low < high:
        raise ValueProblem(f"{name}() low must be less than high, got {low} and {high}")
    if name == "loguniform" and low <= 0:
        raise ValueProblem("loguniform() low and high must be greater than 0")
    log = name == "loguniform"
    return Param(slot.name, slot, "float", low=float(low), high=float(high), log=log)


def render(args: Sequence[str], space: Sequence[Param], values: Mapping[str, object]) -> list[str]:
    """The script's argument list with each searched value put in its place.

    ``values`` maps a param's name to what the sampler chose; floats are rendered as
    sweeps render them (12 significant digits).
    """
    argv = list(args)
    for slot in find_slots(args):  # escaped values reach the script without the backslash
        literal = unescape(slot.value)
        if literal is not None:
            argv[slot.index] = slot.prefix + literal
    for p in space:
        argv[p.slot.index] = p.slot.render(shown(values[p.name]))
    return argv


def shown(value: object) -> str:
    """A chosen value as the script receives it (and ``grid status`` shows it).

    Floats keep 6 significant digits: ``0.00261373``, not ``0.00261372782505``; no
    training run tells the difference, and every reader of a table does.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return format_number(float(f"{value:.6g}"))
    return format_number(value)
