"""A bayesian search on the dashboard: its trials, the best one, the pruned ones and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search_helpers import submit_pruned_search, wait_search


def test_run_page_charts_the_trials_and_marks_the_best(
    grid: Any, tmp_path: Path, dashboard: Any, page: Any
) -> None:
    (grid.home / "config.yaml").write_text("agent_idle_seconds: 5\ncapacity: {cpus: 2}\n")
    project = tmp_path / "search"
    project.mkdir()
    submit_pruned_search(grid, project, "tpe")
    data = wait_search(grid, "tpe")
    best = data["search"]["best"]["experiment"]
    pruned = [e for e in data["experiments"] if e["status"] == "pruned"]
    succeeded = [e for e in data["experiments"] if e["status"] == "succeeded"]
    assert pruned and succeeded

    page.goto(dashboard.login("runs/tpe"))
    page.wait_for_function("window.gridChartsReady === true")
    assert f"Best so far: {best} val_loss" in page.inner_text("#search-best")
    marked = page.locator("#experiments tbody tr", has=page.locator(".best-mark"))
    assert marked.count() == 1
    assert marked.get_attribute("data-experiment") == best
    # The objective over trials: one point per succeeded trial, one per pruned one
    # (where it stopped), and the best-so-far line ending at the best value.
    drawn = page.evaluate(
        """() => { const u = window.gridSearchChart;
            return [1, 2, 3].map((i) => u.data[i].filter((v) => v !== null)); }"""
    )
    assert len(drawn[0]) == len(succeeded)
    assert len(drawn[2]) == len(pruned)
    assert drawn[1][-1] == data["search"]["best"]["value"]
    reasons = page.locator("#search-pruned li").all_text_contents()  # folded away
    assert len(reasons) == len(pruned)
    assert all("worse than the median" in r for r in reasons)

    page.goto(dashboard.login(f"experiments/{pruned[0]['name']}"))
    assert "Pruned by its search: val_loss" in page.inner_text("#exp-pruned")
