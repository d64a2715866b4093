"""Series that never change are parameters: split_constants and constant_keys."""

from __future__ import annotations

import math

import pytest

from gridrun.metrics.constants import constant_keys, is_constant, split_constants

pytestmark = pytest.mark.unit


def test_split_constants() -> None:
    nan = math.nan
    series = {
        "loss": [(0.0, 0.0, 1.0), (1.0, 0.0, 0.5)],
        "seed": [(0.0, 0.0, 42.0)],
        "lr": [(0.0, 0.0, 0.1), (1.0, 0.0, 0.1), (2.0, 0.0, 0.1)],
        "diverged": [(0.0, 0.0, nan), (1.0, 0.0, nan)],
        "went_nan": [(0.0, 0.0, 1.0), (1.0, 0.0, nan)],
        "empty": [],
    }
    charted, constants = split_constants(series)
    assert set(charted) == {"loss", "went_nan"}
    assert constants["seed"] == 42.0 and constants["lr"] == 0.1
    assert math.isnan(constants["diverged"]) and set(constants) == {"seed", "lr", "diverged"}
    assert not is_constant([])


def test_constant_keys_from_a_summary() -> None:
    summary = {
        "loss": {"last": 0.5, "min": 0.5, "max": 1.0, "count": 2.0},
        "seed": {"last": 42.0, "min": 42.0, "max": 42.0, "count": 1.0},
        "went_nan": {"last": math.nan, "min": 1.0, "max": 1.0, "count": 2.0},
    }
    assert constant_keys(summary) == {"seed": 42.0}
