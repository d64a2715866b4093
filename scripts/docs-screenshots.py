"""Regenerates the dashboard screenshots in docs/ from a real sweep.

Runs ``grid run train.py --lr "[...]" --batch_size "[32, 64]"`` in a temporary
GRID_HOME, waits for its metrics, serves it with ``grid ui`` and photographs the run
page and one experiment page with Debian's Chromium.

    python scripts/docs-screenshots.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TRAIN = """\
import argparse, math, random, sys, time
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.01)
p.add_argument("--batch_size", type=int, default=32)
p.add_argument("--epochs", type=int, default=120)
a = p.parse_args()
random.seed(a.batch_size * 1000 + int(a.lr * 1e4))
print(f"training on 60000 images, learning rate {a.lr}, batches of {a.batch_size}", flush=True)
for step in range(a.epochs):
    noise = random.gauss(0, 0.02)
    loss = 2.3 * math.exp(-a.lr * 40 * step / (1 + a.batch_size / 64)) + 0.1 + noise
    acc = max(0.0, min(1.0, 1 - loss / 2.4 + random.gauss(0, 0.01)))
    print(f"step: {step} loss: {loss:.4f} val_acc: {acc:.4f}", flush=True)
    if step % 40 == 0:
        print(f"saving checkpoint at step {step}", file=sys.stderr, flush=True)
    time.sleep(0.01)
open("model.pt", "w").write("weights")
"""

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="gridrun-shots-"))
    project = work / "mnist"
    project.mkdir()
    (project / "train.py").write_text(TRAIN)
    env = dict(os.environ, GRID_HOME=str(work / "home"))
    grid = [sys.executable, "-m", "gridrun"]
    out = subprocess.run(
        [
            *grid,
            "-o",
            "json",
            "run",
            "--name",
            "spiffy-sunfish-821",
            "train.py",
            "--lr",
            "[0.001, 0.003, 0.01, 0.03]",
            "--batch_size",
            "[32, 64]",
        ],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    name = json.loads(out.stdout)["name"]
    # A second run to compare with the first: larger batches.
    other = "calm-heron-42"
    subprocess.run(
        [*grid, "run", "--name", other, "train.py", "--lr", "[0.003, 0.01]", "--batch_size", "128"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    ui = subprocess.Popen([*grid, "ui", "--port", "0"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert ui.stdout is not None
        found = re.search(r"(http://\S+/)\?token=(\S+)", ui.stdout.readline())
        assert found is not None, "grid ui printed no URL"
        base, token = found.group(1), found.group(2)
        auth = {"Authorization": f"token {token}"}
        while True:
            req = urllib.request.Request(f"{base}api/runs/{name}", headers=auth)
            with urllib.request.urlopen(req) as r:
                run = json.load(r)
            req = urllib.request.Request(f"{base}api/runs/{other}", headers=auth)
            with urllib.request.urlopen(req) as r:
                second = json.load(r)
            finished = not run["active"] and not second["active"]
            if finished and all(e["metrics"] for e in run["experiments"]):
                break
            time.sleep(1)
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        chromium = os.environ.get("GRID_CHROMIUM") or shutil.which("chromium")
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = b.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}runs/{name}?token={token}")
            page.wait_for_function("window.gridChartsReady === true")
            page.click("#pc-draw")
            page.wait_for_function("document.querySelector('#parcoords').dataset.lines")
            page.evaluate("window.scrollTo(0, 0)")
            time.sleep(0.5)
            page.screenshot(path=str(docs / "dashboard-run.png"), full_page=True)
            page.goto(f"{base}experiments/{name}-exp5")
            page.wait_for_function(
                "document.querySelector('#log-state').textContent.startsWith('Complete')"
            )
            time.sleep(1)
            page.screenshot(path=str(docs / "dashboard-experiment.png"), full_page=True)
            page.goto(f"{base}compare?runs={name},{other}")
            page.wait_for_function("window.gridChartsReady === true")
            time.sleep(0.5)
            page.screenshot(path=str(docs / "dashboard-compare.png"), full_page=True)
            b.close()
        print(f"wrote dashboard-run.png, dashboard-experiment.png, dashboard-compare.png in {docs}")
    finally:
        ui.terminate()
        ui.wait()
        subprocess.run([*grid, "agent", "stop"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
