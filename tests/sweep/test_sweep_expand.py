"""Turning whole argument lists into experiments: strategies, order, counts, speed."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gridrun
from gridrun.errors import SweepSyntaxError, UsageError
from gridrun.sweep import (
    CONFIRM_THRESHOLD,
    STRATEGIES,
    ExperimentArgs,
    count_experiments,
    expand,
)

HELLO = ["--number", "[1, 2]", "--food_item", "['pizza', 'hotdog']"]


@pytest.mark.unit
def test_the_four_experiment_example_exactly() -> None:
    assert [e.argv for e in expand(HELLO)] == [
        ["--number", "1", "--food_item", "pizza"],
        ["--number", "1", "--food_item", "hotdog"],
        ["--number", "2", "--food_item", "pizza"],
        ["--number", "2", "--food_item", "hotdog"],
    ]
    assert expand(HELLO)[1] == ExperimentArgs(
        ["--number", "1", "--food_item", "hotdog"], {"number": "1", "food_item": "hotdog"}
    )
    assert count_experiments(HELLO) == 4


@pytest.mark.unit
def test_order_and_unswept_arguments_are_preserved() -> None:
    args = ["data.csv", "--test", "--lr", "[0.1, 0.01]", "-v", "--out", "/tmp/x", "--", "-z"]
    experiments = expand(args)
    assert [e.argv for e in experiments] == [
        ["data.csv", "--test", "--lr", "0.1", "-v", "--out", "/tmp/x", "--", "-z"],
        ["data.csv", "--test", "--lr", "0.01", "-v", "--out", "/tmp/x", "--", "-z"],
    ]
    assert [e.params for e in experiments] == [{"lr": "0.1"}, {"lr": "0.01"}]


@pytest.mark.unit
def test_key_value_form_short_options_and_positionals() -> None:
    args = ["[a, b]", "--lr=[1e-3, 1e-4]", "-k", "range(2)", "--flag", "--", "[x]"]
    experiments = expand(args)
    assert len(experiments) == 2 * 2 * 2
    assert experiments[0].argv == ["a", "--lr=1e-3", "-k", "0", "--flag", "--", "x"]
    assert experiments[-1].argv == ["b", "--lr=1e-4", "-k", "1", "--flag", "--", "x"]
    assert experiments[-1].params == {"arg0": "b", "lr": "1e-4", "k": "1", "arg1": "x"}


@pytest.mark.unit
def test_negative_numbers_are_values_not_options() -> None:
    experiments = expand(["--low", "-1", "--x", "[-1, -2.5]"])
    assert [e.argv for e in experiments] == [
        ["--low", "-1", "--x", "-1"],
        ["--low", "-1", "--x", "-2.5"],
    ]
    # -1 is the value of --offset, so the list after it is the first positional
    assert expand(["--offset", "-1", "[a, b]"])[1].params == {"arg0": "b"}
    assert expand(["-.5", "-1e-3", "[a]"])[0].params == {"arg2": "a"}


@pytest.mark.unit
def test_repeated_option_names_keep_both_params() -> None:
    experiments = expand(["--x", "[1, 2]", "--x", "[3]"])
    assert experiments[1].params == {"x": "2", "x_2": "3"}
    assert experiments[1].argv == ["--x", "2", "--x", "3"]


@pytest.mark.unit
def test_no_sweep_gives_one_experiment() -> None:
    assert expand(["--lr", "0.1"]) == [ExperimentArgs(["--lr", "0.1"], {})]
    assert expand([]) == [ExperimentArgs([], {})]
    assert count_experiments(["--lr", "0.1"]) == 1


@pytest.mark.unit
def test_strategy_none_passes_everything_through() -> None:
    args = ["--lr", "[1, 2]", "--x", "uniform(0, 1, 3)", "--bad", "[1, 2"]
    assert expand(args, strategy="none") == [ExperimentArgs(args, {})]
    assert count_experiments(args, strategy="none") == 1


@pytest.mark.unit
def test_unknown_strategy_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError) as info:
        expand(HELLO, strategy="bayesian")
    assert all(name in info.value.message for name in STRATEGIES)
    with pytest.raises(UsageError):
        count_experiments(HELLO, strategy="bayesian")
    assert len(expand(HELLO, strategy="Grid-Search")) == 4


@pytest.mark.unit
def test_grid_with_distribution_reuses_its_samples_in_every_combination() -> None:
    experiments = expand(["--a", "[1, 2]", "--lr", "uniform(0, 1, 3)"], seed=5)
    assert count_experiments(["--a", "[1, 2]", "--lr", "uniform(0, 1, 3)"]) == 6
    first = [e.params["lr"] for e in experiments[:3]]
    second = [e.params["lr"] for e in experiments[3:]]
    assert first == second and len(set(first)) == 3
    assert experiments == expand(["--a", "[1, 2]", "--lr", "uniform(0, 1, 3)"], seed=5)
    assert experiments != expand(["--a", "[1, 2]", "--lr", "uniform(0, 1, 3)"], seed=6)


GRID = ["--a", "range(10)", "--b", "[x, y, z]", "--c", "[True, False]"]


@pytest.mark.unit
def test_random_search_is_reproducible_with_a_seed() -> None:
    first = expand(GRID, "random_search", num_trials=8, seed=3)
    assert len(first) == 8
    assert first == expand(GRID, "random_search", num_trials=8, seed=3)
    assert [e.argv for e in first] != [
        e.argv for e in expand(GRID, "random_search", num_trials=8, seed=4)
    ]
    full_grid = [e.argv for e in expand(GRID)]
    assert all(e.argv in full_grid for e in first)


@pytest.mark.unit
def test_random_search_samples_without_replacement() -> None:
    every = expand(GRID, "random_search", num_trials=60, seed=1)
    assert sorted(map(tuple, (e.argv for e in every))) == sorted(
        map(tuple, (e.argv for e in expand(GRID)))
    )
    for seed in range(20):
        trials = [tuple(e.argv) for e in expand(GRID, "random_search", num_trials=30, seed=seed)]
        assert len(set(trials)) == 30


@pytest.mark.unit
def test_random_search_over_a_huge_space_does_not_build_it() -> None:
    args = ["--a", "range(1000000000)", "--b", "range(1000000000)"]
    assert count_experiments(args) == 10**18
    start = time.perf_counter()
    trials = expand(args, "random_search", num_trials=50, seed=0)
    assert time.perf_counter() - start < 1.0
    assert len({tuple(e.argv) for e in trials}) == 50
    assert count_experiments(args, "random_search", num_trials=50) == 50


@pytest.mark.unit
def test_random_search_with_too_few_combinations_is_an_error() -> None:
    args = ["--a", "[1, 2]", "--b", "[x, y, z]"]
    with pytest.raises(SweepSyntaxError) as info:
        expand(args, "random_search", num_trials=7, seed=0)
    assert "7 trials" in info.value.message and "only 6 combinations" in info.value.message
    with pytest.raises(SweepSyntaxError):
        count_experiments(args, "random_search", num_trials=7)
    assert len(expand(args, "random_search", num_trials=6, seed=0)) == 6


@pytest.mark.unit
def test_random_search_needs_a_positive_num_trials() -> None:
    with pytest.raises(UsageError, match="num_trials"):
        expand(HELLO, "random_search")
    with pytest.raises(UsageError, match="num_trials"):
        count_experiments(HELLO, "random_search", num_trials=0)


@pytest.mark.unit
def test_random_search_draws_fresh_samples_per_trial() -> None:
    args = ["--opt", "[adam, sgd]", "--lr", "loguniform(1e-5, 1e-1, 2)", "--bs", "[32]"]
    trials = expand(args, "random_search", num_trials=9, seed=11)
    assert count_experiments(args, "random_search", num_trials=9) == 9
    assert len({e.params["lr"] for e in trials}) == 9  # n=2 is ignored: one draw per trial
    assert all(1e-5 <= float(e.params["lr"]) <= 1e-1 for e in trials)
    assert trials == expand(args, "random_search", num_trials=9, seed=11)
    # finite arguments are spread evenly over the trials (shuffled rounds)
    opts = [e.params["opt"] for e in trials]
    assert sorted((opts.count("adam"), opts.count("sgd"))) == [4, 5]
    assert [e.argv[4:] for e in trials] == [["--bs", "32"]] * 9


@pytest.mark.unit
def test_count_exposes_big_sweeps_without_building_them() -> None:
    args = ["--a", "range(100)", "--b", "range(100)", "--c", "range(100)"]
    start = time.perf_counter()
    assert count_experiments(args) == 1_000_000 > CONFIRM_THRESHOLD
    assert time.perf_counter() - start < 0.05


@pytest.mark.unit
def test_seed_must_be_a_non_negative_integer() -> None:
    with pytest.raises(UsageError, match="seed"):
        expand(HELLO, seed=-1)


@pytest.mark.unit
def test_200_combinations_expand_well_under_10ms() -> None:
    args = ["--a", str(list(range(20))), "--b", str([f"w{i}" for i in range(10)]), "--c", "1"]
    assert count_experiments(args) == 200
    best = min(_timed(lambda: expand(args)) for _ in range(20))
    assert best < 0.005, f"{best * 1000:.2f} ms"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_plain_sweeps_do_not_import_numpy() -> None:
    """``grid run`` startup must not pay for numpy unless a value needs it."""
    code = (
        "import sys\n"
        "from gridrun.sweep import expand, count_experiments\n"
        "expand(['--a', '[1, 2]', '--b', 'range(3)', '--c', 'arange(0.1, 0.5, 0.1)'])\n"
        "expand(['--a', '[1, 2, 3]'], 'random_search', 2, seed=1)\n"
        "print('numpy' in sys.modules)\n"
        "expand(['--a', 'uniform(0, 1, 2)'])\n"
        "print('numpy' in sys.modules)\n"
    )
    src = str(Path(gridrun.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["False", "True"]


@pytest.mark.unit
def test_grid_order_is_the_cross_product_first_argument_slowest() -> None:
    args = ["--a", "[1, 2, 3]", "pos", "--b", "[x, y]", "--c", "range(2)"]
    got = [(e.params["a"], e.params["b"], e.params["c"]) for e in expand(args)]
    assert got == list(itertools.product(["1", "2", "3"], ["x", "y"], ["0", "1"]))
