"""Checks shared by tests that drive the ``grid`` CLI, whatever stage they test."""

from __future__ import annotations

import subprocess


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Bad input's contract: non-zero, no traceback, one ``Error`` line naming the problem."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error")]
    assert len(errors) == 1, proc.stderr
    text = " ".join(proc.stderr.split())
    for n in needles:
        assert n in text, proc.stderr
