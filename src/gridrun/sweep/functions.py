"""The sweep functions: ``range``/``arange``/``linspace``/``logspace`` and distributions.

A call in an argument value becomes one *dimension* of the sweep:

- ``Finite``: a fixed sequence of rendered values (lists, ``range``, ``arange``,
  ``linspace``, ``logspace``). ``range`` (and integer ``arange``) stays lazy so that
  a huge range used with ``random_search`` costs nothing until a trial picks from it.
- ``Sampled``: a distribution plus ``n``, the number of samples the grid takes from it.
  Values are drawn only when experiments are built, from a generator the caller seeds.

numpy is imported here only inside the functions that need it, so ``grid run`` with
plain lists never pays numpy's import time. Distribution names and arities are a fixed
table (checked against numpy in the tests) for the same reason: recognising
``beta(2, 5, 4)`` must not import numpy just to learn that ``beta`` exists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: The most values one argument may generate; beyond this a typo (``linspace(0, 1, 1e9)``)
#: would exhaust memory before the experiment count could even be confirmed.
MAX_VALUES_PER_ARGUMENT = 1_000_000

#: ``numpy.random.Generator`` univariate distributions: name -> parameter names. Every
#: parameter is required in the sweep syntax and ``n`` (number of samples) comes last.
NUMPY_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "beta": ("a", "b"),
    "binomial": ("n", "p"),
    "chisquare": ("df",),
    "exponential": ("scale",),
    "f": ("dfnum", "dfden"),
    "gamma": ("shape", "scale"),
    "geometric": ("p",),
    "gumbel": ("loc", "scale"),
    "hypergeometric": ("ngood", "nbad", "nsample"),
    "integers": ("low", "high"),
    "laplace": ("loc", "scale"),
    "logistic": ("loc", "scale"),
    "lognormal": ("mean", "sigma"),
    "logseries": ("p",),
    "negative_binomial": ("n", "p"),
    "noncentral_chisquare": ("df", "nonc"),
    "noncentral_f": ("dfnum", "dfden", "nonc"),
    "normal": ("mean", "std"),
    "pareto": ("a",),
    "poisson": ("lam",),
    "power": ("a",),
    "random": (),
    "rayleigh": ("scale",),
    "standard_cauchy": (),
    "standard_exponential": (),
    "standard_gamma": ("shape",),
    "standard_normal": (),
    "standard_t": ("df",),
    "triangular": ("left", "mode", "right"),
    "uniform": ("low", "high"),
    "vonmises": ("mu", "kappa"),
    "wald": ("mean", "scale"),
    "weibull": ("a",),
    "zipf": ("a",),
}

#: Distributions Grid.ai offered that numpy's Generator spells differently.
EXTRA_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "loguniform": ("low", "high"),  # exp(uniform(log low, log high))
    "randint": ("low", "high"),  # integers in [low, high), like numpy.random.randint
}

DISTRIBUTIONS: dict[str, tuple[str, ...]] = {**NUMPY_DISTRIBUTIONS, **EXTRA_DISTRIBUTIONS}

#: Parameters numpy would silently truncate or reject when given a float.
_INTEGER_PARAMS: dict[str, tuple[int, ...]] = {
    "binomial": (0,),
    "hypergeometric": (0, 1, 2),
    "integers": (0, 1),
    "randint": (0, 1),
}

DETERMINISTIC = ("range", "arange", "linspace", "logspace")

#: Every name that, followed by ``(``, makes an argument value a sweep.
FUNCTION_NAMES = frozenset(DETERMINISTIC) | frozenset(DISTRIBUTIONS)

Number = int | float


class ValueProblem(Exception):
    """What is wrong with one value; the caller adds which argument it was."""


def format_number(x: Any) -> str:
    """Render a computed number the way a script expects to receive it.

    Floats are rounded to 12 significant digits and then printed in Python's shortest
    round-trip form, so ``arange(0.1, 0.4, 0.1)`` yields ``0.3`` and not
    ``0.30000000000000004``.
    """
    if isinstance(x, (bool, int)):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        return repr(x)
    return repr(float(f"{x:.12g}"))


@dataclass(frozen=True)
class Finite:
    """A dimension with a fixed, ordered set of values (already rendered as strings)."""

    values: Sequence[str]

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Sampled:
    """A distribution; the grid takes ``n`` samples, random search one per trial."""

    name: str
    params: tuple[Number, ...]
    n: int

    def draw(self, rng: Any, size: int) -> list[str]:
        """Draw ``size`` values from ``rng`` (a ``numpy.random.Generator``), rendered."""
        if self.name == "loguniform":
            import numpy as np

            low, high = self.params
            raw = np.exp(rng.uniform(math.log(low), math.log(high), size))
        elif self.name == "randint":
            raw = rng.integers(*self.params, size=size)
        else:
            raw = getattr(rng, self.name)(*self.params, size=size)
        return [format_number(v) for v in raw.tolist()]

    def __len__(self) -> int:
        return self.n


Dimension = Finite | Sampled


class _RangeValues(Sequence[str]):
    """A Python ``range`` whose items are rendered on access (never materialised)."""

    def __init__(self, r: range) -> None:
        self._range = r

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [str(v) for v in self._range[index]]
        return str(self._range[index])


def build(name: str, args: list[Number]) -> Dimension:
    """Turn ``name(*args)`` into a dimension, or raise ``ValueProblem``."""
    if name == "range":
        return _range(args)
    if name in ("arange", "linspace", "logspace"):
        return _numpy_sequence(name, args)
    return _distribution(name, args)


def _signature(name: str, params: Sequence[str]) -> str:
    return f"{name}({', '.join(params)})"


def _check_count(name: str, args: list[Number], allowed: Sequence[int], params: str) -> None:
    if len(args) not in allowed:
        want = " or ".join(str(n) for n in allowed)
        s = "" if allowed == (1,) else "s"
        raise ValueProblem(f"{name}() takes {want} argument{s} {params}, got {len(args)}")


def _positive_count(name: str, what: str, value: Number) -> int:
    if isinstance(value, float) or value < 1:
        raise ValueProblem(f"{name}(): {what} must be a positive integer, got {value!r}")
    if value > MAX_VALUES_PER_ARGUMENT:
        raise ValueProblem(
            f"{name}(): {what}={value} is more than {MAX_VALUES_PER_ARGUMENT:,} values"
        )
    return int(value)


def _range(args: list[Number]) -> Finite:
    _check_count("range", args, (1, 2, 3), "(start, stop, step)")
    if any(isinstance(a, float) for a in args):
        raise ValueProblem("range() takes integers; use arange() for floats")
    if len(args) == 3 and args[2] == 0:
        raise ValueProblem("range() step must not be zero")
    r = range(*(int(a) for a in args))
    shown = f"range({', '.join(map(str, args))})"
    try:
        empty = len(r) == 0
    except OverflowError:  # more values than a machine word counts (range(2**64))
        raise ValueProblem(f"{shown} has more values than a sweep can count") from None
    if empty:
        raise ValueProblem(f"{shown} is empty")
    return Finite(_RangeValues(r))


def _numpy_sequence(name: str, args: list[Number]) -> Finite:
    if name == "arange":
        return _arange(args)
    _check_count(name, args, (3,), "(start, stop, num)")
    num = _positive_count(name, "num", args[2])
    import numpy as np

    raw = getattr(np, name)(args[0], args[1], num)
    return Finite(tuple(format_number(v) for v in raw.tolist()))


def _arange(args: list[Number]) -> Finite:
    """numpy's ``arange`` without its float quirk: ``stop`` is always excluded.

    ``numpy.arange(1, 1.3, 0.1)`` has four values, ending in ``1.3``, because
    ``(1.3 - 1) / 0.1`` is ``3.0000000000000004``; rounding that quotient to 12
    significant digits before taking the ceiling gives the three values users mean.
    Integer arguments give integers, exactly like ``range``.
    """
    _check_count("arange", args, (1, 2, 3), "(start, stop, step)")
    start: Number
    stop: Number
    step: Number
    if len(args) == 1:
        start, stop, step = 0, args[0], 1
    elif len(args) == 2:
        start, stop, step = args[0], args[1], 1
    else:
        start, stop, step = args
    if step == 0:
        raise ValueProblem("arange() step must not be zero")
    ratio = float(f"{(stop - start) / step:.12g}")
    if not math.isfinite(ratio):  # values near the float limits: inf or nan
        raise ValueProblem(f"arange() would make more than {MAX_VALUES_PER_ARGUMENT:,} values")
    count = math.ceil(ratio)
    if count <= 0:
        raise ValueProblem(f"arange({', '.join(map(str, args))}) is empty")
    if all(isinstance(a, int) for a in (start, stop, step)):
        return _range([start, stop, step])  # lazy, as range() is
    if count > MAX_VALUES_PER_ARGUMENT:
        shown = f"{count:,}" if count < 10**15 else f"about {float(count):.1e}"
        raise ValueProblem(
            f"arange() would make {shown} values, more than {MAX_VALUES_PER_ARGUMENT:,}"
        )
    return Finite(tuple(format_number(start + i * step) for i in range(count)))


def _distribution(name: str, args: list[Number]) -> Sampled:
    params = DISTRIBUTIONS[name]
    want = len(params) + 1
    if len(args) != want:
        s = "" if want == 1 else "s"
        raise ValueProblem(
            f"{name}() takes {want} argument{s} {_signature('', (*params, 'n'))}, "
            f"got {len(args)}; the last one is the number of samples"
        )
    n = _positive_count(name, "n (the number of samples)", args[-1])
    for position in _INTEGER_PARAMS.get(name, ()):
        if isinstance(args[position], float):
            raise ValueProblem(
                f"{name}() {params[position]} must be an integer, got {args[position]!r}"
            )
    dim = Sampled(name, tuple(args[:-1]), n)
    if name == "loguniform" and min(dim.params) <= 0:
        raise ValueProblem("loguniform() low and high must be greater than 0")
    # One throwaway draw validates the parameters now (beta(-1, 2, 3), poisson(-1, 2)),
    # so the error shows before anything is recorded, not when experiments are built.
    import numpy as np

    try:
        dim.draw(np.random.default_rng(0), 1)
    except (ValueError, TypeError, OverflowError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueProblem(f"{name}(): {reason}") from exc
    return dim
