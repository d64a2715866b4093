"""Helpers of the dashboard tests: a real ``grid ui`` process, waiting, ingestion."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

TRAIN = """\
import argparse, math, sys, time
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--sleep", type=float, default=0.0)
a = p.parse_args()
for s in range(a.steps):
    loss = math.exp(-a.lr * s)
    print(f"step: {s} loss: {loss:.5f} acc: {1 - loss / 2:.5f}", flush=True)
    if s % 5 == 0:
        print(f"checkpoint {s}", file=sys.stderr, flush=True)
    time.sleep(a.sleep)
print("training done", flush=True)
open("model.txt", "w").write(f"lr={a.lr}")
"""


def chromium_path() -> str | None:
    return os.environ.get("GRID_CHROMIUM") or shutil.which("chromium")


@dataclass
class Dashboard:
    """A running ``grid ui`` and how to talk to it: ``url`` is its root, without the
    token; ``get`` sends the token as scripts do unless told not to."""

    url: str
    token: str
    proc: subprocess.Popen[str]

    def login(self, path: str = "") -> str:
        """The address a browser opens first: the token is traded there for a cookie."""
        sep = "&" if "?" in path else "?"
        return f"{self.url}{path}{sep}token={self.token}"

    def get(
        self, path: str, headers: dict[str, str] | None = None, *, auth: bool = True
    ) -> tuple[int, str]:
        sent = {"Authorization": f"token {self.token}"} if auth else {}
        sent.update(headers or {})
        req = urllib.request.Request(self.url.rstrip("/") + path, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode()

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)


def start_dashboard(grid: Any, *args: str) -> Dashboard:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridrun", "ui", "--port", "0", *args],
        env=grid.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+/)\?token=(\S+)", line)
    if not match:
        proc.kill()
        raise AssertionError(f"grid ui printed {line!r}: {proc.stdout.read()}")
    return Dashboard(match.group(1), match.group(2), proc)


def stop_dashboard(d: Dashboard) -> None:
    d.proc.terminate()
    try:
        d.proc.wait(10)
    except subprocess.TimeoutExpired:
        d.proc.kill()
        d.proc.wait()
    if d.proc.stdout is not None:
        d.proc.stdout.close()
