"""Expand a script's argument list into experiments (hyperparameter sweeps).

Any argument value may be a sweep (see ``argv`` for what counts as a value)::

    grid run hello.py --number "[1, 2]" --food_item "['pizza', 'hotdog']"

gives four experiments, the cross product with the first swept argument varying
slowest: ``--number 1 --food_item pizza``, ``--number 1 --food_item hotdog``,
``--number 2 --food_item pizza``, ``--number 2 --food_item hotdog``. Everything else on
the command line, and its order, is kept as given.

Value syntax:

- list literals ``[32, 64]``, ``['pizza', "hot dog", bare]``, ``[True, False]``; each
  element reaches the script as written (``1e-3`` stays ``1e-3``), strings unquoted;
- ``range(start, stop, step)`` (integers), ``arange(start, stop, step)`` (floats too;
  ``stop`` always excluded), ``linspace(start, stop, num)`` and
  ``logspace(start, stop, num)`` (numpy semantics, base 10); computed floats are rounded
  to 12 significant digits so ``0.30000000000000004`` shows as ``0.3``;
- distributions whose last argument is the number of samples ``n``: ``uniform``,
  ``loguniform``, ``normal``, ``lognormal``, ``randint`` (``[low, high)``) and every
  univariate ``numpy.random.Generator`` distribution by name (``beta(a, b, n)``,
  ``poisson(lam, n)``...), all parameters required and positional.

Anything else passes through unchanged, including calls of unknown functions. A value
that clearly meant a sweep but is malformed (``[1, 2``, ``[0.1 0.01]``, ``[]``, a dict,
``range(1, 10, 0)``) raises ``SweepSyntaxError`` naming the argument, before anything
is recorded (see ``syntax`` for the exact rules). A leading backslash passes a value
literally: ``'\\[a-z]+'`` reaches the script as ``[a-z]+``.

Strategies (``STRATEGIES``):

- ``grid_search``: the cross product. A distribution contributes its ``n`` samples,
  drawn once and shared by every combination.
- ``random_search``: ``num_trials`` experiments. Without distributions the space is
  finite and trials are distinct combinations drawn *without replacement*; asking for
  more trials than combinations is an error. With distributions, each trial draws one
  fresh value from every distribution (sampling *with replacement*, ``n`` is ignored),
  while the finite arguments are still drawn without replacement, in shuffled rounds
  once all their combinations have been used.
- ``none``: nothing is expanded; one experiment with the arguments as given.

The same ``seed`` always gives the same experiments (``random.Random(seed)`` for
choices, ``numpy.random.default_rng(seed)`` for samples); without a seed, samples and
random choices differ from call to call. numpy is imported only when a value needs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gridrun.errors import SweepSyntaxError, UsageError
from gridrun.sweep import strategies
from gridrun.sweep.argv import Slot, find_slots, unique_names
from gridrun.sweep.config import STRATEGIES, normalize_strategy, parse_config_hyper_params
from gridrun.sweep.functions import Dimension, ValueProblem
from gridrun.sweep.syntax import parse_value, unescape

__all__ = [
    "CONFIRM_THRESHOLD",
    "STRATEGIES",
    "ExperimentArgs",
    "count_experiments",
    "expand",
    "normalize_strategy",
    "parse_config_hyper_params",
]

#: Above this many experiments the CLI should ask before recording anything.
CONFIRM_THRESHOLD = 1000

_HINT = (
    'Sweep values look like "[1, 2, 3]", "range(1, 10, 2)" or "uniform(1e-5, 1e-1, 3)"; '
    "to pass a value literally, start it with a backslash ('\\[a b]')."
)


@dataclass
class ExperimentArgs:
    """One experiment: the script's full argument list and the values swept into it."""

    argv: list[str]
    params: dict[str, str] = field(default_factory=dict)


def _plan(args: Sequence[str]) -> list[tuple[Slot, Dimension]]:
    """The swept arguments, in command-line order, each with its dimension."""
    plan: list[tuple[Slot, Dimension]] = []
    for slot in find_slots(args):
        try:
            dim = parse_value(slot.value)
        except ValueProblem as exc:
            raise SweepSyntaxError(f"{slot.display}: {exc}.", hint=_HINT) from exc
        if dim is not None:
            plan.append((slot, dim))
    return plan


def _check_trials(strategy: str, num_trials: int | None) -> int:
    if num_trials is None:
        raise UsageError(
            "random_search needs a number of trials (num_trials).",
            hint="Give num_trials, or use grid_search to run every combination.",
        )
    if isinstance(num_trials, bool) or not isinstance(num_trials, int) or num_trials < 1:
        raise UsageError(f"num_trials must be a positive integer, got {num_trials!r}.")
    return num_trials


def _check_random_space(dims: Sequence[Dimension], num_trials: int) -> None:
    size = strategies.finite_size(dims)
    if size is not None and size < num_trials:
        s = "" if size == 1 else "s"
        raise SweepSyntaxError(
            f"random_search asked for {num_trials} trials but the swept values make only "
            f"{size} combination{s}.",
            hint=f"Lower num_trials to {size} or less, or use grid_search to run them all.",
        )


def count_experiments(
    args: Sequence[str], strategy: str = "grid_search", num_trials: int | None = None
) -> int:
    """How many experiments ``expand`` would return, without building them.

    Raises the same errors as ``expand``. Compare with ``CONFIRM_THRESHOLD``.
    """
    strategy = normalize_strategy(strategy)
    if strategy == "none":
        return 1
    dims = [dim for _, dim in _plan(args)]
    if strategy == "random_search":
        trials = _check_trials(strategy, num_trials)
        _check_random_space(dims, trials)
        return trials
    return strategies.grid_size(dims)


def expand(
    args: Sequence[str],
    strategy: str = "grid_search",
    num_trials: int | None = None,
    seed: int | None = None,
) -> list[ExperimentArgs]:
    """The experiments for the script arguments ``args``.

    ``num_trials`` is used by ``random_search`` only; ``seed`` makes sampled values and
    random choices reproducible.
    """
    strategy = normalize_strategy(strategy)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}.")
    base = list(args)
    for slot in find_slots(args):  # escaped values reach the script without the backslash
        literal = unescape(slot.value)
        if literal is not None:
            base[slot.index] = slot.prefix + literal
    if strategy == "none":
        return [ExperimentArgs(base, {})]
    plan = _plan(args)
    slots = [slot for slot, _ in plan]
    dims = [dim for _, dim in plan]
    if strategy == "random_search":
        trials = _check_trials(strategy, num_trials)
        _check_random_space(dims, trials)
        rows: Iterable[tuple[str, ...]] = strategies.random_search(dims, trials, seed)
    else:
        rows = strategies.grid(dims, seed)

    names = unique_names(slots)
    experiments: list[ExperimentArgs] = []
    for row in rows:
        argv = base.copy()
        for slot, value in zip(slots, row, strict=True):
            argv[slot.index] = slot.render(value)
        experiments.append(ExperimentArgs(argv, dict(zip(names, row, strict=True))))
    return experiments
