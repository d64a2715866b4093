"""Grid's CLI reference, command by command: each answers as gridrun can."""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

# (arguments, exit code, text the one line must hold)
ONE_LINERS = [
    (["version"], 0, "gridrun 0.1.0"),
    (["docs"], 0, "documentation"),
    (["login"], 0, "needs no login"),
    (["login", "--username", "me", "--key", "k"], 0, "needs no login"),
    (["team", "my-team"], 2, "has no teams"),
    (["credentials", "add", "--provider", "aws"], 2, "no cloud credentials"),
    (["edit", "cluster", "prod-2"], 2, "creates no clusters"),
    (["runn", "train.py"], 2, "Did you mean 'run'?"),
    (["statsu"], 2, "Did you mean 'status'?"),
    (["frobnicate"], 2, "`grid --help` lists them"),
]


@pytest.mark.parametrize(("args", "code", "text"), ONE_LINERS, ids=lambda v: str(v))
def test_grid_commands_answer_in_one_line(grid: Any, args: list[str], code: int, text: str) -> None:
    proc = grid(*args, check=False)
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == code, out
    assert text in out and len(out.splitlines()) == 1 and "Traceback" not in out


def test_grid_user_shows_who_and_where(grid: Any) -> None:
    info = grid.json("user")
    assert isinstance(info, dict)
    assert info["grid_home"] == str(grid.home) and info["default_backend"] == "local"


def test_dash_d_is_dockerfile(grid: Any, tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("print(1)\n")
    proc = grid("run", "--dry_run", "-d", "Nope.Dockerfile", "x.py", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--dockerfile and --base_image need a container" in proc.stderr


def test_grid_view_starts_the_dashboard_and_prints_the_page(grid: Any, tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("print('loss: 1')\n")
    out = grid("run", "--name", "viewed", "x.py", cwd=tmp_path).stdout
    assert "viewed" in out
    grid.wait("viewed")
    try:
        url = grid("view", "viewed", "--no-browser").stdout.strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/runs/viewed\?token=\S+", url), url
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        with opener.open(url, timeout=30) as resp:
            assert resp.status == 200 and "viewed" in resp.read().decode()
        again = grid("view", "viewed-exp0", "--no-browser").stdout.strip()
        assert again.split("/experiments/")[0] == url.split("/runs/")[0]  # the same server
        assert "/experiments/viewed-exp0?token=" in again
        missing = grid("view", "nope", check=False)
        assert missing.returncode != 0 and "No run or experiment named" in missing.stderr
    finally:
        for record in (grid.home / "ui" / "servers").glob("*.json"):
            os.kill(json.loads(record.read_text())["pid"], signal.SIGTERM)


def test_clusters_are_named_listed_and_refused_in_one_line(grid: Any) -> None:
    listed = grid.json("clusters")
    assert isinstance(listed, list)
    assert [c["name"] for c in listed][:2] == ["local", "docker"]
    assert listed[0]["state"] == "up" and listed[0]["cpus"] >= 1
    grid("clusters", "add", "far", "--backend", "ray", "--address", "127.0.0.1:9")
    far = next(c for c in grid.json("clusters") if c["name"] == "far")  # type: ignore[union-attr]
    assert far["state"] == "down: nothing answers at 127.0.0.1:9"
    for args, text in (
        (["clusters", "add", "far", "--backend", "ray", "--address", "x:1"], "exists"),
        (["clusters", "add", "s", "--backend", "slurm", "--address", "x"], "no Slurm config"),
        (["clusters", "add", "k", "--backend", "kubernetes", "--address", "x"], "not built yet"),
        (["clusters", "add", "d", "--backend", "docker", "--address", "x"], "cannot be a named"),
        (["clusters", "add", "r", "--backend", "ray"], "needs --address"),
        (["clusters", "rm", "local"], "built in"),
        (["clusters", "rm", "nope"], "No cluster named 'nope'"),
        (["user", "set-default-cluster", "nope"], "Known: local, docker, far"),
        (["run", "--cluster", "nope", "x.py"], "No cluster named 'nope'"),
        (["instance-types", "--cluster", "nope"], "No cluster named"),
    ):
        proc = grid(*args, check=False)
        assert proc.returncode != 0 and text in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
    grid("user", "set-default-cluster", "far")
    assert grid.json("user")["default_cluster"] == "far"  # type: ignore[index]
    grid("clusters", "rm", "far")
    assert grid.json("user")["default_cluster"] == "-"  # type: ignore[index]
    local = grid.json("instance-types")
    assert isinstance(local, dict) and local["cluster"] == "local"
    assert next(t for t in local["instance_types"] if t["name"] == "t2.nano")["fits"]
