"""``--prune hyperband``: Optuna's pruner judges, and the sampler sees every trial."""

from __future__ import annotations

import optuna
import pytest
from optuna.pruners import HyperbandPruner, _filter_study

from gridrun.sweep.pruners import SharedHyperband

pytestmark = pytest.mark.unit


def _study(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """12-epoch curves, 20 finished trials, then one running at epoch 2."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="s", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    for _i in range(20):
        t = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        for epoch in range(1, 13):
            t.report(t.params["x"] + 1 / epoch, epoch)
        study.tell(t, t.params["x"] + 1 / 12)
    return study


def test_the_sampler_sees_every_trial_and_the_pruner_judges_as_hyperband() -> None:
    shared, plain = _study(SharedHyperband()), _study(HyperbandPruner())
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    decisions = []
    for x in (0.0, 0.5, 5.0, 0.2, 3.0):
        a, b = shared.ask(dist), plain.ask(dist)
        for epoch in (1, 3, 9):
            a.report(x + 1 / epoch, epoch)
            b.report(x + 1 / epoch, epoch)
            decisions.append((a.should_prune(), b.should_prune()))
    assert all(mine == theirs for mine, theirs in decisions)
    assert any(mine for mine, _ in decisions)  # a trial far worse than all is pruned
    # Once it judged a trial (and so knows its brackets), Optuna narrows the sampler's
    # study to one bracket for a HyperbandPruner only.
    n = len(shared.get_trials())
    assert len(_filter_study(plain, plain.get_trials()[-1]).get_trials()) < n
    assert len(_filter_study(shared, shared.get_trials()[-1]).get_trials()) == n
