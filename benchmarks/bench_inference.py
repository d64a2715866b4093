"""Dependency inference on real code: gridrun next to pipreqs + uv, in one run.

Over the hard gists of ``../shared/corpus/hard-gists`` (see its README), each snippet
is given to two arms, side by side:

* gridrun: ``grid run --follow snippet.py`` in a folder holding only the snippet;
* pipreqs 0.5 (in its own virtualenv) writes ``requirements.txt``, then ``uv venv`` and
  ``uv pip install -r`` build the environment, then the snippet runs in it.

The criterion is the literature's (PyEGo, ICSE 2022): a snippet succeeds when, run in
the environment the tool built, it no longer fails with ``ImportError`` or
``ModuleNotFoundError``; any other error, or running until the time limit (20 s after
the environment exists, no stdin), is a success. A failed build is a failure.

Each failure is put down to one cause, read from the output: not on the index, build
failure, wrong API version (the package is there, the name is not), wrong Python
(Python 2 or a removed standard-library name), only inside another program (GIMP,
Blender, Sublime Text, Pythonista, App Engine...), or missing (an import the tool did
not provide). Inference time is the time to the requirements, not counting the install:
``grid run`` up to its submission summary (snapshot, import closure, mapping), and the
``pipreqs`` command.

    python benchmarks/bench_inference.py                 # all snippets, 2 at a time
    python benchmarks/bench_inference.py --limit 10 --jobs 1 --arms gridrun

Heavy: every snippet builds a real environment (uv's cache makes repeats cheap).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "hard-gists"
if not DEFAULT_CORPUS.is_dir():
    DEFAULT_CORPUS = Path("/work/shared/corpus/hard-gists")
PIPREQS = "pipreqs==0.5.0"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# pipreqs asks PyPI's JSON API for each package's latest version; its default host,
# pypi.python.org, is only a redirect (and unreachable from some networks).
PYPI_SERVER = ["--pypi-server", "https://pypi.org/pypi/"]
# Both arms run as a user's shell would: with bytecode caching (some CI images turn it
# off, which would charge every interpreter start for recompiling its imports).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

# Modules that exist only inside another program's embedded Python: no index has them.
ELSEWHERE = frozenset(
    [
        "bpy",
        "bpy_extras",
        "bge",
        "mathutils",
        "gimpfu",
        "gimp",
        "gimpenums",
        "maya",
        "pymel",
        "nuke",
        "hou",
        "sublime",
        "sublime_plugin",
        "idaapi",
        "idc",
        "idautils",
        "xbmc",
        "xbmcgui",
        "xbmcplugin",
        "xbmcaddon",
        "rhinoscriptsyntax",
        "scriptcontext",
        "Rhino",
        "arcpy",
        "c4d",
        "MaxPlus",
        "pymxs",
        "unreal",
        "ghidra",
        "qgis",
        "krita",
        "FreeCAD",
        "FreeCADGui",
        "adsk",
        "lldb",
        "gdb",
        "vim",
        "scene",
        "console",
        "sound",
        "photos",
        "editor",
        "ui",
        "objc_util",
        "appex",
        "keychain",
        "dialogs",
        "notification",
        "location",
        "motion",
        "speech",
        "reminders",
        "contacts",
        "canvas",
        "hexchat",
        "weechat",
        "xchat",
        "ycm_core",
        "terminatorlib",
        "ndb",
        "android",
    ]
)
CAUSES = (
    "not on the index",
    "build failure",
    "wrong API version",
    "wrong Python",
    "only inside another program",
    "missing",
)
# ``grid logs``/``--follow`` lines start with ``[stderr] [timestamp] ``.
_IMPORT_ERROR = re.compile(
    r"^(?:\[\w+\] \[[^\]]*\] )?(?:ImportError|ModuleNotFoundError): (?P<msg>.*)$",
    re.MULTILINE,
)
_NO_MODULE = re.compile(r"No module named '?(?P<mod>[A-Za-z0-9_.]+)'?")
_CANNOT = re.compile(r"cannot import name '?(?P<name>\w+)'? from '?(?P<mod>[A-Za-z0-9_.]+)'?")


@dataclass
class Result:
    snippet: str
    arm: str
    ok: bool
    cause: str | None
    infer_s: float | None
    detail: str
    wall_s: float = 0.0


def classify(
    output: str, installed: set[str], dropped: dict[str, str]
) -> tuple[bool, str | None, str]:
    """(success, cause, detail) from a snippet's output in the environment built for it."""
    errors = list(_IMPORT_ERROR.finditer(output))
    if not errors:
        return True, None, ""
    msg = errors[-1].group("msg").strip()
    return False, *cause_of(msg, installed, dropped)


def cause_of(msg: str, installed: set[str], dropped: dict[str, str]) -> tuple[str, str]:
    """The cause of one ImportError message, and the message."""
    from gridrun.deps.stdlib import PY2_STDLIB, REMOVED_NAMES, REMOVED_STDLIB

    named = _CANNOT.search(msg) or _NO_MODULE.search(msg)
    if named and named.group("mod").split(".")[0] in ELSEWHERE:
        return "only inside another program", msg
    cannot = _CANNOT.search(msg)
    if cannot:
        mod = cannot.group("mod")
        top = mod.split(".")[0]
        if top in sys.stdlib_module_names or f"{mod}.{cannot.group('name')}" in REMOVED_NAMES:
            return "wrong Python", msg
        return "wrong API version", msg
    found = _NO_MODULE.search(msg)
    mod = found.group("mod") if found else ""
    top = mod.split(".")[0]
    if top in ELSEWHERE or mod.startswith("google.appengine"):
        return "only inside another program", msg
    if top in PY2_STDLIB or top in REMOVED_STDLIB:
        return "wrong Python", msg
    key = _canonical(top)
    if key in dropped:
        return dropped[key], msg
    if key in installed and "." in mod:
        return "wrong API version", msg  # the package is there, a submodule is not
    return "missing", msg


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _drop_causes(text: str) -> dict[str, str]:
    """Distributions a build dropped, with the cause, from gridrun's or uv's messages."""
    out: dict[str, str] = {}
    for m in re.finditer(r"dropped ([A-Za-z0-9._-]+): (.*)", text):
        cause = "build failure" if "build" in m.group(2) else "not on the index"
        out[_canonical(m.group(1))] = cause
    return out


# ------------------------------------------------------------------ gridrun arm
def run_gridrun(snippet: Path, work: Path, home: Path, index: int, limit: float) -> Result:
    project = work / "gridrun" / snippet.name
    project.mkdir(parents=True)
    shutil.copy(snippet / "snippet.py", project / "snippet.py")
    env = dict(ENV, GRID_HOME=str(home), COLUMNS="250", PYTHONUNBUFFERED="1")
    name = f"bench-{index}"
    argv = [sys.executable, "-m", "gridrun", "run", "--name", name, "--cpus", "1"]
    argv += ["--ignore_warnings", "--follow", "snippet.py"]
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    lines: list[str] = []
    infer_s: float | None = None
    ready = threading.Event()
    stopper: threading.Timer | None = None

    def stop() -> None:
        subprocess.run(
            [sys.executable, "-m", "gridrun", "stop", "run", name],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )

    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if infer_s is None and line.startswith("Run submitted"):
            infer_s = time.perf_counter() - start
        if not ready.is_set() and "Environment ready" in line:
            ready.set()
            stopper = threading.Timer(limit, stop)
            stopper.start()
    proc.wait()
    if stopper is not None:
        stopper.cancel()
    text = "".join(lines)
    dropped = _drop_causes(text)
    if not ready.is_set():
        cause = "build failure"
        if "not found in the package index" in text:
            cause = "not on the index"
        tail = [ln for ln in lines if "Build failed" in ln or "rror" in ln][-1:]
        return Result(snippet.name, "gridrun", False, cause, infer_s, "".join(tail).strip())
    installed = set(re.findall(r"^\s*\[build\].*?\+ ([A-Za-z0-9._-]+)==", text, re.MULTILINE))
    installed = {_canonical(n) for n in installed}
    installed |= {_canonical(n) for n in re.findall(r"^\s{2}([A-Za-z0-9._-]+)", text, re.M)}
    ok, cause, detail = classify(text, installed, dropped)
    return Result(snippet.name, "gridrun", ok, cause, infer_s, detail)


# ------------------------------------------------------------------ pipreqs arm
def install_pipreqs(tools: Path) -> Path:
    venv = tools / "pipreqs"
    if not (venv / "bin" / "pipreqs").exists():
        subprocess.run([_uv(), "venv", "-q", "--python", PYTHON, str(venv)], check=True)
        subprocess.run(
            [_uv(), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), PIPREQS],
            check=True,
        )
    return venv / "bin" / "pipreqs"


def run_pipreqs(snippet: Path, work: Path, pipreqs: Path, limit: float) -> Result:
    project = work / "pipreqs" / snippet.name
    project.mkdir(parents=True)
    shutil.copy(snippet / "snippet.py", project / "snippet.py")
    reqs = work / "pipreqs" / f"{snippet.name}.txt"
    start = time.perf_counter()
    proc = subprocess.run(
        [str(pipreqs), "--savepath", str(reqs), "--force", *PYPI_SERVER, str(project)],
        capture_output=True,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
        timeout=300,
        env=ENV,
    )
    infer_s = time.perf_counter() - start
    if proc.returncode != 0 or not reqs.exists():
        last = (proc.stderr.strip().splitlines() or ["pipreqs failed"])[-1]
        return Result(snippet.name, "pipreqs", False, "missing", infer_s, last)
    venv = work / "pipreqs" / f"{snippet.name}-venv"
    subprocess.run([_uv(), "venv", "-q", "--python", PYTHON, str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [_uv(), "pip", "install", "--python", str(python), "-r", str(reqs)],
        capture_output=True,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
    )
    if install.returncode != 0:
        from gridrun.envs.uvoutput import failure_message

        message = failure_message(install.stderr.splitlines())
        cause = (
            "not on the index" if "not found in the package index" in message else ("build failure")
        )
        shutil.rmtree(venv, ignore_errors=True)
        return Result(snippet.name, "pipreqs", False, cause, infer_s, message)
    output = _run_limited([str(python), "snippet.py"], project, limit)
    names = {_canonical(ln.split("==")[0]) for ln in reqs.read_text().splitlines() if ln}
    ok, cause, detail = classify(output, names, {})
    shutil.rmtree(venv, ignore_errors=True)
    return Result(snippet.name, "pipreqs", ok, cause, infer_s, detail)


def _run_limited(argv: list[str], cwd: Path, limit: float) -> str:
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    return out.decode("utf-8", errors="replace")


def _uv() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


# ------------------------------------------------------------------ report
def report(results: list[Result], arms: list[str], total: int) -> None:
    print(f"\nDependency inference on {total} hard gists (success: no ImportError)\n")
    header = f"{'':34}" + "".join(f"{arm:>14}" for arm in arms)
    print(header)
    rows: list[tuple[str, list[str]]] = []
    by_arm = {arm: [r for r in results if r.arm == arm] for arm in arms}
    rows.append(
        (
            "success",
            [
                f"{sum(r.ok for r in by_arm[a])}/{len(by_arm[a])} "
                f"({100 * sum(r.ok for r in by_arm[a]) / max(1, len(by_arm[a])):.1f}%)"
                for a in arms
            ],
        )
    )
    for cause in CAUSES:
        rows.append(
            (f"  failed: {cause}", [str(sum(r.cause == cause for r in by_arm[a])) for a in arms])
        )
    rows.append(
        (
            "median inference time per snippet",
            [f"{_median([r.infer_s for r in by_arm[a]]):.2f} s" for a in arms],
        )
    )
    for label, cells in rows:
        print(f"{label:34}" + "".join(f"{c:>14}" for c in cells))


def inference_only(corpus: Path, limit: int) -> int:
    """gridrun's inference per snippet, in-process and warm, next to pipreqs' command."""
    from gridrun.deps import resolve_dependencies

    snippets = sorted(p for p in corpus.iterdir() if (p / "snippet.py").is_file())
    snippets = snippets[:limit] if limit else snippets
    cache = Path(tempfile.mkdtemp(prefix="bench-infer-cache-"))
    resolve_dependencies(snippets[0], ["snippet.py"], "snippet.py", cache_dir=cache)  # warm
    cold: list[float] = []
    for snippet in snippets:
        start = time.perf_counter()
        resolve_dependencies(snippet, ["snippet.py"], "snippet.py", cache_dir=cache)
        cold.append(time.perf_counter() - start)
    print(f"gridrun inference over {len(snippets)} snippets (first read of each, one process):")
    print(f"  median {statistics.median(cold) * 1000:.1f} ms, max {max(cold) * 1000:.1f} ms")
    shutil.rmtree(cache, ignore_errors=True)
    return 0


def _median(values: list[float | None]) -> float:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=0, help="only the first N snippets")
    parser.add_argument("--jobs", type=int, default=2, help="snippets at once (default 2)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds of running")
    parser.add_argument("--arms", default="gridrun,pipreqs")
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--report", type=Path, help="only print the table of a --json file")
    parser.add_argument(
        "--inference-only",
        action="store_true",
        help="time gridrun's inference in one process (no builds): snapshot list, closure, map",
    )
    args = parser.parse_args()
    if args.inference_only:
        return inference_only(args.corpus, args.limit)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if args.report:
        done = [Result(**r) for r in json.loads(args.report.read_text())]
        for r in done:  # the rules may have grown since the run: apply them again
            again = cause_of(r.detail, set(), {})[0] if not r.ok and r.detail else None
            if again in ("only inside another program", "wrong Python"):
                r.cause = again
        both = {r.snippet for r in done if r.arm == arms[0]}
        for arm in arms[1:]:
            both &= {r.snippet for r in done if r.arm == arm}
        report([r for r in done if r.snippet in both], arms, len(both))
        return 0
    snippets = sorted(p for p in args.corpus.iterdir() if (p / "snippet.py").is_file())
    if args.limit:
        snippets = snippets[: args.limit]
    if not snippets:
        sys.exit(f"No snippets under {args.corpus}")
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    home = work / "grid-home"
    home.mkdir()
    (home / "config.yaml").write_text(f"capacity: {{cpus: {max(1, args.jobs)}}}\n")
    pipreqs = install_pipreqs(work / "tools") if "pipreqs" in arms else None
    tasks = [(i, s, arm) for i, s in enumerate(snippets) for arm in arms]
    results: list[Result] = []
    lock = threading.Lock()

    def one(task: tuple[int, Path, str]) -> None:
        i, snippet, arm = task
        begun = time.monotonic()
        try:
            if arm == "gridrun":
                result = run_gridrun(snippet, work, home, i, args.timeout)
            else:
                assert pipreqs is not None
                result = run_pipreqs(snippet, work, pipreqs, args.timeout)
        except Exception as exc:  # a harness problem is recorded, not fatal
            result = Result(snippet.name, arm, False, "build failure", None, repr(exc))
        result.wall_s = time.monotonic() - begun
        with lock:
            results.append(result)
            if args.json:  # after every snippet: a long run that is cut short still reports
                args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
            mark = "ok  " if result.ok else f"FAIL {result.cause}"
            print(
                f"[{len(results)}/{len(tasks)}] {arm:8} {snippet.name[:12]} {mark} "
                f"{result.detail[:90]}",
                flush=True,
            )

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            list(pool.map(one, tasks))
    finally:
        subprocess.run(
            [sys.executable, "-m", "gridrun", "agent", "stop"],
            env=dict(os.environ, GRID_HOME=str(home)),
            capture_output=True,
        )
    report(results, arms, len(snippets))
    print(f"\n{time.monotonic() - started:.0f} s in all; work folder {work}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    shutil.rmtree(work / "pipreqs", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
