"""The search driver against a real store and journal, without an agent or processes.

Each test steps ``SearchDriver`` as the agent does, with the experiments' states and
metrics written straight into the store, so what Optuna is told can be read back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gridrun.specs import SearchSpec
from gridrun.store.db import Store
from gridrun.store.metrics import SourceState, commit_batch
from gridrun.store.models import Status
from gridrun.sweep.journal import SearchJournal
from gridrun.sweep.search import SearchDriver
from spec_helpers import force_experiment, run_spec

pytestmark = pytest.mark.unit


def _search(tmp_path: Path, prune: str = "median", trials: int = 2) -> tuple[Store, SearchDriver]:
    store = Store(tmp_path / "grid.db")
    spec = run_spec(
        script_args=("--x", "uniform(0, 1)"),
        strategy="bayesian",
        num_trials=trials,
        seed=0,
        search=SearchSpec("val_loss", prune=prune),
    )
    run = store.create_run(
        name="s", backend="local", spec=spec, env_key=None, experiments=[], search=True
    )
    store.mark_built(run.id, None)
    driver = SearchDriver(store, lambda name: tmp_path / name, lambda run: 1, lambda exp: None)
    return store, driver


def _study(tmp_path: Path):
    """The study as Optuna's own journal backend reads it."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = tmp_path / "s" / "study.journal"
    return optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(path))))


def test_a_pruned_trial_is_told_with_the_end_of_its_curve(tmp_path: Path) -> None:
    store, driver = _search(tmp_path)
    driver.step()
    exp = store.get_run("s").experiments[0]
    force_experiment(store, exp.id, status=Status.RUNNING)
    src = SourceState()
    commit_batch(store, exp.id, "log", src, 1, {}, {"val_loss": [(1, 1.0, 0.9), (2, 2.0, 0.8)]})
    driver.step()
    assert _study(tmp_path).trials[0].intermediate_values == {1: 0.9, 2: 0.8}

    # Step 3 is printed after the last pass read the curve, then the trial ends.
    commit_batch(store, exp.id, "log", src, 2, {}, {"val_loss": [(3, 3.0, 0.7)]})
    force_experiment(store, exp.id, status=Status.PRUNED)
    driver.step()
    trial = _study(tmp_path).trials[0]
    assert trial.state.name == "PRUNED"
    assert trial.intermediate_values == {1: 0.9, 2: 0.8, 3: 0.7}
    assert trial.value == 0.7  # Optuna keeps a pruned trial's last reported value


def test_the_journal_is_on_disk_before_the_store_names_a_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, driver = _search(tmp_path, prune="none")
    events: list[str] = []
    sync = SearchJournal.sync
    add_trial = store.add_trial

    def synced(journal: SearchJournal) -> None:
        sync(journal)
        events.append(f"sync {journal.path.read_text().count(chr(10))} lines")

    def added(*args: object) -> bool:
        events.append("add_trial")
        return add_trial(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(SearchJournal, "sync", synced)
    monkeypatch.setattr(store, "add_trial", added)
    driver.step()
    assert [e.split()[0] for e in events] == ["sync", "add_trial"]
    assert events[0] != "sync 0 lines"
    exp = store.get_run("s").experiments[0]
    force_experiment(store, exp.id, status=Status.SUCCEEDED)
    commit_batch(store, exp.id, "log", SourceState(), 1, {}, {"val_loss": [(1, 1.0, 0.5)]})
    events.clear()
    driver.step()  # told, and trial 1 asked: one flush for both, still before the store
    assert [e.split()[0] for e in events] == ["sync", "add_trial"]
    trials = _study(tmp_path).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "RUNNING"]
    assert trials[0].value == 0.5
    assert [e.params for e in store.get_run("s").experiments] == [
        {"x": f"{t.params['x']:.6g}"} for t in trials
    ]


def test_the_journal_reads_back_what_optuna_wrote_and_skips_a_torn_line(tmp_path: Path) -> None:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = tmp_path / "study.journal"
    theirs = optuna.create_study(
        study_name="j", storage=JournalStorage(JournalFileBackend(str(path)))
    )
    theirs.enqueue_trial({"x": 0.25})
    trial = theirs.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.report(0.5, 1)
    theirs.tell(trial, 0.4)
    with open(path, "ab") as f:
        f.write(b'{"op_code": 4, "worker')  # a writer killed mid-line
    ours = optuna.load_study(study_name="j", storage=JournalStorage(SearchJournal(path)))
    [t] = ours.trials
    assert (t.params, t.value, t.intermediate_values) == ({"x": 0.25}, 0.4, {1: 0.5})


def test_the_quick_pass_reports_a_running_trials_new_values_and_only_that(
    tmp_path: Path,
) -> None:
    store, driver = _search(tmp_path)
    driver.report()  # nothing opened yet: nothing to do
    assert not driver.pruning
    driver.step()
    exp = store.get_run("s").experiments[0]
    assert not driver.pruning  # queued, not running: no quick passes
    force_experiment(store, exp.id, status=Status.RUNNING)
    driver.step()
    assert driver.pruning
    src = SourceState()
    commit_batch(store, exp.id, "log", src, 1, {}, {"val_loss": [(1, 1.0, 0.9)]})
    driver.report()
    assert _study(tmp_path).trials[0].intermediate_values == {1: 0.9}
    commit_batch(store, exp.id, "log", src, 2, {}, {"val_loss": [(2, 2.0, 0.8)]})
    force_experiment(store, exp.id, status=Status.SUCCEEDED)
    driver.report()  # ended: told by the next step, not here
    trials = _study(tmp_path).trials
    assert [t.state.name for t in trials] == ["RUNNING"]
    assert trials[0].intermediate_values == {1: 0.9}
    driver.step()
    assert _study(tmp_path).trials[0].state.name == "COMPLETE"
    assert not driver.pruning


def test_a_search_without_pruning_has_no_quick_passes(tmp_path: Path) -> None:
    store, driver = _search(tmp_path, prune="none")
    driver.step()
    exp = store.get_run("s").experiments[0]
    force_experiment(store, exp.id, status=Status.RUNNING)
    driver.step()
    assert not driver.pruning


def test_hyperband_is_the_pruner_whose_sampler_sees_every_trial(tmp_path: Path) -> None:
    from gridrun.sweep.pruners import SharedHyperband

    _store, driver = _search(tmp_path, prune="hyperband")
    driver.step()
    ((study, _journal),) = driver._studies.values()
    assert isinstance(study.pruner, SharedHyperband)
