"""The dashboard's speed on a 200-experiment sweep with 1,000 points per metric.

Really runs the sweep (``grid run train.py --seed "range(200)" --steps 1000``, a
script that prints ``step: N loss: X acc: Y``; gridrun's own ingestion turns the lines
into metrics), then serves it with ``grid ui`` and measures:

* the run page's metrics API (``/api/runs/RUN/metrics``): the first request of a
  fresh server (nothing cached) and the median of later ones, beside what encoding
  every point as JSON naively costs (the same points, ``query.series`` + ``json.dumps``);
* the page drawn in Chromium (Debian's, through Playwright): milliseconds from
  navigation start to every chart on screen (``window.gridChartsReadyAt``, taken by
  the page at the frame after the one that drew the charts, so Playwright's polling
  is not counted), median of fresh browser contexts (the first one also meets a cold
  server cache).

    python benchmarks/bench_ui.py [--experiments 200] [--points 1000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TRAIN = """\
import argparse, math
p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.add_argument("--steps", type=int, default=1000)
a = p.parse_args()
rate = 0.002 + a.seed * 0.00005
lines = []
for s in range(a.steps):
    loss = math.exp(-rate * s) + 0.01 * math.sin(s + a.seed)
    lines.append(f"step: {s} loss: {loss:.6f} acc: {1 - loss / 2:.6f}")
print("\\n".join(lines))
"""


def grid(env: dict[str, str], *args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        [sys.executable, "-m", "gridrun", *args],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def wait_metrics(env: dict[str, str], name: str, n: int, points: int) -> float:
    """Seconds until every experiment ended and has all its points ingested."""
    from gridrun.store import metric_query as query
    from gridrun.store.db import Store

    start = time.perf_counter()
    store = Store(Path(env["GRID_HOME"]) / "grid.db")
    while True:
        run = store.get_run(name)
        done = all(e.status.finished for e in run.experiments)
        summary = query.summary(store, [e.id for e in run.experiments])
        full = sum(
            1
            for s in summary.values()
            if all(s.get(k, {}).get("count") == points for k in ("loss", "acc"))
        )
        if done and full == n:
            store.close()
            return time.perf_counter() - start
        if done and time.perf_counter() - start > 600:
            raise SystemExit(f"only {full}/{n} experiments have {points} points")
        time.sleep(1)


def naive_json(env: dict[str, str], name: str) -> float:
    from gridrun.store import metric_query as query
    from gridrun.store.db import Store

    store = Store(Path(env["GRID_HOME"]) / "grid.db")
    ids = [e.id for e in store.get_run(name).experiments]
    start = time.perf_counter()
    data = query.series(store, ids)
    json.dumps({str(i): s for i, s in data.items()})
    took = time.perf_counter() - start
    store.close()
    return took


def timed_get(url: str, token: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        body = resp.read()
    return time.perf_counter() - start, body


def lines_of(body: bytes) -> tuple[int, int]:
    """(lines, most points in one line) of a metrics API answer."""
    (hlen,) = struct.unpack_from("<I", body)
    series = json.loads(body[4 : 4 + hlen])["series"]
    return len(series), max((s[2] for s in series), default=0)


def page_draw(url: str, repeats: int) -> list[float]:
    """Milliseconds from navigation start to all charts drawn, per fresh context."""
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("GRID_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    drawn = []
    seen = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(repeats):
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            page.goto(url, wait_until="commit")
            page.wait_for_function("window.gridChartsReady === true", timeout=60000)
            # Recorded by the page itself at the frame after the charts were drawn, so
            # that Playwright's polling and round trips are not counted.
            drawn.append(page.evaluate("window.gridChartsReadyAt"))
            seen.append(page.evaluate("performance.now()"))
            marks = page.evaluate(
                "Object.fromEntries(performance.getEntriesByType('mark')"
                ".map((m) => [m.name, Math.round(m.startTime)]))"
            )
            print(f"    drawn at {drawn[-1]:.0f} ms (seen by Playwright {seen[-1]:.0f}); {marks}")
            lines = page.evaluate(
                "Object.values(window.gridCharts).map((u) => u.series.length - 1)"
            )
            assert lines and all(n == lines[0] for n in lines), lines
            ctx.close()
        browser.close()
    return drawn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--experiments", type=int, default=200)
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="Keep the GRID_HOME for inspection.")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridrun-bench-ui-"))
    project = work / "project"
    project.mkdir()
    (project / "train.py").write_text(TRAIN)
    env = dict(os.environ, GRID_HOME=str(work / "home"))
    ui = None
    try:
        start = time.perf_counter()
        out = grid(
            env,
            "-o",
            "json",
            "run",
            "--ignore_warnings",
            "train.py",
            "--seed",
            f"range({args.experiments})",
            "--steps",
            str(args.points),
            cwd=project,
        )
        name = json.loads(out)["name"]
        wait_metrics(env, name, args.experiments, args.points)
        print(
            f"sweep: {args.experiments} experiments x {args.points} points x 2 metrics, "
            f"ran and ingested in {time.perf_counter() - start:.0f} s"
        )
        ui = subprocess.Popen(
            [sys.executable, "-m", "gridrun", "ui", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert ui.stdout is not None
        found = re.search(r"(http://\S+/)\?token=(\S+)", ui.stdout.readline())
        assert found is not None, "grid ui printed no URL"
        base, token = found.group(1), found.group(2)
        api = f"{base}api/runs/{name}/metrics"
        cold, body = timed_get(api, token)
        warm = statistics.median(timed_get(api, token)[0] for _ in range(10))
        naive = statistics.median(naive_json(env, name) for _ in range(3))
        n_lines, per_line = lines_of(body)
        print(
            f"\nmetrics API ({len(body) / 1e6:.1f} MB binary, "
            f"{n_lines} lines of up to {per_line} points)"
        )
        print(f"  {'naive: query.series + json.dumps':42} {naive * 1000:8.0f} ms")
        print(f"  {'grid ui, first request (cold cache)':42} {cold * 1000:8.0f} ms")
        print(f"  {'grid ui, later requests (median of 10)':42} {warm * 1000:8.0f} ms")
        print(f"  {'target':42} {'< 100':>8} ms")
        drawn = page_draw(f"{base}runs/{name}?token={token}", args.repeats)
        print("\nrun page in Chromium, navigation start to charts on screen")
        print(f"  {'first load':42} {drawn[0]:8.0f} ms")
        print(
            f"  {f'median of {args.repeats} fresh contexts':42} {statistics.median(drawn):8.0f} ms"
        )
        print(f"  {'target':42} {'< 1500':>8} ms")
        load = os.getloadavg()[0]
        print(f"\nload average {load:.1f} on {os.cpu_count()} CPUs while measuring")
    finally:
        if ui is not None:
            ui.terminate()
            ui.wait()
            if ui.stdout:
                ui.stdout.close()
        subprocess.run(
            [sys.executable, "-m", "gridrun", "agent", "stop"], env=env, capture_output=True
        )
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
