"""Combine dimensions into the value tuples of the experiments.

Both strategies are deterministic given a seed: finite choices come from
``random.Random(seed)`` (no numpy needed for plain lists), distribution samples from
``numpy.random.default_rng(seed)``. Each dimension draws in command-line order, so
adding an unswept argument never changes which values are drawn.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

from gridrun.sweep.functions import Dimension, Finite, Sampled


def _rng(seed: int | None) -> Any:
    import numpy as np

    return np.random.default_rng(seed)


def grid_size(dims: Sequence[Dimension]) -> int:
    """How many experiments the grid has, computed without building it."""
    return math.prod(len(dim) for dim in dims)


def finite_size(dims: Sequence[Dimension]) -> int | None:
    """Number of distinct combinations, ``None`` when a distribution makes it unbounded."""
    if any(isinstance(dim, Sampled) for dim in dims):
        return None
    return grid_size(dims)


def grid(dims: Sequence[Dimension], seed: int | None) -> Iterator[tuple[str, ...]]:
    """The cross product, first dimension varying slowest.

    A distribution contributes ``n`` values drawn once, shared by every combination.
    """
    rng = _rng(seed) if any(isinstance(dim, Sampled) for dim in dims) else None
    columns: list[Sequence[str]] = []
    for dim in dims:
        if isinstance(dim, Sampled):
            columns.append(dim.draw(rng, dim.n))
        else:
            columns.append(dim.values)
    return itertools.product(*columns)


def random_search(
    dims: Sequence[Dimension], num_trials: int, seed: int | None
) -> list[tuple[str, ...]]:
    """``num_trials`` combinations; the caller has checked that enough exist.

    The finite dimensions' combinations are drawn without replacement (mixed-radix
    indices into the product, so a huge product is never built). When distributions
    are present and there are fewer finite combinations than trials, every finite
    combination is used once per round, in shuffled rounds, so none is starved.
    Each distribution draws one fresh value per trial (with replacement).
    """
    import random  # lazily: grid_search, the default, never needs it

    finite = [dim for dim in dims if isinstance(dim, Finite)]
    sizes = [len(dim) for dim in finite]
    total = math.prod(sizes)
    chooser = random.Random(seed)
    if total >= num_trials:
        indices = chooser.sample(range(total), num_trials)
    else:
        indices = []
        while len(indices) < num_trials:
            round_ = list(range(total))
            chooser.shuffle(round_)
            indices.extend(round_)
        del indices[num_trials:]
    finite_rows = [_decode(index, sizes) for index in indices]

    rng = _rng(seed) if len(finite) < len(dims) else None
    sampled_columns = [dim.draw(rng, num_trials) for dim in dims if isinstance(dim, Sampled)]

    rows: list[tuple[str, ...]] = []
    for trial, finite_digits in enumerate(finite_rows):
        digits = iter(finite_digits)
        samples = iter(sampled_columns)
        row = []
        for dim in dims:
            if isinstance(dim, Finite):
                row.append(dim.values[next(digits)])
            else:
                row.append(next(samples)[trial])
        rows.append(tuple(row))
    return rows


def _decode(index: int, sizes: Sequence[int]) -> list[int]:
    """Mixed-radix digits of ``index``, the first size being the most significant."""
    digits = [0] * len(sizes)
    for position in range(len(sizes) - 1, -1, -1):
        index, digits[position] = divmod(index, sizes[position])
    return digits
