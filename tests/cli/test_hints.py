"""One-line hints for the common ways a training run dies.

The pure function on log lines first (the logs are the ones these failures print),
then real runs of tiny scripts through the CLI: the hint at the end of ``--follow``
and in ``grid status RUN``, and the failed run's last line pointing to its log.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gridrun.hints import diagnose

TS = "[stderr] [2026-12-05T01:11:14.863884+00:00] "

MNIST_OFFLINE = """\
Downloading http://yann.lecun.com/exdb/mnist/train-images-idx3-ubyte.gz
Failed to download (trying next):
<urlopen error [Errno -2] Name or service not known>

Traceback (most recent call last):
  File "main.py", line 134, in <module>
RuntimeError: Error downloading train-images-idx3-ubyte.gz
"""

HF_OFFLINE = """\
Traceback (most recent call last):
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='huggingface.co', port=443): \
Max retries exceeded with url: /bert-base-uncased/resolve/main/config.json
"""


def lines(text: str) -> list[str]:
    return [TS + line for line in text.splitlines()]


@pytest.mark.unit
def test_a_download_with_no_network_names_the_host() -> None:
    hint = diagnose(lines(MNIST_OFFLINE), 1)
    assert hint is not None
    assert hint.startswith("no network: the script could not reach yann.lecun.com to download")
    assert "Name or service not known" in hint
    assert "huggingface.co" in (diagnose(lines(HF_OFFLINE), 1) or "")


@pytest.mark.unit
def test_cuda_out_of_memory() -> None:
    log = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert (diagnose(lines(log), 1) or "").startswith("CUDA out of memory: use a smaller batch")


@pytest.mark.unit
def test_a_missing_data_file_is_named() -> None:
    log = "FileNotFoundError: [Errno 2] No such file or directory: 'data/train.csv'"
    hint = diagnose(lines(log), 1) or ""
    assert hint.startswith("a file or folder is missing: data/train.csv;")


@pytest.mark.unit
def test_exit_137_is_the_memory_killer_with_or_without_a_limit() -> None:
    assert "memory limit of 2 GiB" in (diagnose([], 137, memory=2 * 2**30) or "")
    assert "most likely by the kernel for want of memory" in (diagnose([], -9) or "")


@pytest.mark.unit
def test_a_module_still_missing_names_its_distribution() -> None:
    log = "ModuleNotFoundError: No module named 'yaml'"
    assert diagnose(lines(log), 1) == (
        "module yaml is still missing: add PyYAML to requirements.txt in the project"
    )


@pytest.mark.unit
def test_the_last_error_wins_and_an_unknown_death_has_no_hint() -> None:
    log = MNIST_OFFLINE + "ModuleNotFoundError: No module named 'yaml'\n"
    assert (diagnose(lines(log), 1) or "").startswith("module yaml is still missing")
    assert diagnose(lines("ValueError: bad learning rate"), 1) is None
    assert diagnose([], 0) is None


DOWNLOAD = """\
import urllib.request
url = "http://datasets.grid-no-such-host.invalid/mnist/train.gz"
print("Downloading", url, flush=True)
urllib.request.urlopen(url, timeout=20)
"""

KILLED = (
    "import os, signal\nprint('allocating', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n"
)


@pytest.mark.slow
def test_a_failed_runs_hint_ends_follow_and_shows_in_status(grid, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "download.py").write_text(DOWNLOAD)
    (project / "killed.py").write_text(KILLED)
    (project / "requirements.txt").write_text("")

    proc = grid("run", "--name", "offline", "--follow", "download.py", cwd=project, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout.rstrip("\n").splitlines()
    end = next(i for i, line in enumerate(out) if line.startswith("Run offline ended: "))
    assert re.fullmatch(
        r"Run offline ended: 0 succeeded, 1 failed, 0 stopped in 0d-\d\d:\d\d:\d\d\. "
        r"Why: `grid logs offline-exp0`",
        " ".join(out[end:]),
    ), proc.stdout
    assert out[-1] == "Why: `grid logs offline-exp0`"
    start = next(i for i, line in enumerate(out) if line.startswith("Hint: "))
    wrapped = out[start:end]  # the hint, wrapped to 80 columns, then the summary
    assert all(len(line) <= 80 for line in wrapped), wrapped
    assert " ".join(line.strip() for line in wrapped).startswith(
        "Hint: no network: the script could not reach datasets.grid-no-such-host.invalid"
    ), proc.stdout
    status = grid("status", "offline").stdout
    assert (
        "Hint: offline-exp0: no network: the script could not reach datasets.grid-no-such-host"
        in (" ".join(status.split()))
    )

    proc = grid(
        "run",
        "--name",
        "killed",
        "--memory",
        "1G",
        "--follow",
        "killed.py",
        cwd=project,
        check=False,
    )
    assert proc.returncode != 0
    text = " ".join(proc.stdout.split())
    assert "Hint: killed (exit 137, SIGKILL), most likely at its memory limit of 1 GB" in text
    status = " ".join(grid("status", "killed").stdout.split())
    assert "Hint: killed-exp0: killed (exit 137, SIGKILL)" in status
