"""What the local backend's confinement wrapper adds to each experiment's start.

Every local experiment starts through ``gridrun/datastores/nsexec.py`` (a private mount
namespace, ``GRID_HOME`` hidden, datastores bound read-only, capabilities dropped; see
there). This prints, side by side, the median wall time of starting the same command:

(a) bare;
(b) under ``unshare -m --propagation private`` (``unshare -r -m`` when not root): what
    a user would reach for to get a private mount namespace by hand;
(c) under gridrun's wrapper exactly as the local backend builds it (``GRID_HOME``
    hidden but for the working copy and the environment), and (d) the same with one
    datastore bound read-only;

for two commands: ``true`` (the wrapper alone) and ``python -c pass`` (an experiment's
interpreter start). Wall time (median and minimum of starts taken in turns) and the
CPU time each start costs (what stays put on a busy machine). Asserts nothing.

    python benchmarks/bench_nsexec.py [--repeats 41]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(
    cells: list[list[str]], repeats: int, fds: tuple[int, ...] = ()
) -> list[tuple[float, float, float]]:
    """(median wall, min wall, median CPU) seconds of each command, run in turns so that
    a busy machine's load falls on every cell alike. CPU time (user + system of the
    child) is what a start costs whatever else the machine is doing."""
    for cmd in cells:
        subprocess.run(cmd, check=True, pass_fds=fds)  # warm the page cache first
    wall: list[list[float]] = [[] for _ in cells]
    cpu: list[list[float]] = [[] for _ in cells]
    for _ in range(repeats):
        for i, cmd in enumerate(cells):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(cmd, check=True, pass_fds=fds)
            wall[i].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[i].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return [
        (statistics.median(w), min(w), statistics.median(c)) for w, c in zip(wall, cpu, strict=True)
    ]


WITNESS = "gridrun exit witness"


def wrappers(work: Path) -> dict[str, list[str]]:
    """The prefixes to compare, built from gridrun's own code for (c) and (d)."""
    from gridrun.backends.base import DatastoreMount
    from gridrun.datastores import isolation_mode, local_mount_command

    mode = isolation_mode()
    if mode == "none":
        sys.exit("no private mount namespace can be made here: nothing to measure")
    home, data = work / "home", work / "data"
    workdir, venv = home / "experiments" / "exp0" / "work", home / "envs" / "key"
    for folder in (workdir, venv, data):
        folder.mkdir(parents=True)
    (data / "x.txt").write_text("x")
    mount = DatastoreMount("bench", 1, data, str(workdir / "datastores" / "bench"))
    marker = "GRIDRUN-BENCH-COMMAND"

    def prefix(mounts: list[DatastoreMount], pidns: bool = False) -> list[str]:
        argv, _ = local_mount_command(
            [marker], mounts, workdir, mode=mode, hide=home, keep_rw=[venv]
        )
        argv = argv[: argv.index(marker)]
        if pidns:  # as the local backend confines its witness: the init drops privileges
            argv.insert(argv.index("--mode"), "--pidns")
        return argv

    by_hand = ["unshare", "-m", "--propagation", "private"]
    if os.geteuid() != 0:
        by_hand.insert(1, "-r")
    from gridrun.backends.local.backend import witness_command

    # The exit witness every local experiment starts under (backends/local/witness.py),
    # its record going to a scratch file, this process standing in for the supervisor.
    record = os.open(work / "witness.json", os.O_WRONLY | os.O_CREAT, 0o600)
    witness = [*witness_command(), str(record), str(os.getpid()), "--"]
    # What every local experiment now starts under: the wrapper's namespace, the
    # witness, and the init of the experiment's own PID namespace (issue 21).
    full = [*prefix([], pidns=True), *witness[:-1], "--init", "--"]
    return {
        "bare": [],
        WITNESS: witness,
        " ".join(by_hand): by_hand,
        f"gridrun wrapper ({mode}), GRID_HOME hidden": prefix([]),
        f"gridrun wrapper ({mode}), + 1 datastore": prefix([mount]),
        f"wrapper ({mode}) + witness + own PID namespace": full,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=41)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gridrun-bench-nsexec-"))
    try:
        commands = {"true": [shutil.which("true") or "/bin/true"],
                    "python -c pass": [sys.executable, "-c", "pass"]}  # fmt: skip
        prefixes = wrappers(work)
        cells = [[*prefix, *cmd] for prefix in prefixes.values() for cmd in commands.values()]
        fds = tuple(int(prefixes[WITNESS][-3]) for _ in (0,))  # the witness's record
        times = iter(timed(cells, args.repeats, fds))
        width = max(len(k) for k in prefixes)
        cols = "wall median (+ on bare), min; CPU median (+ on bare)"
        print(f"{'ms':{width}}  " + "  ".join(f"{c + ': ' + cols:<56}" for c in commands))
        base: dict[str, tuple[float, float]] = {}
        for label in prefixes:
            row = []
            for name in commands:
                med, low, cpu = (x * 1000 for x in next(times))
                b_wall, b_cpu = base.setdefault(name, (med, cpu))
                row.append(
                    f"{med:6.1f} (+{med - b_wall:6.1f}), {low:5.1f}; "
                    f"{cpu:5.1f} (+{cpu - b_cpu:5.1f})"
                )
            print(f"{label:{width}}  " + "  ".join(f"{c:<56}" for c in row))
        print(f"({args.repeats} starts each, in turns; load average {os.getloadavg()[0]:.2f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
