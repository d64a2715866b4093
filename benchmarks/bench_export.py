"""Memory and time of exporting a huge experiment: ``grid metrics -o json`` and ``grid logs``.

Runs a real experiment that prints N metric lines (default 10 million), waits until
gridrun has read them all, then measures, each in its own process (peak RSS from
``/proc/PID/status``'s VmHWM, read until it exits):

* ``grid metrics RUN -o json``: streamed, a stored chunk at a time;
* the same points the way the command used to build them (``metric_query.series`` then
  ``json.dumps`` of the whole list), which is what any exporter holding the result
  would do;
* ``grid logs EXPERIMENT`` beside ``cat`` of the same log file.

    python benchmarks/bench_export.py [--lines 10000000] [--keep]

Target (issue 19): 10 million metric lines exported with under 200 MB of memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """\
import sys
n = int(sys.argv[1])
w = sys.stdout.write
for s in range(n):
    w(f"step: {s} loss: {1.0 / (s + 1):.6f}\\n")
"""

NAIVE = """\
import json, sys
from pathlib import Path
from gridrun.store import metric_query as query
from gridrun.store.db import Store
store = Store(Path(sys.argv[1]))
ids = [e.id for e in store.get_run(sys.argv[2]).experiments]
sys.stdout.write(json.dumps({str(i): s for i, s in query.series(store, ids).items()}))
"""


def _peak_mb(pid: int) -> float | None:
    """The process's peak RSS since its exec (VmHWM: a forked child's copy of this
    interpreter, which ``wait4``'s ru_maxrss would count, is not included)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, bytes written) of one command, its output discarded."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.DEVNULL)
        peak = 0.0
        while proc.poll() is None:
            # VmHWM only grows, so the last reading before the exit is the peak.
            peak = max(peak, _peak_mb(proc.pid) or 0.0)
            time.sleep(0.01)
        took = time.perf_counter() - start
        size = out.seek(0, 2)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return took, peak, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the temporary GRID_HOME")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridrun-bench-export-"))
    env = dict(os.environ, GRID_HOME=str(work / "home"))
    grid = [sys.executable, "-m", "gridrun"]
    try:
        project = work / "project"
        project.mkdir()
        (project / "spam.py").write_text(SCRIPT)
        out = subprocess.run(
            [*grid, "-o", "json", "run", "spam.py", str(args.lines)],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        import json

        name = json.loads(out)["name"]
        exp = f"{name}-exp0"
        start = time.perf_counter()
        from gridrun.store import metric_query as query
        from gridrun.store.db import Store

        db = work / "home" / "grid.db"
        while True:
            store = Store(db)
            run = store.get_run(name)
            done = all(e.status.finished for e in run.experiments)
            got = query.summary(store, [run.experiments[0].id])[run.experiments[0].id]
            store.close()
            count = int(got.get("loss", {}).get("count", 0))
            if done and count == args.lines:
                break
            if done and time.perf_counter() - start > 1800:
                raise SystemExit(f"only {count} of {args.lines} points were read")
            time.sleep(2)
        log = work / "home" / "experiments" / exp / "output.log"
        print(
            f"{args.lines:,} metric lines, run and read in {time.perf_counter() - start:.0f} s; "
            f"log {log.stat().st_size / 1e6:.0f} MB"
        )
        rows = [
            ("grid metrics RUN -o json (streamed)", [*grid, "metrics", name, "-o", "json"]),
            ("series() + json.dumps (held whole)", [sys.executable, "-c", NAIVE, str(db), name]),
            ("grid logs EXPERIMENT", [*grid, "logs", exp]),
            ("cat output.log", ["cat", str(log)]),
        ]
        print(f"{'':40} {'seconds':>8} {'peak RSS MB':>12} {'output MB':>10}")
        for label, cmd in rows:
            took, rss, size = measure(cmd, env)
            print(f"{label:40} {took:8.1f} {rss:12.0f} {size / 1e6:10.0f}")
        print("target: 10 million metric lines exported with under 200 MB")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
