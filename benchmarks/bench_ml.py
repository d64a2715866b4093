"""Real training code, unmodified: gridrun against a virtualenv made by hand.

Each entry of the corpus (``../shared/corpus/ml-examples/pytorch-examples`` by default)
runs from its repository root with small arguments, on the CPU. Two arms:

* ``grid``: ``grid run`` of the script, with a fresh GRID_HOME and an empty uv cache;
* ``hand``: ``python -m venv`` + ``pip install -r`` the entry's requirements file, with
  an empty pip cache, then the script.

For each arm it prints whether the script reached its training loop (a line the
entry prints once training has begun), the cold build time, the environment's size
on disk, and why it failed (gridrun's hint, or the last line of the output). Prints
figures, asserts nothing.

The corpus has no README listing its entries, so they are listed here (ENTRIES).
PyPI's torch for Linux is the CUDA build (about 3.8 GB to download): an arm that
would install it is skipped unless ``--allow-cuda-download`` is given, and says so.
The gridrun arm takes torch's CPU build from ``--torch-index`` (a mirror of
https://download.pytorch.org/whl, which has ``cpu/``), or from PyTorch itself.

    python benchmarks/bench_ml.py [--entries regression,reinforce] [--arms grid,hand]
        [--torch-index file:///srv/pytorch-mirror] [--allow-cuda-download]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "shared" / "corpus" / "ml-examples" / "pytorch-examples"
RUN_SECONDS = 600  # an entry that reaches no training loop by then has failed


@dataclass(frozen=True)
class Entry:
    name: str
    script: str  # relative to the repository root
    args: tuple[str, ...]
    reached: str  # a regex: a line that shows the training loop has begun
    needs: tuple[str, ...] = ()  # torch packages the entry imports
    note: str = ""  # why it cannot run here as it is, if it cannot


ENTRIES = (
    Entry("regression", "regression/main.py", (), r"^Loss: [\d.]+ after \d+ batches", ("torch",)),
    Entry(
        "reinforce",
        "reinforcement_learning/reinforce.py",
        ("--log-interval", "1"),
        r"^Episode \d+\s+Last reward",
        ("torch",),
    ),
    Entry(
        "actor_critic",
        "reinforcement_learning/actor_critic.py",
        ("--log-interval", "1"),
        r"^Episode \d+\s+Last reward",
        ("torch",),
    ),
    Entry(
        "dcgan",
        "dcgan/main.py",
        ("--dataset", "fake", "--niter", "1", "--batchSize", "8", "--workers", "0", "--dry-run"),
        r"^\[0/1\]\[0/\d+\] Loss_D",
        ("torch", "torchvision"),
    ),
    Entry(
        "imagenet",
        "imagenet/main.py",
        ("--dummy", "-a", "resnet18", "--epochs", "1", "-b", "4", "--workers", "0", "-p", "1"),
        r"Epoch: \[0\]\[\s*\d+/\d+\]",
        ("torch", "torchvision"),
    ),
    Entry(
        "time_sequence",
        "time_sequence_prediction/train.py",
        ("--steps", "1"),
        r"^STEP:  0",
        ("torch",),
        note="needs traindata.pt, written by generate_sine_wave.py first",
    ),
)


@dataclass
class Result:
    arm: str
    entry: str
    reached: bool | None = None  # None: not run
    build_s: float | None = None
    size: int | None = None
    cause: str = ""


def du(path: Path) -> int:
    total = 0
    seen: set[tuple[int, int]] = set()
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def watch(cmd: list[str], cwd: Path, env: dict[str, str], pattern: str) -> tuple[bool, str]:
    """Run until ``pattern`` appears in a line (then stop it) or the command ends."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    found = False
    deadline = time.monotonic() + RUN_SECONDS
    for line in proc.stdout:
        text = re.sub(r"^\[(?:stdout|stderr|build)\] (?:\[[^\]]*\]|\d\d:\d\d:\d\d) ", "", line)
        seen.append(text.rstrip("\n"))
        if re.search(pattern, text):
            found = True
            break
        if time.monotonic() > deadline:
            break
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait()
    return found, "\n".join(seen)


def grid_arm(entry: Entry, work: Path, args: argparse.Namespace) -> Result:
    result = Result("grid", entry.name)
    home = work / "grid-home"
    home.mkdir()
    (home / "config.yaml").write_text("agent_idle_seconds: 5\n")
    env = dict(os.environ, GRID_HOME=str(home), UV_CACHE_DIR=str(work / "uv-cache"))
    if args.torch_index:
        env["GRID_TORCH_INDEX_URL"] = args.torch_index
    grid = [sys.executable, "-m", "gridrun"]
    name = f"bench-{entry.name.replace('_', '-')}"
    cmd = [*grid, "run", "--name", name, "--follow", entry.script, *entry.args]
    found, output = watch(cmd, args.corpus, env, entry.reached)
    result.reached = found
    # The build log keeps whole lines (--follow wraps them to 80 columns).
    log = home / "runs" / name / "build.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    ready = re.search(r"Environment ready in ([\d.]+)s: (.+)$", text, re.M)
    if ready:
        result.build_s = float(ready.group(1))
        result.size = du(Path(ready.group(2)))
    if not found:
        hint = re.search(r"^Hint: (.*?)(?=^Run |\Z)", output, re.M | re.S)
        failed = re.search(r"Build failed: (.*)", text)
        cause = hint.group(1) if hint else failed.group(1) if failed else output[-300:]
        result.cause = " ".join(cause.split())
    subprocess.run([*grid, "stop", "run", name], env=env, capture_output=True)
    subprocess.run([*grid, "agent", "stop"], env=env, capture_output=True)
    return result


def hand_arm(entry: Entry, work: Path, args: argparse.Namespace) -> Result:
    result = Result("hand", entry.name)
    if not args.allow_cuda_download:
        result.cause = "not run: pip would install PyPI's CUDA torch (~3.8 GB download)"
        return result
    req = args.corpus / Path(entry.script).parent / "requirements.txt"
    venv = work / "venv"
    env = dict(os.environ, PIP_CACHE_DIR=str(work / "pip-cache"))
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "-r", str(req)],
        env=env,
        capture_output=True,
        text=True,
    )
    result.build_s = time.monotonic() - started
    result.size = du(venv)
    if pip.returncode != 0:
        result.reached = False
        result.cause = "pip: " + (pip.stderr.strip().splitlines() or ["failed"])[-1]
        return result
    cmd = [str(venv / "bin" / "python"), entry.script, *entry.args]
    found, output = watch(cmd, args.corpus, env, entry.reached)
    result.reached = found
    if not found:
        result.cause = (output.strip().splitlines() or ["no output"])[-1]
    return result


def run_entry(entry: Entry, arm: str, args: argparse.Namespace) -> Result:
    if "torchvision" in entry.needs and not args.torchvision_reachable:
        return Result(
            arm,
            entry.name,
            None,
            cause="not run: no CPU torchvision reachable here (pass --torchvision-reachable "
            "with a --torch-index that has one)",
        )
    with tempfile.TemporaryDirectory(prefix=f"bench-ml-{arm}-") as tmp:
        work = Path(tmp)
        result = grid_arm(entry, work, args) if arm == "grid" else hand_arm(entry, work, args)
    if entry.note and not result.reached:  # expected: say why
        result.cause = f"({entry.note}) {result.cause}"
    return result


def table(results: list[Result]) -> str:
    head = f"{'entry':<14} {'arm':<5} {'reached':<8} {'build':>8} {'size':>9}  cause"
    rows = [head, "-" * len(head)]
    for r in results:
        reached = "-" if r.reached is None else "yes" if r.reached else "NO"
        build = f"{r.build_s:.1f} s" if r.build_s is not None else "-"
        size = f"{r.size / 2**20:.0f} MiB" if r.size is not None else "-"
        rows.append(f"{r.entry:<14} {r.arm:<5} {reached:<8} {build:>8} {size:>9}  {r.cause}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--entries", default=",".join(e.name for e in ENTRIES))
    parser.add_argument("--arms", default="grid,hand")
    parser.add_argument("--torch-index", default=os.environ.get("GRID_TORCH_INDEX_URL", ""))
    parser.add_argument("--allow-cuda-download", action="store_true")
    parser.add_argument("--torchvision-reachable", action="store_true")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"No corpus at {args.corpus}: pass --corpus.")
    wanted = set(args.entries.split(","))
    unknown = wanted - {e.name for e in ENTRIES}
    if unknown:
        sys.exit(f"Unknown entries {sorted(unknown)}; known: {[e.name for e in ENTRIES]}")
    results = []
    for entry in ENTRIES:
        if entry.name not in wanted:
            continue
        for arm in args.arms.split(","):
            results.append(run_entry(entry, arm, args))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(results))


if __name__ == "__main__":
    main()
