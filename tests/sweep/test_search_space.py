"""The search space of ``--strategy bayesian``, read from the sweep syntax; the objective."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gridrun.errors import SweepSyntaxError, UsageError
from gridrun.specs import SearchSpec
from gridrun.store.models import Experiment, Run, Status
from gridrun.sweep.search import best_of, objective_value, parse_objective
from gridrun.sweep.space import render, search_space, shown
from spec_helpers import run_spec

pytestmark = pytest.mark.unit


def _run(search: SearchSpec, statuses: list[Status]) -> Run:
    """A search's run with one experiment per status (ids from 1), in memory."""
    spec = replace(run_spec(), search=search)
    run = Run(1, "r", 0.0, "local", Status.PENDING, spec, None, None, None, None, search="done")
    for i, status in enumerate(statuses):
        fields = dict.fromkeys(Experiment.__dataclass_fields__)
        fields.update(
            id=i + 1, run_id=1, run_name="r", name=f"r-exp{i}", index=i, argv=[], params={},
            status=status, cpus=1.0, gpus=0, gpu_ids=[], queued_at=0.0, stop_requested=False,
            restarts=0, retries=0, preemptions=0, backend="local",
        )  # fmt: skip
        run.experiments.append(Experiment(**fields))
    return run


def _space(*args: str) -> tuple[list, list[str]]:
    warnings: list[str] = []
    return search_space(list(args), warnings.append), warnings


def test_lists_ranges_and_distributions_become_searched_params() -> None:
    space, warnings = _space(
        "--lr",
        "loguniform(1e-5, 1e-1)",
        "--layers",
        "[2, 4, 8]",
        "--dropout=uniform(0, 0.5)",
        "--epochs",
        "10",
        "--batch",
        "range(16, 129, 16)",
        "--seed",
        "randint(0, 10)",
    )
    assert warnings == []
    by_name = {p.name: p for p in space}
    assert list(by_name) == ["lr", "layers", "dropout", "batch", "seed"]
    assert (by_name["lr"].kind, by_name["lr"].low, by_name["lr"].high, by_name["lr"].log) == (
        "float",
        1e-5,
        1e-1,
        True,
    )
    assert by_name["layers"].kind == "categorical"
    assert by_name["layers"].choices == ("2", "4", "8")
    assert (by_name["dropout"].kind, by_name["dropout"].log) == ("float", False)
    batch = by_name["batch"]
    assert (batch.kind, batch.low, batch.high, batch.step) == ("int", 16, 128, 16)
    assert (by_name["seed"].kind, by_name["seed"].low, by_name["seed"].high) == ("int", 0, 9)


def test_grid_three_argument_uniform_warns_and_drops_the_count() -> None:
    space, warnings = _space("--dropout", "uniform(0, 0.5, 3)")
    assert (space[0].low, space[0].high) == (0.0, 0.5)
    assert len(warnings) == 1
    assert "uniform(0, 0.5)" in warnings[0] and "grid and random search" in warnings[0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("normal(0, 1, 3)", "no bounds to search"),
        ("uniform(1, 1)", "low must be less than high"),
        ("loguniform(0, 1)", "greater than 0"),
        ("randint(5, 5)", "is empty"),
        ("randint(0.5, 3)", "must be integers"),
        ("uniform(0)", "takes (low, high)"),
        ("[1, 2", "unclosed list"),
    ],
)
def test_bad_search_values_name_the_argument(value: str, message: str) -> None:
    with pytest.raises(SweepSyntaxError) as info:
        _space("--lr", value)
    assert "--lr" in info.value.message and message in info.value.message


def test_nothing_to_search_is_an_error() -> None:
    with pytest.raises(UsageError, match="nothing to search"):
        _space("--epochs", "10")


def test_render_puts_each_value_in_its_place() -> None:
    args = ["--lr", "loguniform(1e-5, 1e-1)", "--layers=[2, 4]", "--pattern", "\\[a-z]+"]
    space, _ = _space(*args)
    argv = render(args, space, {"lr": 0.000123456789, "layers": "4"})
    assert argv == ["--lr", "0.000123457", "--layers=4", "--pattern", "[a-z]+"]
    assert shown(3) == "3" and shown(0.1) == "0.1"


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("val_loss:min", SearchSpec("val_loss", "minimize", "last")),
        ("acc:MAX:best", SearchSpec("acc", "maximize", "best")),
        ("loss:min:last", SearchSpec("loss", "minimize", "last")),
    ],
)
def test_objective_parses(text: str, spec: SearchSpec) -> None:
    assert parse_objective(text) == spec


@pytest.mark.parametrize("text", ["val_loss", "val_loss:low", ":min", "a:min:worst", "a:min:b:c"])
def test_bad_objective_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="NAME:min or NAME:max"):
        parse_objective(text)


def test_objective_value_last_or_best_and_the_best_trial() -> None:
    minimize = SearchSpec("loss", "minimize", "last")
    stats = {"last": 0.5, "min": 0.2, "max": 0.9, "count": 3.0}
    assert objective_value(minimize, stats) == 0.5
    assert objective_value(SearchSpec("loss", "minimize", "best"), stats) == 0.2
    assert objective_value(SearchSpec("acc", "maximize", "best"), stats) == 0.9
    assert objective_value(minimize, None) is None
    assert objective_value(minimize, {**stats, "last": float("nan")}) is None

    run = _run(
        SearchSpec("loss", "minimize", "last"),
        [Status.SUCCEEDED, Status.PRUNED, Status.SUCCEEDED, Status.FAILED],
    )
    summary = {
        1: {"loss": {"last": 0.4, "min": 0.4, "max": 0.4, "count": 1.0}},
        2: {"loss": {"last": 0.1, "min": 0.1, "max": 0.1, "count": 1.0}},  # pruned
        3: {"loss": {"last": 0.3, "min": 0.3, "max": 0.3, "count": 1.0}},
        4: {"loss": {"last": 0.0, "min": 0.0, "max": 0.0, "count": 1.0}},  # failed
    }
    best = best_of(run, summary)
    assert best is not None
    exp, value = best
    assert isinstance(exp, Experiment)
    assert (exp.name, value) == ("r-exp2", 0.3)
