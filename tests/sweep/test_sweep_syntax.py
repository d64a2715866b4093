"""Every value form the sweep syntax accepts, rejects or passes through."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from gridrun.errors import SweepSyntaxError, UsageError
from gridrun.sweep import count_experiments, expand
from gridrun.sweep.functions import NUMPY_DISTRIBUTIONS

pytestmark = pytest.mark.unit


def values(value: str, seed: int | None = 0) -> list[str]:
    """The values one swept ``--x`` argument takes, in order."""
    return [e.params["x"] for e in expand(["--x", value], seed=seed)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[32, 64, 128]", ["32", "64", "128"]),
        ("['pizza', 'hotdog']", ["pizza", "hotdog"]),
        ('["pizza", "hotdog"]', ["pizza", "hotdog"]),
        ("[pizza, hotdog]", ["pizza", "hotdog"]),
        ("[True, False]", ["True", "False"]),
        ("[1, 'two', 3.5, True]", ["1", "two", "3.5", "True"]),
        ("[1e-3, 0.10, -2]", ["1e-3", "0.10", "-2"]),
        ("[hot dog, 'a, b', \"it's\"]", ["hot dog", "a, b", "it's"]),
        (r"['tab\there']", ["tab\there"]),
        ("[1, 2,]", ["1", "2"]),
        ("  [ 1 ,2 ]  ", ["1", "2"]),
        ("[32]", ["32"]),
        ("[[1, 2], [3]]", ["[1, 2]", "[3]"]),
        ("[(1, 2), {'a': 1}]", ["(1, 2)", "{'a': 1}"]),
    ],
)
def test_list_literals(value: str, expected: list[str]) -> None:
    assert values(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("range(1, 10, 2)", ["1", "3", "5", "7", "9"]),
        ("range(3)", ["0", "1", "2"]),
        ("range(5, 2, -1)", ["5", "4", "3"]),
        ("arange(0.1, 0.4, 0.1)", ["0.1", "0.2", "0.3"]),
        ("arange(1, 1.3, 0.1)", ["1.0", "1.1", "1.2"]),
        ("arange(3)", ["0", "1", "2"]),
        ("arange(0, 1, 0.25)", ["0.0", "0.25", "0.5", "0.75"]),
        ("linspace(0, 1, 5)", ["0.0", "0.25", "0.5", "0.75", "1.0"]),
        ("linspace(0, 1, 4)", ["0.0", "0.333333333333", "0.666666666667", "1.0"]),
        ("logspace(-5, -1, 5)", ["1e-05", "0.0001", "0.001", "0.01", "0.1"]),
        ("logspace(0, 2, 3)", ["1.0", "10.0", "100.0"]),
    ],
)
def test_deterministic_functions(value: str, expected: list[str]) -> None:
    assert values(value) == expected


def test_arange_matches_numpy_when_numpy_has_no_rounding_quirk() -> None:
    got = [float(v) for v in values("arange(-1, 2, 0.3)")]
    assert got == pytest.approx(np.arange(-1, 2, 0.3).tolist())


@pytest.mark.parametrize(
    ("value", "n", "check"),
    [
        ("uniform(1e-5, 1e-1, 3)", 3, lambda v: 1e-5 <= float(v) < 1e-1),
        ("loguniform(1e-5, 1e-1, 4)", 4, lambda v: 1e-5 <= float(v) <= 1e-1),
        ("normal(0, 1, 5)", 5, lambda v: -10 < float(v) < 10),
        ("lognormal(0, 1, 2)", 2, lambda v: float(v) > 0),
        ("randint(1, 4, 6)", 6, lambda v: v in {"1", "2", "3"}),
        ("integers(10, 12, 3)", 3, lambda v: v in {"10", "11"}),
        ("beta(2, 5, 3)", 3, lambda v: 0 < float(v) < 1),
        ("exponential(2, 3)", 3, lambda v: float(v) >= 0),
        ("poisson(3, 4)", 4, lambda v: v.isdigit()),
        ("standard_normal(2)", 2, lambda v: float(v) == float(v)),
        ("triangular(0, 1, 2, 3)", 3, lambda v: 0 <= float(v) <= 2),
    ],
)
def test_distributions(value: str, n: int, check) -> None:
    got = values(value, seed=42)
    assert len(got) == n
    assert all(check(v) for v in got), got
    assert got == values(value, seed=42)  # reproducible with a seed
    assert len(values(value, seed=None)) == n


def test_sampled_floats_are_rounded_to_12_significant_digits() -> None:
    got = values("uniform(0, 1, 20)", seed=1)
    assert len(set(got)) == 20
    for v in got:
        assert v == repr(float(f"{float(v):.12g}")), v


def test_distribution_table_matches_numpy() -> None:
    """Every univariate numpy Generator distribution is known, with its arity."""
    not_distributions = {"bit_generator", "bytes", "spawn", "shuffle", "permutation", "permuted"}
    multivariate = {
        "choice",
        "dirichlet",
        "multinomial",
        "multivariate_hypergeometric",
        "multivariate_normal",
    }
    public = {n for n in dir(np.random.Generator) if not n.startswith("_")}
    assert set(NUMPY_DISTRIBUTIONS) == public - not_distributions - multivariate
    options = {"self", "size", "dtype", "out", "method", "endpoint"}
    for name, params in NUMPY_DISTRIBUTIONS.items():
        signature = inspect.signature(getattr(np.random.Generator, name))
        assert len([p for p in signature.parameters if p not in options]) == len(params), name


@pytest.mark.parametrize(
    "value",
    [
        "/data/train.csv",
        "1e-3",
        "pizza",
        "[ab]*.csv",
        "data/[ab]*.csv",
        "foo(1, 2)",
        "print(1, 2, 3)",
        "(1, 2)",
        "uniform",
        "rangefinder(1)",
        "",
    ],
)
def test_non_sweep_values_pass_through(value: str) -> None:
    experiments = expand(["--x", value, "pos"])
    assert len(experiments) == 1
    assert experiments[0].argv == ["--x", value, "pos"]
    assert experiments[0].params == {}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[1, 2", "unclosed list (expected ']')."),
        ("[[1, 2], [3]", "unclosed list (expected ']')."),
        ("[1,,2]", "empty element at position 2."),
        ("[,]", "empty element at position 1."),
        ("['a, b]", "unterminated string"),
        ("['a'b, c]", "unexpected 'b' after element 1"),
        ("[1, 2]]", "unexpected text after the closing ']'"),
        ("[1, 2] x", "unexpected text after the closing ']'"),
        ("[a), b]", "unbalanced ')'"),
        ("range(1, 10, 0)", "range() step must not be zero"),
        ("range(5, 1)", "range(5, 1) is empty"),
        ("range(0.5, 2)", "range() takes integers; use arange() for floats"),
        ("range()", "range() takes 1 or 2 or 3 arguments"),
        ("range(1, 2", "unclosed call (expected ')'"),
        ("arange(0, 1, 0)", "arange() step must not be zero"),
        ("arange(1, 0, 0.1)", "is empty"),
        ("arange(0, 1e9, 0.5)", "more than 1,000,000"),
        ("linspace(0, 1)", "linspace() takes 3 arguments"),
        ("linspace(0, 1, 2.5)", "num must be a positive integer, got 2.5"),
        ("logspace(0, 1, 0)", "num must be a positive integer, got 0"),
        ("uniform(1)", "uniform() takes 3 arguments (low, high, n), got 1"),
        ("uniform(1, 2, 3, 4)", "uniform() takes 3 arguments (low, high, n), got 4"),
        ("normal(0, 1, x)", "normal() argument 3 is not a number: 'x'"),
        ("normal(0, 1, 0)", "n (the number of samples) must be a positive integer"),
        ("normal(0, 1, 2.5)", "n (the number of samples) must be a positive integer"),
        ("normal(0, , 3)", "normal() argument 2 is empty"),
        ("uniform(low=1, high=2, n=3)", "takes positional arguments only"),
        ("uniform([1], 2, 3)", "arguments must be numbers"),
        ("poisson(-1, 3)", "poisson(): lam < 0"),
        ("beta(-1, 2, 3)", "beta(): a <= 0"),
        ("loguniform(0, 1, 3)", "loguniform() low and high must be greater than 0"),
        ("randint(1.5, 3, 2)", "randint() low must be an integer, got 1.5"),
        ("binomial(10.5, 0.5, 2)", "binomial() n must be an integer"),
    ],
)
def test_malformed_values_name_the_argument(value: str, problem: str) -> None:
    with pytest.raises(SweepSyntaxError) as info:
        expand(["--test", "--lr", value])
    message = info.value.message
    assert message.startswith(f'--lr "{value}": ')
    assert problem in message
    assert message.endswith(".")
    assert "\n" not in message
    assert isinstance(info.value, UsageError)
    assert info.value.hint  # the next step is always given
    with pytest.raises(SweepSyntaxError):
        count_experiments(["--lr", value])


def test_spec_error_message_exactly() -> None:
    with pytest.raises(SweepSyntaxError) as info:
        expand(["--lr", "[1, 2"])
    assert info.value.message == "--lr \"[1, 2\": unclosed list (expected ']')."


def test_errors_name_key_value_and_positional_forms() -> None:
    with pytest.raises(SweepSyntaxError, match=r'^--lr="\[1, 2": unclosed list'):
        expand(["--lr=[1, 2"])
    with pytest.raises(SweepSyntaxError, match=r'^positional arg1 "range\(1, 2, 0\)": range'):
        expand(["a.txt", "range(1, 2, 0)"])
