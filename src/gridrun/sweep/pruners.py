"""The pruners of ``--prune``, where gridrun uses Optuna's differently from its default.

A module of its own so that Optuna is imported only by the agent's search (like
everywhere else in :mod:`gridrun.sweep.search`), and the class can still be one.
"""

from __future__ import annotations

import optuna
from optuna.pruners import BasePruner, HyperbandPruner
from optuna.trial import FrozenTrial


class SharedHyperband(BasePruner):
    """Optuna's ``HyperbandPruner``, with the sampler learning from every trial.

    Optuna hands the sampler a study filtered to the asking trial's bracket whenever
    the study's pruner *is* a ``HyperbandPruner`` (``optuna.pruners._filter_study``),
    so TPE learns from that bracket alone; its documentation warns that each bracket
    then needs more than TPE's 10 random startup trials of its own. A 12-epoch script
    has 3 brackets (``floor(log3(13 / 1)) + 1``), so a 30-trial search was mostly
    random points, and found worse than the same search without pruning
    (``benchmarks/bench_search.py``). Wrapped, the pruner still judges each trial
    within its bracket (``HyperbandPruner.prune`` builds the bracket's study itself),
    and the sampler sees the whole study: TPE ranks a pruned trial by how far it got,
    then by its last value, below every finished one.

    Its settings are Optuna's: ``min_resource=1`` (a script's first printed step),
    ``max_resource="auto"`` (the last step of the first finished trial, plus one),
    ``reduction_factor=3``.
    """

    def __init__(self) -> None:
        self.hyperband = HyperbandPruner()

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.hyperband.prune(study, trial)
