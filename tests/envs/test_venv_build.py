"""Real uv builds: caching, atomicity, concurrent builders, crashes and failures.

Packages come from PyPI (six, and an unknown name), from wheels made on the fly, or
from a local source package whose build backend can be told to wait or to fail, so
a build can be caught (and killed) in the middle.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from envhelpers import make_source_package, make_wheel, run_builder

from gridrun.envs.key import environment_key
from gridrun.envs.pipconf import PipConfig, load_pip_config
from gridrun.envs.venv import (
    LAST_USED,
    MARKER,
    build_venv,
    list_envs,
    remove_env,
    venv_python,
)
from gridrun.errors import BuildError, NotFoundError
from gridrun.home import GridHome

pytestmark = pytest.mark.slow


@pytest.fixture
def envs_dir(weird_tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """GRID_HOME/envs under a path with spaces, quotes and unicode."""
    monkeypatch.setenv("GRID_HOME", str(weird_tmp_path / "grid home"))
    return GridHome.from_env().ensure().envs


def leftovers(envs_dir: Path) -> list[str]:
    return sorted(p.name for p in envs_dir.iterdir() if p.name.startswith(".tmp-"))


def run_python(env: Path, code: str) -> str:
    return subprocess.run(
        [str(venv_python(env)), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# ------------------------------------------------------------ build and reuse
def test_builds_six_once_then_reuses_it_fast(
    envs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pip = load_pip_config()  # this machine's real pip configuration, as the backend uses
    key = environment_key("3.11", ["six"], pip.fingerprint())
    lines: list[str] = []
    started = time.perf_counter()
    path = build_venv(envs_dir, key, "3.11", ["six"], lines.append, pip)
    cold = time.perf_counter() - started

    assert path == envs_dir / key
    assert lines[0] == f"Building environment {key} with Python 3.11: 1 package"
    assert any(line.strip().startswith("+ six==") for line in lines), lines  # uv's output
    assert run_python(path, "import six, sys; print(sys.prefix)") == str(path)
    meta = json.loads((path / MARKER).read_text())
    assert meta["key"] == key and meta["requirements"] == ["six"]
    assert meta["python_version"].startswith("3.11.")
    assert leftovers(envs_dir) == []

    os.utime(path / LAST_USED, (1, 1))

    def no_spawn(*args: object, **kwargs: object) -> None:
        raise AssertionError("reusing a cached environment must not start a process")

    monkeypatch.setattr(subprocess, "Popen", no_spawn)
    again: list[str] = []
    started = time.perf_counter()
    reused = build_venv(envs_dir, key, "3.11", ["six"], again.append, pip)
    warm = time.perf_counter() - started
    print(f"\ncold build of six: {cold:.2f} s; cached reuse: {warm * 1000:.3f} ms")
    assert reused == path
    assert again == [f"Reusing cached environment {key}"]
    assert warm < 0.5
    assert (path / LAST_USED).stat().st_mtime > 1


def test_empty_requirements_still_make_a_venv(envs_dir: Path) -> None:
    lines: list[str] = []
    path = build_venv(envs_dir, "empty", "3.11", [], lines.append)
    assert lines[0] == "Building environment empty with Python 3.11: 0 packages"
    assert run_python(path, "import sys; print(sys.prefix)") == str(path)
    with pytest.raises(subprocess.CalledProcessError):
        run_python(path, "import six")  # isolated from the interpreter it came from


def test_pip_config_find_links_constraints_and_no_index(envs_dir: Path, tmp_path: Path) -> None:
    """A pip config pointing at local wheels installs offline, honouring constraints,
    and the console script of the installed wheel works after the atomic rename."""
    wheels = tmp_path / "wheel house"
    make_wheel(wheels, "gridfoo", "1.0", script="gridfoo-hello")
    make_wheel(wheels, "gridfoo", "2.0", script="gridfoo-hello")
    constraints = tmp_path / "my constraints.txt"
    constraints.write_text("gridfoo<2\n")
    missing = tmp_path / "no such wheels"
    pip = PipConfig(
        find_links=(str(wheels), str(missing)), constraints=(str(constraints),), no_index=True
    )
    lines: list[str] = []
    path = build_venv(envs_dir, "local-wheels", "3.11", ["gridfoo"], lines.append, pip)
    assert f"pip config: find-links {missing} does not exist; ignoring it." in lines
    hello = subprocess.run([str(path / "bin" / "gridfoo-hello")], capture_output=True, text=True)
    assert hello.stdout.strip() == "gridfoo 1.0", hello


def test_option_lines_in_requirements_are_kept(envs_dir: Path, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "gridbar", "3.0")
    reqs = [f"--find-links {wheels}", "--no-index", "gridbar"]
    lines: list[str] = []
    path = build_venv(envs_dir, "options", "3.11", reqs, lines.append)
    assert lines[0].endswith(": 1 package")
    assert run_python(path, "import gridbar; print(gridbar.VERSION)") == "3.0"


# ------------------------------------------------------------ two builders
def test_two_processes_build_the_same_key_once(envs_dir: Path, tmp_path: Path) -> None:
    pkg = make_source_package(tmp_path / "src", "slowpkg")
    (pkg / "SLOW").write_text("2")  # the build takes 2 s: the second builder must wait
    req = f"slowpkg @ {pkg.as_uri()}"
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    procs = [run_builder(envs_dir, "shared", log, req) for log in logs]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == str(envs_dir / "shared")
    text = "".join(log.read_text() for log in logs)
    assert text.count("Building environment shared") == 1
    assert text.count("Creating virtual environment") == 1  # uv ran once
    assert text.count("Waiting for another process that is building environment shared") == 1
    assert text.count("Reusing cached environment shared") == 1
    assert run_python(envs_dir / "shared", "import slowpkg; print(slowpkg.BUILT)") == "True"
    assert leftovers(envs_dir) == []


def test_two_threads_build_the_same_key_once(envs_dir: Path, tmp_path: Path) -> None:
    """The agent builds in threads: the lock must hold between threads of one process."""
    pkg = make_source_package(tmp_path / "src", "threadpkg")
    (pkg / "SLOW").write_text("1")
    req = f"threadpkg @ {pkg.as_uri()}"
    logs: list[list[str]] = [[], []]
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(build_venv, envs_dir, "threaded", "3.11", [req], log.append) for log in logs
        ]
        paths = [f.result(timeout=120) for f in futures]
    assert paths == [envs_dir / "threaded"] * 2
    text = "\n".join(line for log in logs for line in log)
    assert text.count("Building environment threaded") == 1
    assert text.count("Reusing cached environment threaded") == 1


# ------------------------------------------------------------ crashes
def test_builder_killed_mid_build_leaves_nothing_usable(envs_dir: Path, tmp_path: Path) -> None:
    pkg = make_source_package(tmp_path / "src", "crashpkg")
    (pkg / "SLOW").write_text("60")
    req = f"crashpkg @ {pkg.as_uri()}"
    log = tmp_path / "crash.log"
    proc = run_builder(envs_dir, "crashy", log, req)
    try:
        wait_for(
            lambda: log.exists() and "Building crashpkg" in log.read_text(),
            60,
            "uv to start building crashpkg",
        )
        (half,) = [p for p in envs_dir.iterdir() if p.name.startswith(".tmp-crashy-")]
        assert venv_python(half).exists()  # the venv exists, its packages do not yet
        proc.send_signal(signal.SIGKILL)  # the builder only: its uv child lives on
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert not (envs_dir / "crashy").exists()
        # The key's lock died with the builder, though its uv child is still running.
        fd = os.open(envs_dir / "crashy.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)

        # A new build, while the orphaned uv may still be finishing its own work
        # (uv's cache lock makes the new one wait for that build, not redo it).
        (pkg / "SLOW").unlink()
        lines: list[str] = []
        path = build_venv(envs_dir, "crashy", "3.11", [req], lines.append)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned uv and build backend
    assert f"Removing unfinished build {half.name} left by an interrupted build" in lines
    assert lines.count("Building environment crashy with Python 3.11: 1 package") == 1
    assert json.loads((path / MARKER).read_text())["key"] == "crashy"
    assert run_python(path, "import crashpkg; print(crashpkg.BUILT)") == "True"
    # The orphan may have re-created its own tmp folder; the next build of any key
    # removes it, since nobody holds that key's lock any more.
    build_venv(envs_dir, "after-crash", "3.11", [], lambda _line: None)
    assert leftovers(envs_dir) == []


def test_file_in_place_of_an_environment_is_replaced(envs_dir: Path) -> None:
    (envs_dir / "afile").write_text("junk")
    path = build_venv(envs_dir, "afile", "3.11", [], lambda _line: None)
    assert (path / MARKER).is_file()


def test_folder_without_marker_is_replaced(envs_dir: Path) -> None:
    half = envs_dir / "halfdone"
    (half / "bin").mkdir(parents=True)
    (half / "bin" / "python").write_text("not an interpreter")
    lines: list[str] = []
    path = build_venv(envs_dir, "halfdone", "3.11", [], lines.append)
    assert "Replacing incomplete environment halfdone (no completion marker)" in lines
    assert (path / MARKER).is_file()
    assert run_python(path, "print('ok')") == "ok"
    assert leftovers(envs_dir) == []


def test_stale_builds_of_other_keys_are_cleaned_unless_in_progress(envs_dir: Path) -> None:
    stale = envs_dir / ".tmp-otherkey-0a1b2c3d"
    busy = envs_dir / ".tmp-busykey-4e5f6a7b"
    stale.mkdir()
    busy.mkdir()
    fd = os.open(envs_dir / "busykey.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # someone is building busykey right now
        build_venv(envs_dir, "cleaner", "3.11", [], lambda _line: None)
        assert not stale.exists()
        assert busy.exists()
    finally:
        os.close(fd)


# ------------------------------------------------------------ failures
def test_unknown_package_names_it_and_leaves_nothing(envs_dir: Path) -> None:
    lines: list[str] = []
    with pytest.raises(BuildError) as info:
        build_venv(
            envs_dir,
            "unknown",
            "3.11",
            ["six", "nonexistent-pkg-xyz"],
            lines.append,
            load_pip_config(),
        )
    assert (
        info.value.message
        == "Could not install 'nonexistent-pkg-xyz': not found in the package index."
    )
    assert any("nonexistent-pkg-xyz was not found" in line for line in lines)  # uv's own words
    assert sorted(os.listdir(envs_dir)) == ["unknown.lock"]


def test_failing_build_names_the_package_and_the_cause(envs_dir: Path, tmp_path: Path) -> None:
    pkg = make_source_package(tmp_path / "src", "failpkg")
    (pkg / "FAIL").write_text("")
    with pytest.raises(BuildError) as info:
        build_venv(envs_dir, "failing", "3.11", [f"failpkg @ {pkg.as_uri()}"], lambda _l: None)
    assert info.value.message == (
        "Could not install 'failpkg': build failed: RuntimeError: compiler exploded."
    )
    assert sorted(os.listdir(envs_dir)) == ["failing.lock"]


def test_missing_python_is_named_and_never_downloaded(envs_dir: Path) -> None:
    started = time.monotonic()
    with pytest.raises(BuildError) as info:
        build_venv(envs_dir, "nopython", "3.99", ["six"], lambda _line: None)
    assert "Python 3.99 was not found" in info.value.message
    assert "install Python 3.99 or pass --python" in str(info.value)
    assert time.monotonic() - started < 10  # no interpreter download was attempted
    assert sorted(os.listdir(envs_dir)) == ["nopython.lock"]


# ------------------------------------------------------------ listing
def test_list_and_remove(envs_dir: Path) -> None:
    build_venv(envs_dir, "env-a", "3.11", [], lambda _line: None)
    build_venv(envs_dir, "env-b", "3.11", [], lambda _line: None)
    for info in list_envs(envs_dir):
        os.utime(info.path / LAST_USED, (1000, 1000))
    build_venv(envs_dir, "env-b", "3.11", [], lambda _line: None)  # reuse: most recent
    infos = list_envs(envs_dir)
    assert [i.key for i in infos] == ["env-b", "env-a"]
    assert infos[0].last_used > infos[1].last_used == 1000
    assert all(i.size > 0 and i.python.startswith("3.11.") and i.created > 1000 for i in infos)
    remove_env(envs_dir, "env-b")
    assert [i.key for i in list_envs(envs_dir)] == ["env-a"]
    assert not (envs_dir / "env-b").exists() and leftovers(envs_dir) == []
    with pytest.raises(NotFoundError):
        remove_env(envs_dir, "env-b")


# ------------------------------------------------------------------- progress
def test_a_long_quiet_step_says_it_is_still_working(
    envs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The package's build waits while its SLOW file exists; the first heartbeat line
    # removes it, so the build ends because a heartbeat came, not after some time.
    import gridrun.envs.venv as venv

    monkeypatch.setattr(venv, "HEARTBEAT_SECONDS", 0.05)
    pkg = make_source_package(tmp_path / "src", "quietpkg")
    (pkg / "SLOW").write_text("60")  # a failing test ends after 60 s
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if line.startswith("Still "):
            (pkg / "SLOW").unlink(missing_ok=True)

    env = build_venv(envs_dir, "quiet", "3.11", [f"quietpkg @ {pkg.as_uri()}"], log)
    assert run_python(env, "import quietpkg; print(quietpkg.BUILT)") == "True"
    still = [line for line in lines if line.startswith("Still ")]
    assert still and all(line.endswith(" s so far") for line in still), lines
    assert not any(line.startswith("Activate with:") for line in lines), lines
