"""The agent's wait between passes: quick search passes only while a search prunes."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from gridrun.agent import daemon

pytestmark = pytest.mark.unit


class _Search:
    def __init__(self, agent: SimpleNamespace, pruning: bool) -> None:
        self.agent = agent
        self.pruning = pruning
        self.reports = 0

    def report(self) -> None:
        self.reports += 1
        if self.reports == 2:
            self.agent.exiting = True  # ends the wait: no clock in the assertion


def _agent(pruning: bool) -> SimpleNamespace:
    agent = SimpleNamespace(exiting=False)
    agent.search = _Search(agent, pruning)
    return agent


def test_a_pruning_search_gets_quick_passes_within_one_agent_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(daemon, "POLL_SECONDS", 600.0)  # the next full pass is far off
    rfd, wfd = os.pipe()
    try:
        agent = _agent(pruning=True)
        daemon._wait(agent, rfd)  # type: ignore[arg-type]
        assert agent.search.reports == 2
    finally:
        os.close(rfd)
        os.close(wfd)


def test_without_a_pruning_search_the_wait_is_one_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon, "POLL_SECONDS", 600.0)
    rfd, wfd = os.pipe()
    try:
        agent = _agent(pruning=False)
        os.write(wfd, b"w")  # a wake-up ends it
        daemon._wait(agent, rfd)  # type: ignore[arg-type]
        assert agent.search.reports == 0
    finally:
        os.close(rfd)
        os.close(wfd)
