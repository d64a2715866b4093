"""The hyper_params section of a Grid-style --config YAML."""

from __future__ import annotations

import pytest
import yaml

from gridrun.errors import ConfigError, UsageError
from gridrun.sweep import expand, parse_config_hyper_params

pytestmark = pytest.mark.unit

CURRENT = """
compute:
  provider: {vendor: local}
hyper_params:
  settings:
    strategy: random_search
    strategy_options:
      num_trials: 3
      seed: 7
  params:
    learning_rate: uniform(0.001, 0.008, 20)
    gamma: 0.234
    batch_size: [32, 64]
    food: [hot dog, "it's", 1e-3]
    use_bn: true
    layers: "[1, 2]"
"""

LEGACY_2021 = """
hyper_params:
  settings:
    strategy: grid_search
    trials: 2
  params:
    lr: "[0.1, 0.01]"
"""


def test_current_layout() -> None:
    extra, strategy, num_trials, seed = parse_config_hyper_params(yaml.safe_load(CURRENT))
    assert (strategy, num_trials, seed) == ("random_search", 3, 7)
    assert extra == [
        "--learning_rate",
        "uniform(0.001, 0.008, 20)",
        "--gamma",
        "0.234",
        "--batch_size",
        "[32, 64]",
        "--food",
        "['hot dog', \"it's\", '1e-3']",
        "--use_bn",
        "True",
        "--layers",
        "[1, 2]",
    ]


def test_config_params_expand_to_the_values_written_in_yaml() -> None:
    extra, *_ = parse_config_hyper_params(yaml.safe_load(CURRENT))
    experiments = expand(["--epochs", "1", *extra], seed=0)
    assert len(experiments) == 20 * 2 * 3 * 2
    assert {e.params["food"] for e in experiments} == {"hot dog", "it's", "1e-3"}
    assert {e.params["batch_size"] for e in experiments} == {"32", "64"}
    assert experiments[0].argv[:2] == ["--epochs", "1"]
    assert experiments[0].argv[4:6] == ["--gamma", "0.234"]


def test_2021_trials_key() -> None:
    extra, strategy, num_trials, seed = parse_config_hyper_params(yaml.safe_load(LEGACY_2021))
    assert (extra, strategy, num_trials, seed) == (["--lr", "[0.1, 0.01]"], "grid_search", 2, None)
    nested = {"hyper_params": {"settings": {"strategy_options": {"trials": 4}}}}
    assert parse_config_hyper_params(nested) == ([], None, 4, None)


def test_missing_sections_give_nothing() -> None:
    assert parse_config_hyper_params({}) == ([], None, None, None)
    assert parse_config_hyper_params({"compute": {}}) == ([], None, None, None)
    assert parse_config_hyper_params({"hyper_params": {}}) == ([], None, None, None)
    only_params = {"hyper_params": {"params": {"--x": 1, "-y": 2.5}}}
    assert parse_config_hyper_params(only_params) == (["--x", "1", "-y", "2.5"], None, None, None)


def test_unknown_strategy_is_a_usage_error_listing_valid_ones() -> None:
    config = {"hyper_params": {"settings": {"strategy": "bayes"}}}
    with pytest.raises(UsageError, match="grid_search, random_search, none"):
        parse_config_hyper_params(config)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ([1, 2], "must be a mapping at the top level"),
        ({"hyper_params": [1]}, "hyper_params must be a mapping"),
        ({"hyper_params": {"settings": "x"}}, "hyper_params.settings must be a mapping"),
        ({"hyper_params": {"params": ["lr"]}}, "hyper_params.params must be a mapping"),
        (
            {"hyper_params": {"settings": {"strategy_options": {"num_trials": 0}}}},
            "num_trials must be an integer of at least 1",
        ),
        (
            {"hyper_params": {"settings": {"strategy_options": {"num_trials": "3"}}}},
            "num_trials must be an integer",
        ),
        (
            {"hyper_params": {"settings": {"seed": -1}}},
            "hyper_params.settings.seed must be an integer of at least 0",
        ),
        (
            {"hyper_params": {"settings": {"trials": 2, "strategy_options": {"num_trials": 3}}}},
            "Conflicting values",
        ),
        ({"hyper_params": {"params": {"lr": None}}}, "hyper_params.params.lr has no value"),
        ({"hyper_params": {"params": {"lr": []}}}, "hyper_params.params.lr is an empty list"),
        ({"hyper_params": {"params": {"lr": {"a": 1}}}}, "must be a string, number or list"),
        ({"hyper_params": {"params": {"": 1}}}, "invalid name"),
    ],
)
def test_malformed_configs(config, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_hyper_params(config)
    assert problem in info.value.message


def test_agreeing_duplicate_trial_keys_are_fine() -> None:
    config = {"hyper_params": {"settings": {"trials": 3, "strategy_options": {"num_trials": 3}}}}
    assert parse_config_hyper_params(config) == ([], None, 3, None)
