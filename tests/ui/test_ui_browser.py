"""The dashboard end to end: real runs, a real ``grid ui``, Debian's Chromium."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Any


def _submit(grid: Any, project: Path, *args: str) -> str:
    out = grid("run", "--localdir", str(project), "train.py", *args, cwd=project).stdout
    return re.search(r"grid_name:\s+(\S+)", out).group(1)  # type: ignore[union-attr]


def _chart_lines(page: Any) -> dict[str, dict[str, int]]:
    """Per chart, per drawn line, its number of points: read from the uPlot instances."""
    return page.evaluate(
        """() => Object.fromEntries(Object.entries(window.gridCharts).map(([k, u]) => [k,
            Object.fromEntries(u.series.slice(1).map((s, i) =>
                [s.label, u.data[i + 1].filter((v) => v !== null).length]))]))"""
    )


def test_run_page_shows_every_experiment_and_one_line_each(
    grid: Any, project: Path, dashboard: Any, page: Any
) -> None:
    name = _submit(grid, project, "--lr", "[0.1, 0.2, 0.3, 0.5]", "--steps", "[20, 30]")
    grid.wait(name)  # the supervisor has read each experiment's metrics before it ends
    page.goto(dashboard.login(f"runs/{name}"))
    page.wait_for_function("window.gridChartsReady === true")
    page.click("#pc-draw")
    rows = page.locator("#experiments tbody tr")
    assert rows.count() == 8
    shown = set(page.locator("#experiments tbody tr td:first-child a").all_inner_texts())
    assert shown == {f"{name}-exp{i}" for i in range(8)}
    status = grid.json("status", name)
    steps = {e["name"]: int(e["params"]["steps"]) for e in status["experiments"]}
    lines = _chart_lines(page)
    assert set(lines) == {"acc", "loss"}
    for key in ("acc", "loss"):
        assert lines[key] == steps, key
    # The table's filter hides experiments from the table and the charts alike.
    page.fill("#filter", "steps=30 lr>0.2")
    assert page.locator("#experiments tbody tr").count() == 2
    visible = page.evaluate(
        "() => window.gridCharts.loss.series.slice(1).filter((s) => s.show).length"
    )
    assert visible == 2
    # Sorting by a metric column orders the rows by it.
    page.fill("#filter", "")
    page.click("th[data-col='m:loss:last']")
    cells = page.locator("#experiments tbody tr td:nth-child(1)").all_inner_texts()
    by_loss = sorted(
        status["experiments"],
        key=lambda e: math.exp(-float(e["params"]["lr"]) * (int(e["params"]["steps"]) - 1)),
    )
    assert [c.strip() for c in cells] == [e["name"] for e in by_loss]
    # Log scale and time axis redraw with the same lines.
    page.check("#logscale")
    page.select_option("#xaxis", "time")
    assert set(_chart_lines(page)["loss"]) == set(steps)
    # Parallel coordinates: drawn by Plotly from the vendored copy (slow in software
    # WebGL, so asked for first and checked last).
    page.wait_for_function(
        "document.querySelector('#parcoords').dataset.lines === '8'", timeout=180000
    )
    assert page.locator("#parcoords svg").count() > 0
    # CSV export: one row per experiment, parameters then metrics.
    for missing in ("/runs/no-such-run", "/runs/no-such-run/export.csv"):
        assert dashboard.get(missing)[0] == 404, missing
    code, body = dashboard.get(f"/runs/{name}/export.csv")
    assert code == 200
    table = list(csv.DictReader(io.StringIO(body)))
    assert [r["experiment"] for r in table] == [f"{name}-exp{i}" for i in range(8)]
    assert {"lr", "steps", "loss_last", "loss_min", "acc_max"} <= set(table[0])
    assert float(table[0]["loss_min"]) == float(table[0]["loss_last"])  # a falling loss
    # An experiment's page: its metrics and its artifacts, downloadable.
    page.goto(dashboard.login(f"experiments/{name}-exp1"))
    page.wait_for_function(
        "document.querySelector('#log-state').textContent.startsWith('Complete')"
    )
    assert "step: 19 " in page.inner_text("#log-stdout")
    assert page.locator("#exp-metrics tbody tr").count() == 2
    link = page.locator("#artifacts a")
    assert link.inner_text() == "model.txt"
    with page.expect_download() as download:
        link.click()
    lr = next(e["params"]["lr"] for e in status["experiments"] if e["name"] == f"{name}-exp1")
    assert Path(download.value.path()).read_text() == f"lr={float(lr)}"
    for escape in ("../../grid.db", "%2e%2e/%2e%2e/grid.db", "/etc/passwd"):
        code, _ = dashboard.get(f"/experiments/{name}-exp1/artifacts/{escape}")
        assert code == 404, escape


def test_experiment_page_streams_live_logs_and_stops(
    grid: Any, project: Path, dashboard: Any, page: Any
) -> None:
    name = _submit(grid, project, "--steps", "3000", "--sleep", "0.05")
    exp = f"{name}-exp0"
    grid.wait_for_line(exp, "step: 1 ", timeout=120)
    # The run page's charts grow while the experiment runs, with no reload.
    page.goto(dashboard.login(f"runs/{name}"))
    page.wait_for_function("window.gridCharts.loss !== undefined", timeout=60000)
    first = _chart_lines(page)["loss"][exp]
    page.wait_for_function(
        f"window.gridCharts.loss.gridPoints['{exp}'] >= {first + 20}", timeout=60000
    )
    page.goto(dashboard.login(f"experiments/{exp}"))
    # A line printed after the page opened arrives through the stream.
    page.wait_for_function(
        "() => document.querySelector('#log-stdout').textContent.includes('step: 40 ')",
        timeout=60000,
    )
    assert grid.json("status", exp)["experiments"][0]["status"] == "running"
    stderr = page.inner_text("#log-stderr")
    assert "checkpoint 0" in stderr and "step:" not in stderr
    assert "checkpoint" not in page.inner_text("#log-stdout")
    assert "python train.py --steps 3000 --sleep 0.05" in page.inner_text("#command")
    page.click("#stop-experiment button")
    try:
        page.wait_for_function(
            "() => document.querySelector('#exp-status')?.textContent === 'stopped'",
            timeout=120000,
        )
    except Exception as exc:
        log = grid.home / "agent.log"
        raise AssertionError(
            f"not shown stopped: {page.url} {grid.json('status', exp)['experiments'][0]}\n"
            + (log.read_text()[-3000:] if log.exists() else "")
        ) from exc
    assert grid.json("status", exp)["experiments"][0]["status"] == "stopped"


def test_new_run_form_submits_like_grid_run(
    grid: Any, project: Path, dashboard: Any, page: Any
) -> None:
    page.goto(dashboard.login("runs/new"))
    page.fill("input[name=localdir]", str(project))
    page.fill("input[name=script]", "train.py")
    page.fill("#args", '--lr "[0.1, 0.2, 0.3]" --steps 5')
    page.wait_for_function("document.querySelector('#sweep-count').textContent === '3 experiments'")
    page.fill("#args", '--lr "[0.1, 0.2, 0.3]" --steps "[5, 6]"')
    page.wait_for_function("document.querySelector('#sweep-count').textContent === '6 experiments'")
    page.fill("#args", '--lr "[0.1, 0.2"')
    page.wait_for_function(
        "document.querySelector('#sweep-count').textContent.includes('unclosed')"
    )
    page.fill("#args", '--lr "[0.1, 0.2]" --steps "[5, 6]"')
    page.click("#check-run")
    page.wait_for_selector("#preview")
    warnings = page.locator(".warning").all_inner_texts()
    assert any("Neither a CPU or GPU number was specified" in w for w in warnings), warnings
    assert "4 experiment(s)" in page.inner_text("#preview")
    assert grid.json("history") == []  # nothing recorded before the user confirms
    page.click("#submit-run")
    page.wait_for_url(re.compile(r".*/runs/[a-z0-9-]+$"))
    name = page.url.rsplit("/", 1)[1]
    assert page.locator("#experiments tbody tr").count() == 4
    status = grid.wait(name)
    assert sorted((e["params"]["lr"], e["params"]["steps"]) for e in status["experiments"]) == [
        ("0.1", "5"),
        ("0.1", "6"),
        ("0.2", "5"),
        ("0.2", "6"),
    ]
    assert {e["status"] for e in status["experiments"]} == {"succeeded"}
    # The runs page lists it with its counts, as `grid history` would.
    page.goto(dashboard.login())
    row = page.locator(f"#runs tr[data-run='{name}']")
    row.wait_for()
    page.wait_for_function(
        f"document.querySelector(\"#runs tr[data-run='{name}'] td:nth-child(3)\")"
        ".textContent.trim() === 'succeeded'"
    )
    cells = row.locator("td").all_inner_texts()
    assert cells[5:] == ["4", "0", "0", "4", "0", "0"], cells  # after the tick box


def test_new_run_form_shows_grid_run_errors(dashboard: Any, page: Any, tmp_path: Path) -> None:
    page.goto(dashboard.login("runs/new"))
    page.fill("input[name=localdir]", str(tmp_path / "missing"))
    page.fill("input[name=script]", "train.py")
    page.click("#check-run")
    assert "does not exist" in page.inner_text("#form-error")


SMALL_LR = """\
import argparse
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
a = p.parse_args()
print("x" * 3000, flush=True)  # one very long log line
for s in range(40):
    print(f"step: {s} lr: {a.lr * (1 - s / 80):.8f} loss: {1 / (s + 1):.4f}", flush=True)
"""


def test_charts_read_right_at_1280_pixels(
    grid: Any, tmp_path: Path, dashboard: Any, page: Any
) -> None:
    project = tmp_path / "lr"
    project.mkdir()
    (project / "train.py").write_text(SMALL_LR)
    name = _submit(grid, project, "--lr", "[0.0002, 0.0001]")
    assert all(e["status"] == "succeeded" for e in grid.wait(name)["experiments"])
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(dashboard.login(f"runs/{name}"))
    page.wait_for_function("window.gridChartsReady === true")
    # The learning rate's ticks say what they are, with the digits their spacing needs.
    ticks = page.evaluate("window.gridCharts.lr.axes[1]._values")
    assert len(ticks) >= 3 and len(set(ticks)) == len(ticks), ticks
    assert all(float(t) > 0 for t in ticks if t != "0"), ticks
    assert page.evaluate("charts.ticks([0.0001, 0.00015, 0.0002])") == ["1e-4", "1.5e-4", "2e-4"]
    assert page.evaluate("charts.ticks([0, 0.25, 0.5])") == ["0.00", "0.25", "0.50"]
    assert page.evaluate("charts.ticks([1000, 2000])") == ["1000", "2000"]
    # Each line is named by what was swept: in the legend, and on hover.
    legend = page.inner_text("[data-key='lr'] .chart-legend")
    assert "lr=0.0002" in legend and "lr=0.0001" in legend
    # Nothing is wider than its card, or than the window.
    spill = """() => {
        const out = [];
        if (document.documentElement.scrollWidth > window.innerWidth) out.push('page');
        for (const s of document.querySelectorAll('section'))
            if (s.scrollWidth > s.clientWidth + 1) out.push(s.querySelector('h2')?.textContent);
        return out;
    }"""
    assert page.evaluate(spill) == []
    page.goto(dashboard.login(f"experiments/{name}-exp0"))
    page.wait_for_function(
        "document.querySelector('#log-state').textContent.startsWith('Complete')"
    )
    assert "x" * 3000 in page.inner_text("#log-stdout")
    assert page.evaluate(spill) == []


def test_two_runs_compare_on_one_page(grid: Any, project: Path, dashboard: Any, page: Any) -> None:
    first = _submit(grid, project, "--lr", "[0.1, 0.2]")
    second = _submit(grid, project, "--lr", "[0.3, 0.5]", "--steps", "30")
    grid.wait(first)
    grid.wait(second)
    page.goto(dashboard.login())
    assert page.locator("#compare").is_disabled()
    page.check(f"tr[data-run='{first}'] input.pick")
    page.check(f"tr[data-run='{second}'] input.pick")
    page.click("#compare")
    page.wait_for_url(re.compile(r"/compare\?runs="))
    page.wait_for_function("window.gridChartsReady === true")
    rows = page.locator("#experiments tbody tr")
    assert rows.count() == 4
    runs_column = page.locator("#experiments tbody tr td:nth-child(2)").all_inner_texts()
    assert sorted(r.strip() for r in runs_column) == sorted([first, first, second, second])
    lines = _chart_lines(page)
    assert set(lines["loss"]) == {
        f"{first}-exp0",
        f"{first}-exp1",
        f"{second}-exp0",
        f"{second}-exp1",
    }
    assert lines["loss"][f"{second}-exp1"] == 30 and lines["loss"][f"{first}-exp0"] == 20
    legend = page.inner_text("[data-key='loss'] .chart-legend")
    assert f"{second} lr=0.5" in legend
    for bad in ("/compare", "/api/compare?runs=", "/api/compare/metrics?runs=nope"):
        code, _body = dashboard.get(bad)
        assert code in (400, 404), (bad, code)


def test_a_failed_experiments_page_shows_the_hint_from_its_log(
    grid: Any, tmp_path: Path, dashboard: Any
) -> None:
    project = tmp_path / "oom"
    project.mkdir()
    (project / "train.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    (project / "requirements.txt").write_text("")
    out = grid("run", "--memory", "2Gi", "train.py", cwd=project).stdout
    name = re.search(r"grid_name:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    grid.wait(name)
    code, body = dashboard.get(f"/experiments/{name}-exp0")
    assert code == 200
    hint = re.search(r'id="exp-hint">([^<]*)<', body)
    assert hint, body
    assert hint.group(1).startswith(
        "Hint: killed (exit 137, SIGKILL), most likely at its memory limit of 2 GiB"
    ), hint.group(1)


REPLAY = """\
import sys, time
for line in open(sys.argv[1], encoding="utf-8"):
    print(line, end="", flush=True)
"""


def test_the_dcgan_page_charts_only_its_losses(
    grid: Any, tmp_path: Path, dashboard: Any, page: Any
) -> None:
    """pytorch/examples' dcgan, its real output replayed: its Namespace, seed and model
    repr are no charts; the seed is a column."""
    project = tmp_path / "dcgan"
    project.mkdir()
    logs = Path(__file__).parents[1] / "metrics" / "logs"
    (project / "dcgan.log").write_text((logs / "pytorch-examples-dcgan.log").read_text())
    (project / "replay.py").write_text(REPLAY)
    out = grid("run", "replay.py", "dcgan.log", cwd=project).stdout
    name = re.search(r"grid_name:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    assert grid.wait(name)["experiments"][0]["status"] == "succeeded"
    page.goto(dashboard.login(f"runs/{name}"))
    page.wait_for_function("window.gridChartsReady === true")
    assert set(_chart_lines(page)) == {"Loss_D", "Loss_G", "D(x)", "D(G(z))"}
    headers = page.locator("#experiments thead th").all_inner_texts()
    assert any(h.strip().startswith("Random Seed") for h in headers), headers


def test_a_browser_without_the_token_is_refused(dashboard: Any, browser: Any) -> None:
    """A browser that never opened the printed URL (another user's, or one an
    experiment drives) gets 403 on every page, then the page itself once it logs in."""
    context = browser.new_context()
    try:
        page = context.new_page()
        for path in ("", "runs/new", "api/runs", "api/sweep/count?args=x"):
            response = page.goto(dashboard.url + path)
            assert response is not None and response.status == 403, path
            assert "Forbidden" in page.inner_text("body")
        response = page.goto(dashboard.login("runs/new"))
        assert response is not None and response.status == 200
        assert page.url == dashboard.url + "runs/new"  # the token left the address bar
    finally:
        context.close()
