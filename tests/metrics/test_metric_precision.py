"""Metrics with precision (issue 19), measured on the labelled corpus of real training
logs (``metric_corpus``): per log, precision and recall at the issue's targets."""

from __future__ import annotations

import pytest
from metric_corpus import Labelled, load, read, score

from gridrun.metrics.constants import split_constants

pytestmark = pytest.mark.unit

CORPUS = load()
BY_NAME = {log.name: log for log in CORPUS}


def test_the_corpus_has_every_framework_of_the_issue() -> None:
    assert {log.framework for log in CORPUS} >= {
        "pytorch-examples",
        "lightning",
        "keras",
        "hf-trainer",
        "tqdm",
        "guild-style",
        "spaced pairs",
    }


@pytest.mark.parametrize("log", CORPUS, ids=lambda log: log.name)
def test_precision_and_recall_on_each_real_log(log: Labelled) -> None:
    s = score(log)
    assert s.precision >= 0.95, f"charted but not metrics: {sorted(s.charted - log.metrics)}"
    assert s.recall >= 0.90, f"metrics not read: {sorted(log.metrics - s.read)}"
    assert not (s.charted & log.parameters), "a printed parameter is charted"


@pytest.mark.parametrize("log", CORPUS, ids=lambda log: log.name)
def test_the_block_path_reads_each_log_as_line_by_line_does(log: Labelled) -> None:
    assert read(log.raw) == read(log.raw, by_line=True)


def test_dcgan_charts_exactly_its_four_metrics() -> None:
    """The issue's 'done when': of dcgan's 16 'metrics', only these are charts."""
    charted, constants = split_constants(read(BY_NAME["pytorch-examples-dcgan"].raw))
    assert set(charted) == {"Loss_D", "Loss_G", "D(x)", "D(G(z))"}
    assert set(constants) == {"Random Seed"}
    assert len(charted["Loss_D"]) == 16
