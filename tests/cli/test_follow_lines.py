"""``--follow`` lines fit 80 columns: a time of day (``grid logs`` keeps the full
timestamp), text wrapped under itself, the run's summary wrapped before its pointer."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gridrun.cli.follow import compact_line, fit, summary_lines
from gridrun.store.models import Experiment, Status


@pytest.mark.unit
def test_a_build_line_is_shown_with_its_time_and_wrapped_to_80_columns() -> None:
    line = (
        "[build] [2026-12-05T01:11:03.473617+00:00] Warning: inferred requirement added "
        "tensorboard: torch.utils.tensorboard imports tensorboard without requiring it"
    )
    shown = compact_line(line)
    assert shown[0].startswith("[build] 01:11:03 Warning: inferred requirement added")
    assert all(len(part) <= 80 for part in shown)
    assert all(part.startswith(" " * 17) for part in shown[1:])
    assert " ".join(part.strip() for part in shown).endswith("without requiring it")


@pytest.mark.unit
def test_an_experiments_output_is_shown_short_labelled_and_wrapped() -> None:
    assert compact_line("[stdout] [2026-12-05T01:11:03+00:00] hi") == ["[stdout] 01:11:03 hi"]
    text = "epoch 3 " + "loss=0.25 " * 12 + "x" * 90  # and a word longer than a line
    shown = compact_line(f"[stderr] [2026-12-05T01:11:03.5+00:00] {text}", "brave-fox-exp12")
    head = "brave-fox-exp12 | [stderr] 01:11:03 "
    assert shown[0].startswith(head + "epoch 3 loss=0.25")
    assert all(len(part) <= 80 for part in shown), shown
    assert all(part.startswith(" " * len(head)) for part in shown[1:])
    # Nothing of the text is lost: breaks fell on spaces, and the long word was cut
    # only where it had to be.
    rest = [part[len(head) :] for part in shown]
    words = [part for part in rest if not part.startswith("x")]
    assert " ".join(words).split() == text.split()[:-1]
    assert "".join(part for part in rest if part.startswith("x")) == "x" * 90
    # A traceback keeps its indentation; a line not in the log format is only wrapped.
    assert compact_line("[stderr] [2026-12-05T01:11:03+00:00]     raise ValueError") == [
        "[stderr] 01:11:03     raise ValueError"
    ]
    assert fit("", "plain " * 20) == ["plain " * 12 + "plain", "plain " * 6 + "plain"]


def _exp(name: str, status: Status) -> Experiment:
    return Experiment(
        id=1, run_id=1, run_name="r", name=name, index=0, argv=[], params={}, status=status,
        exit_code=0 if status == Status.SUCCEEDED else 1, error=None, cpus=1, gpus=0,
        memory=None, gpu_ids=[], queued_at=100.0, started_at=100.0, finished_at=103.0,
        claim_token=None, claimed_at=None, supervisor_pid=None, supervisor_started=None,
        pid=None, stop_requested=False, backend_ref=None,
    )  # fmt: skip


@pytest.mark.unit
def test_the_summary_fits_80_columns_with_its_pointer_on_the_last_line() -> None:
    short = summary_lines("r", [_exp("r-exp0", Status.SUCCEEDED)])
    assert short == [
        "Run r ended: 1 succeeded, 0 failed, 0 stopped in 0d-00:00:03.",
        "Artifacts: `grid artifacts r`",
    ]
    name = "a-rather-long-run-name-of-more-than-forty-characters"
    long = summary_lines(name, [_exp(f"{name}-exp0", Status.FAILED)])
    assert long == [
        f"Run {name} ended: 0 succeeded, 1",
        "failed, 0 stopped in 0d-00:00:03.",
        f"Why: `grid logs {name}-exp0`",
    ]
    assert all(len(line) <= 80 for line in long)


def test_a_scripts_long_line_wraps_on_a_terminal_and_stays_whole_in_a_pipe(
    grid, tmp_path: Path
) -> None:
    """Through the real CLI: ``--follow`` into a pipe, then ``grid logs --follow`` on a
    terminal (a pseudo-terminal 200 columns wide: lines still fit 80)."""
    payload = {f"key{i}": "value" for i in range(12)}  # a 150-character line
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "long.py").write_text(f"print('SEEN', {payload!r})\n")
    (tmp_path / "p" / "requirements.txt").write_text("")
    piped = grid("run", "--name", "wide", "--follow", "long.py", cwd=tmp_path / "p").stdout
    line = next(x for x in piped.splitlines() if "SEEN " in x)
    assert re.fullmatch(r"\[stdout\] \d\d:\d\d:\d\d SEEN \{.*\}", line), piped
    assert ast.literal_eval(line.split("SEEN ", 1)[1]) == payload
    assert all(len(x) <= 80 for x in piped.splitlines() if x.startswith(("[build]", "Run ")))

    shown = _on_a_terminal(grid, ["logs", "--follow", "wide-exp0"], columns=200)
    lines = shown.splitlines()
    start = next(i for i, x in enumerate(lines) if "SEEN " in x)
    assert all(len(x) <= 80 for x in lines), lines
    assert lines[start + 1].startswith(" " * len("[stdout] 00:00:00 "))
    end = next(i for i, x in enumerate(lines) if x.endswith("}"))
    assert "".join(x.strip() for x in lines[start : end + 1]).replace(" ", "") == (
        "[stdout]" + lines[start][9:17] + "SEEN" + repr(payload).replace(" ", "")
    )


def _on_a_terminal(grid, args: list[str], columns: int) -> str:
    """What ``grid ARGS`` prints on a pseudo-terminal ``columns`` wide."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in grid.env.items() if k != "COLUMNS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridrun", *args],
        stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's last writer closed it
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")
