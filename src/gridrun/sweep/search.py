"""Adaptive search (``--strategy bayesian``): Optuna's ask and tell over gridrun's experiments.

Trials are experiments. The agent calls :meth:`SearchDriver.step` on every pass; for
each run whose search is open it

1. queues an experiment for every trial Optuna has asked for that has none yet (a
   restarted agent finds such a trial in the journal when it died in between);
2. tells Optuna how each finished experiment did: the objective's ``last`` or
   ``best`` value as gridrun parsed it from the unmodified script (stdout,
   TensorBoard, CSV), ``pruned``, or failed when there is no value;
3. reports each running experiment's new values of the objective with their steps,
   and prunes it when the pruner says so: the store records why, and the supervisor
   stops it gracefully, as ``grid stop`` does; it ends ``pruned`` (unless it had
   already exited 0 on its own: then it succeeded). Between its passes the agent
   calls :meth:`SearchDriver.report` for this alone, every
   ``SEARCH_POLL_SECONDS``, and the supervisors of such trials read their metrics as
   often, so a trial is judged within a fraction of a second of each value;
4. asks for new trials while fewer than ``slots`` of the run's are queued or running
   and the run has trials left (``--num_trials``);
5. closes the search once every trial was asked and told.

The study lives in an Optuna journal file in the run's folder
(``GRID_HOME/runs/RUN/study.journal``). Trial ``n`` is experiment ``expN``, and both
halves of every step are idempotent, so an agent killed at any point resumes the study
where it was: finished trials keep their values and are never run again.

``TPESampler(multivariate=True, constant_liar=True)``: several trials are always
running at once, and the liar keeps the sampler from asking for the same point again
while they do; the multivariate TPE models the parameters jointly (Optuna's
documentation reports it better than the independent one, and makes it the default
from 5.0). Its other settings are Optuna's: measured on ``benchmarks/bench_search.py``'s
function over 200 seeds, fewer startup trials, another ``gamma``, more EI candidates
or no prior all landed within noise of them.
"""

from __future__ import annotations

import logging
import math
import statistics
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridrun.specs import ExperimentSpec, SearchSpec
from gridrun.store.models import Experiment, Run, Status
from gridrun.sweep.space import Param, render, search_space, shown

if TYPE_CHECKING:
    import optuna

    from gridrun.store.db import Store
    from gridrun.sweep.journal import SearchJournal

log = logging.getLogger("gridrun.agent")

DEFAULT_TRIALS = 20  # a search is bounded even when --num_trials is left out
# How often a pruning search's running trials are read and judged: by their
# supervisors (metrics) and by the agent (SearchDriver.report), both only for them.
SEARCH_POLL_SECONDS = 0.2
PRUNERS = ("median", "hyperband", "none")


def parse_objective(text: str) -> SearchSpec:
    """``val_loss:min``, ``accuracy:max:best``: the objective part of a ``SearchSpec``."""
    from gridrun.errors import UsageError

    parts = [p.strip() for p in text.split(":")]
    usage = UsageError(
        f"--objective {text!r} is not NAME:min or NAME:max (optionally :last or :best).",
        hint="For example --objective val_loss:min or --objective accuracy:max:best.",
    )
    if len(parts) not in (2, 3) or not parts[0]:
        raise usage
    directions = {"min": "minimize", "max": "maximize"}
    if parts[1].lower() not in directions:
        raise usage
    mode = parts[2].lower() if len(parts) == 3 else "last"
    if mode not in ("last", "best"):
        raise usage
    return SearchSpec(objective=parts[0], direction=directions[parts[1].lower()], mode=mode)


def study_path(run_dir: Path) -> Path:
    from gridrun.home import RunPaths

    return RunPaths(run_dir).study_journal


def open_study(path: Path, run: Run) -> tuple[optuna.Study, SearchJournal]:
    """The run's study, created on first use, loaded from its journal afterwards;
    and the journal, which the caller syncs (:meth:`SearchJournal.sync`)."""
    import optuna
    from optuna.storages import JournalStorage

    from gridrun.sweep.journal import SearchJournal

    assert run.spec.search is not None
    search = run.spec.search
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path.parent.mkdir(parents=True, exist_ok=True)
    pruner: optuna.pruners.BasePruner
    if search.prune == "median":
        pruner = optuna.pruners.MedianPruner()
    elif search.prune == "hyperband":
        from gridrun.sweep.pruners import SharedHyperband

        pruner = SharedHyperband()
    else:
        pruner = optuna.pruners.NopPruner()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = _sampler(run.spec.seed)
        journal = SearchJournal(path)
        study = optuna.create_study(
            storage=JournalStorage(journal),
            study_name=run.name,
            direction=(
                optuna.study.StudyDirection.MAXIMIZE
                if search.direction == "maximize"
                else optuna.study.StudyDirection.MINIMIZE
            ),
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
        return study, journal


def _sampler(seed: int | None) -> Any:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # Both named, not left to Optuna's defaults, which changed between the
        # versions gridrun accepts (4.x: independent and no liar; 5.x: both on).
        return optuna.samplers.TPESampler(multivariate=True, constant_liar=True, seed=seed)


def distributions(space: list[Param]) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for p in space:
        if p.kind == "categorical":
            out[p.name] = CategoricalDistribution(list(p.choices))
        elif p.kind == "int":
            out[p.name] = IntDistribution(int(p.low), int(p.high), step=p.step)
        else:
            out[p.name] = FloatDistribution(p.low, p.high, log=p.log)
    return out


def objective_value(spec: SearchSpec, stats: dict[str, float] | None) -> float | None:
    """A finished trial's value from the store's summary of its objective series."""
    if not stats or not stats.get("count"):
        return None
    if spec.mode == "best":
        value = stats["min"] if spec.direction == "minimize" else stats["max"]
    else:
        value = stats["last"]
    return value if math.isfinite(value) else None


def best_trial(run: Run, store: Store) -> tuple[Experiment, float] | None:
    """The best finished experiment of a search so far, and its objective value.

    Read from the store alone (``grid status``, the dashboard): no Optuna needed.
    """
    from gridrun.store.metric_query import summary

    return best_of(run, summary(store, [e.id for e in run.experiments]))


def best_of(
    run: Run, summary: dict[int, dict[str, dict[str, float]]]
) -> tuple[Experiment, float] | None:
    """As ``best_trial``, from the metrics summary the caller has read already.

    Only succeeded trials count: a pruned one stopped early, and its value is not
    comparable with those that ran to the end.
    """
    search = run.spec.search
    if search is None:
        return None
    best: tuple[Experiment, float] | None = None
    for e in run.experiments:
        if e.status != Status.SUCCEEDED:
            continue
        value = objective_value(search, summary.get(e.id, {}).get(search.objective))
        if value is None:
            continue
        better = best is None or (
            value < best[1] if search.direction == "minimize" else value > best[1]
        )
        if better:
            best = (e, value)
    return best


def _steps(points: list[tuple[float, float, float]]) -> list[tuple[int, float]]:
    """(step, value) for Optuna, which counts steps in integers.

    A metric's own steps when they are whole numbers (epochs, iterations); otherwise
    (``epoch: 0.5``) the value's position in its series. A step printed twice keeps
    its last value.
    """
    whole = all(float(s).is_integer() and s >= 0 for s, _, _ in points)
    out: dict[int, float] = {}
    for i, (step, _wall, value) in enumerate(points):
        out[int(step) if whole else i] = value
    return sorted(out.items())


class SearchDriver:
    """Drives every open search of one GRID_HOME from the agent (module docstring)."""

    def __init__(
        self,
        store: Store,
        run_dir: Callable[[str], Path],
        slots: Callable[[Run], int],
        stop: Callable[[Experiment], None],
    ) -> None:
        self.store = store
        self.run_dir = run_dir
        self.slots = slots  # how many of a run's trials may be queued or running at once
        self.stop = stop  # signals a running experiment's supervisor to stop it
        self._studies: dict[int, tuple[Any, SearchJournal]] = {}
        self._pruning = False  # a search prunes trials that were running at the last step

    @property
    def pruning(self) -> bool:
        """Whether a search prunes trials that were running at the last pass: then the
        agent calls :meth:`report` between its passes (``gridrun.agent.daemon``)."""
        return self._pruning

    def step(self) -> None:
        self._pruning = False
        for run in self.store.open_searches():
            try:
                self._step_run(run)
            except Exception:
                log.exception("search of %s failed a step", run.name)

    def report(self) -> None:
        """Only the running trials' new values, and their pruning: the quick pass.

        A trial printing an epoch every fraction of a second would otherwise be judged
        one agent pass (a second or more, with all of the agent's other work in it)
        after each value, and pruned epochs late. Nothing is asked or told here; a
        trial that ended waits for the next :meth:`step`.
        """
        from optuna.trial import TrialState

        if not self._pruning:
            return
        for run in self.store.open_searches():
            search = run.spec.search
            opened = self._studies.get(run.id)
            if search is None or opened is None or search.prune == "none":
                continue
            study = opened[0]
            try:
                running = {e.index: e for e in run.experiments if e.status == Status.RUNNING}
                for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    exp = running.get(t.number)
                    if exp is not None:
                        self._report(study, search, t, exp)
            except Exception:
                log.exception("search of %s failed a report", run.name)

    def _step_run(self, run: Run) -> None:
        from optuna.trial import TrialState

        search = run.spec.search
        if search is None or run.status in (Status.FAILED, Status.STOPPED):
            self.store.end_search(run.id, "stopped")  # its build failed or was stopped
            self._studies.pop(run.id, None)
            return
        if run.status != Status.PENDING:
            return  # still building
        opened = self._studies.get(run.id)
        if opened is None:
            opened = self._studies[run.id] = open_study(study_path(self.run_dir(run.name)), run)
            done = len(opened[0].get_trials(deepcopy=False))
            if done and run.spec.seed is not None:
                # Resumed: a sampler seeded as at the start would draw its first
                # (random) points again; seeded past them, it goes on reproducibly.
                opened[0].sampler = _sampler(run.spec.seed + done)
        study, journal = opened
        space = search_space(run.spec.script_args, lambda _: None)
        exps = {e.index: e for e in run.experiments}
        trials = study.get_trials(deepcopy=False)
        unqueued: list[tuple[int, dict[str, Any]]] = []  # in the journal, not in the store
        for t in trials:
            if t.state != TrialState.RUNNING:
                continue
            exp = exps.get(t.number)
            if exp is None:
                unqueued.append((t.number, t.params))
            elif exp.status.finished:
                self._tell(study, search, t, exp)
            elif exp.status == Status.RUNNING and search.prune != "none":
                self._pruning = True
                self._report(study, search, t, exp)
        total = len(trials)
        wanted = run.spec.num_trials or DEFAULT_TRIALS
        active = sum(1 for e in run.experiments if e.status.active)
        room = self.slots(run) - active
        dists = distributions(space)
        while total < wanted and room > 0:
            trial = study.ask(dists)
            unqueued.append((trial.number, trial.params))
            total += 1
            room -= 1
        if unqueued:
            # On disk before the store names them: after a power loss the store never
            # holds a trial whose parameters the journal lost (the journal's own writes
            # are not flushed one by one; gridrun.sweep.journal).
            journal.sync()
            for number, params in unqueued:
                self._queue(run, space, number, params)
        if total >= wanted and all(
            t.state != TrialState.RUNNING for t in study.get_trials(deepcopy=False)
        ):
            self.store.end_search(run.id, "done")
            self._studies.pop(run.id, None)
            log.info("search of %s done: %d trials", run.name, total)

    def _queue(self, run: Run, space: list[Param], number: int, values: dict[str, Any]) -> None:
        argv = render(run.spec.script_args, space, values)
        params = {p.name: shown(values[p.name]) for p in space}
        spec = ExperimentSpec(number, tuple(argv), params, run.spec.resources)
        if self.store.add_trial(run.id, number, spec):
            log.info("search of %s queued trial %d: %s", run.name, number, params)

    def _tell(self, study: Any, search: SearchSpec, frozen: Any, exp: Experiment) -> None:
        from optuna.trial import TrialState

        from gridrun.store.metric_query import summary

        if search.prune != "none":
            # The end of its curve, printed after the last pass read it: a pruned trial
            # is told with its true last value (Optuna keeps the last reported one,
            # and TPE ranks pruned trials by it), and the pruners compare later
            # trials with whole curves.
            self._report_new(study, search, frozen, exp)
        number = frozen.number
        if exp.status == Status.PRUNED:
            study.tell(number, state=TrialState.PRUNED)
            return
        value = None
        if exp.status == Status.SUCCEEDED:
            stats = summary(self.store, [exp.id])[exp.id].get(search.objective)
            value = objective_value(search, stats)
        if value is None:
            if exp.status == Status.SUCCEEDED:
                log.warning("%s printed no value of %s", exp.name, search.objective)
            study.tell(number, state=TrialState.FAIL)
        else:
            study.tell(number, value)

    def _report_new(
        self, study: Any, search: SearchSpec, frozen: Any, exp: Experiment
    ) -> tuple[Any, dict[int, float], dict[int, float]] | None:
        """Report the trial's values of the objective that Optuna has not seen yet.

        Returns the trial, the values it had and those just reported; None when it has
        none at all.
        """
        import optuna

        from gridrun.store.metric_query import series

        points = series(self.store, [exp.id], [search.objective])[exp.id].get(search.objective)
        known = dict(frozen.intermediate_values)
        fresh = {s: v for s, v in _steps(points or []) if s not in known}
        if not known and not fresh:
            return None
        trial = optuna.trial.Trial(study, frozen._trial_id)
        for step, value in fresh.items():
            trial.report(value, step)
        return trial, known, fresh

    def _report(self, study: Any, search: SearchSpec, frozen: Any, exp: Experiment) -> None:
        """Report the running trial's new values; stop it when the pruner says so."""
        if exp.stop_requested:
            return  # being stopped already (by its search, or by a user)
        reported = self._report_new(study, search, frozen, exp)
        if reported is None:
            return
        trial, known, fresh = reported
        # Asked on every pass, not only when the trial printed something new: the
        # trials that end meanwhile move the bar it is judged against.
        if trial.should_prune():
            values = {**known, **fresh}
            step = max(values)
            pick = min if search.direction == "minimize" else max
            value = pick(values.values())  # the pruners judge a trial by its best so far
            reason = self._reason(study, search, frozen.number, step, value)
            if self.store.request_prune(exp.id, reason):
                log.info("pruning %s: %s", exp.name, reason)
                self.stop(self.store.get_experiment(exp.id))

    def _reason(self, study: Any, search: SearchSpec, number: int, step: int, value: float) -> str:
        """``val_loss 0.91 at step 3 worse than the median 0.42 of 6 trials``."""
        from optuna.trial import TrialState

        others = [
            t.intermediate_values[step]
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if step in t.intermediate_values and t.number != number
        ]
        head = f"{search.objective} {value:.4g} at step {step}"
        if not others:
            return f"{head} pruned by {search.prune}"
        median = statistics.median(others)
        n = len(others)
        trials = "trial" if n == 1 else "trials"
        if search.prune == "median":
            return f"{head} worse than the median {median:.4g} of {n} {trials}"
        return (
            f"{head} outside the best third of its hyperband bracket "
            f"(the median of {n} {trials} at that step is {median:.4g})"
        )
