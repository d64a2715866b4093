"""Read the sweep part of a Grid-style ``--config`` YAML.

Both layouts Grid.ai used are accepted::

    hyper_params:                      hyper_params:          # 2021 layout
      settings:                          settings:
        strategy: random_search            strategy: random_search
        strategy_options:                  trials: 2
          num_trials: 2                  params:
          seed: 7                          learning_rate: uniform(0.001, 0.008, 20)
      params:
        learning_rate: "[0.1, 0.01]"
        batch_size: [32, 64]

``params`` become ``--name value`` arguments appended to the script's own, so they go
through exactly the same expansion as values typed on the command line. A YAML list is
written back as a list literal whose strings are quoted, so ``[hot dog, 1e-3]`` reaches
the script as ``hot dog`` and ``1e-3``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gridrun.errors import ConfigError, UsageError

STRATEGIES = ("grid_search", "random_search", "none")


def normalize_strategy(strategy: str) -> str:
    """``strategy`` as one of ``STRATEGIES`` (``Grid-Search`` is accepted), else UsageError."""
    name = str(strategy).strip().lower().replace("-", "_")
    if name not in STRATEGIES:
        raise UsageError(
            f"Unknown sweep strategy {strategy!r}; valid strategies: {', '.join(STRATEGIES)}.",
            hint="grid_search runs every combination, random_search samples num_trials "
            "of them, none passes values through unexpanded.",
        )
    return name


def parse_config_hyper_params(
    config: Mapping[str, Any],
) -> tuple[list[str], str | None, int | None, int | None]:
    """``(extra_args, strategy, num_trials, seed)`` from a parsed config dict.

    Missing settings are ``None`` so that the caller can layer CLI flags over them.
    """
    if not isinstance(config, Mapping):
        raise ConfigError("The config file must be a mapping at the top level.")
    hyper = config.get("hyper_params")
    if hyper is None:
        return [], None, None, None
    hyper = _mapping(hyper, "hyper_params")
    _known(hyper, "hyper_params", ("settings", "params"))
    settings = _mapping(hyper.get("settings"), "hyper_params.settings")
    _known(
        settings,
        "hyper_params.settings",
        ("strategy", "strategy_options", "num_trials", "trials", "seed"),
    )
    options = _mapping(settings.get("strategy_options"), "hyper_params.settings.strategy_options")
    _known(options, "hyper_params.settings.strategy_options", ("num_trials", "trials", "seed"))

    strategy = settings.get("strategy")
    if strategy is not None:
        strategy = normalize_strategy(strategy)

    trial_keys = [
        (options, "hyper_params.settings.strategy_options", "num_trials"),
        (options, "hyper_params.settings.strategy_options", "trials"),
        (settings, "hyper_params.settings", "num_trials"),
        (settings, "hyper_params.settings", "trials"),
    ]
    num_trials = _single_int(trial_keys, minimum=1)
    seed = _single_int(
        [
            (options, "hyper_params.settings.strategy_options", "seed"),
            (settings, "hyper_params.settings", "seed"),
        ],
        minimum=0,
    )

    params = _mapping(hyper.get("params"), "hyper_params.params")
    extra: list[str] = []
    for key, value in params.items():
        if not isinstance(key, str) or not key.strip("-"):
            raise ConfigError(f"hyper_params.params has an invalid name: {key!r}.")
        flag = key if key.startswith("-") else f"--{key}"
        extra += [flag, _render(value, f"hyper_params.params.{key}")]
    return extra, strategy, num_trials, seed


def _known(mapping: Mapping[str, Any], where: str, valid: tuple[str, ...]) -> None:
    """Every key of Grid's YAML is read or refused; none is dropped silently."""
    unknown = [str(k) for k in mapping if k not in valid]
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {', '.join(sorted(unknown))} in {where}.",
            hint=f"Valid keys: {', '.join(valid)}.",
        )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}.")
    return value


def _single_int(keys: list[tuple[Mapping[str, Any], str, str]], minimum: int) -> int | None:
    """The one integer given under any of ``keys``; conflicting values are an error."""
    found: dict[str, int] = {}
    for mapping, where, key in keys:
        if key not in mapping:
            continue
        value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(
                f"{where}.{key} must be an integer of at least {minimum}, got {value!r}."
            )
        found[f"{where}.{key}"] = value
    if len(set(found.values())) > 1:
        listed = ", ".join(f"{k}={v}" for k, v in found.items())
        raise ConfigError(f"Conflicting values in the config: {listed}.")
    return next(iter(found.values()), None)


def _render(value: Any, where: str) -> str:
    """A param value as the command-line text the sweep parser expects."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError(f"{where} is an empty list; give at least one value.")
        return "[" + ", ".join(_element(v, where) for v in value) + "]"
    return _scalar(value, where)


def _element(value: Any, where: str) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_element(v, where) for v in value) + "]"
    return _scalar(value, where)


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, (bool, int, float)):
        return repr(value)
    if value is None:
        raise ConfigError(f"{where} has no value.", hint="Give it a value or remove it.")
    raise ConfigError(f"{where} must be a string, number or list, got {type(value).__name__}.")
