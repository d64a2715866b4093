"""No request makes the dashboard answer 500: concurrency, odd names, huge sweeps, no rows."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ODD = """\
import math, os
for s in range(30):
    print(f"step: {s} loss: {math.exp(-0.1 * s):.5f}", flush=True)
os.mkdir("out")
with open(b"bad\\xffname.txt", "wb") as f:
    f.write(b"not utf-8 named")
with open("out/caf\\u00e9 100%.txt", "w") as f:
    f.write("fine")
"""


def test_two_hundred_concurrent_requests_on_every_route_answer_without_a_500(
    grid: Any, dashboard: Any, tmp_path: Path
) -> None:
    project = tmp_path / "odd"
    project.mkdir()
    (project / "odd.py").write_text(ODD)
    out = grid("run", "--localdir", str(project), "odd.py", cwd=project).stdout
    name = re.search(r"grid_name:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    assert grid.wait(name)["experiments"][0]["status"] == "succeeded"
    exp = f"{name}-exp0"

    # The odd name is shown readably and downloads by its own bytes.
    detail = dashboard.json(f"/api/experiments/{exp}")
    shown = {a["path"]: a["href"] for a in detail["artifacts"]}
    assert set(shown) == {"bad\ufffdname.txt", "out/café 100%.txt"}
    assert dashboard.get(shown["bad\ufffdname.txt"]) == (200, "not utf-8 named")
    assert dashboard.get(shown["out/café 100%.txt"]) == (200, "fine")
    code, page = dashboard.get(f"/experiments/{exp}")
    assert code == 200 and "bad\ufffdname.txt" in page

    huge = urllib.parse.quote("--x range(2**64)")
    routes = [
        "/",
        f"/runs/{name}",
        f"/runs/{name}/export.csv",
        f"/experiments/{exp}",
        shown["bad\ufffdname.txt"],
        "/api/runs",
        f"/api/runs/{name}",
        f"/api/runs/{name}/metrics",
        f"/api/runs/{name}/metrics?max_points=abc&keys=loss,nope",
        f"/api/experiments/{exp}",
        "/api/sweep/count?args=--lr+%5B1%2C2%5D",
        f"/api/sweep/count?args={huge}",
        "/api/sweep/count?args=--x+%22unclosed&num_trials=x",
        "/runs/no-such-run",
        "/api/runs/no-such-run",
        "/api/runs/no-such-run/metrics",
        "/api/experiments/no-such-exp",
        f"/experiments/{exp}/artifacts/%ff%fe",
        "/runs/new?localdir=%ff",
    ]
    requests = [path for path in routes for _ in range(200)]  # 200 on each, interleaved
    requests = requests[::2] + requests[1::2]
    with ThreadPoolExecutor(max_workers=48) as pool:
        answers = list(pool.map(lambda path: (path, dashboard.get(path)[0]), requests))
    by_status = Counter(status for _path, status in answers)
    failed = sorted({(p, s) for p, s in answers if s >= 500})
    assert not failed, f"server errors: {failed}"
    assert set(by_status) <= {200, 400, 404}, by_status
    # A huge sweep is a one-line 400 that says why.
    code, body = dashboard.get(f"/api/sweep/count?args={huge}")
    assert code == 400
    error = json.loads(body)["error"]
    assert "more values than a sweep can count" in error and "\n" not in error


def test_a_huge_sweep_is_a_one_line_cli_error(grid: Any, tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("print(1)\n")
    for value in ("range(2**64)", "arange(-1e308, 1e308, 1e-308)", "arange(0, 1, 1e-300)"):
        proc = grid("run", "--dry_run", "x.py", "--x", value, cwd=tmp_path, check=False)
        assert proc.returncode == 2, (value, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert [line for line in proc.stderr.splitlines() if line.startswith("Error")] == [
            proc.stderr.strip().splitlines()[-1]
        ]
