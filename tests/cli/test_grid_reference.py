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
    (["ssh-keys", "list", "--limit", "5"], 0, "sessions use no SSH keys"),
    (["ssh-keys", "authorized_keys"], 0, "sessions use no SSH keys"),
    (["ssh-keys", "add", "laptop", "id.pub"], 2, "Nothing to add"),
    (["ssh-keys", "rm", "k1"], 2, "Nothing to remove"),
    (["clusters", "aws", "lab", "--region", "us-east-1"], 2, "creates no cloud clusters"),
    (["clusters", "logs", "lab", "--tail"], 2, "keeps no cluster logs"),
    (["session", "mount", "dev", "./data"], 2, "nothing to mount"),
    (["session", "ssh", "dev", "--", "-i", "k"], 2, "ssh options (-i ...) mean nothing"),
    (["session", "change-instance-type", "dev", "t2.large"], 2, "grid session delete dev"),
    (["session", "create", "--use_spot"], 2, "which no one reclaims"),
    (["datastore", "resume"], 2, "nothing to resume"),
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


def test_a_session_goes_to_local_or_docker_and_a_cluster_is_deleted_as_grid_did(grid: Any) -> None:
    grid("clusters", "add", "lab", "--backend", "ray", "--address", "127.0.0.1:9")
    refused = grid("session", "create", "--cluster", "lab", check=False)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "Sessions run on local and docker only, and --cluster lab is a ray" in refused.stderr
    assert grid.json("session", "list") == []  # nothing was recorded
    gone = grid("delete", "cluster", "lab", "--wait", "--force")
    assert "Cluster lab removed" in gone.stdout
    assert [c["name"] for c in grid.json("clusters")] == ["local", "docker"]  # type: ignore[union-attr]
    again = grid("delete", "cluster", "lab", check=False)
    assert again.returncode != 0 and "No cluster named 'lab'" in again.stderr


def test_ssh_keys_lists_none_as_json(grid: Any) -> None:
    proc = grid("-o", "json", "ssh-keys", "list")
    assert json.loads(proc.stdout) == [] and "sessions use no SSH keys" in proc.stderr


def test_the_local_cluster_names_its_largest_node(grid: Any) -> None:
    local = grid.json("clusters")[0]  # type: ignore[index]
    assert local["name"] == "local"
    assert re.fullmatch(r".+ \(\d+ CPUs(, \d+ GPUs)?\)", local["largest_node"]), local


def test_global_lists_what_a_plain_listing_lists(grid: Any, tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("print(1)\n")
    grid("run", "--name", "mine", "x.py", cwd=tmp_path)
    grid.wait("mine")
    assert grid.json("history", "--global") == grid.json("history")
    assert grid.json("status", "--global") == grid.json("status")
    assert grid.json("datastore", "--global", "--cluster", "local", "--show-incomplete") == []
    unknown = grid("datastore", "--cluster", "prod-2", check=False)
    assert unknown.returncode != 0 and "No cluster named 'prod-2'" in unknown.stderr


def test_grids_localdir_flag_runs_the_script_it_precedes(grid: Any, tmp_path: Path) -> None:
    (tmp_path / "args.py").write_text("import sys\nprint('args', sys.argv[1:])\n")
    out = grid("run", "-l", "--name", "flagged", "args.py", "--lr", "0.1", cwd=tmp_path)
    assert "-l/--localdir (Grid's flag)" in out.stderr
    grid.wait("flagged")
    assert "args ['--lr', '0.1']" in grid("logs", "flagged-exp0").stdout
    out = grid("run", "--name", "flagged2", "--localdir", "args.py", cwd=tmp_path)
    assert "-l/--localdir (Grid's flag)" in out.stderr
    grid.wait("flagged2")


def test_sync_env_writes_the_dependency_file_grid_names(grid: Any, tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("import yaml\n")
    grid("sync-env", "--dependency_file", "reqs.txt", "-y", cwd=tmp_path)
    assert re.search(r"(?m)^PyYAML==", (tmp_path / "reqs.txt").read_text())
    (tmp_path / "grid.yml").write_text("compute:\n  train:\n    dependency_file: deps/r.txt\n")
    (tmp_path / "deps").mkdir()
    grid("sync-env", "--config", "grid.yml", "-y", cwd=tmp_path)
    assert re.search(r"(?m)^PyYAML==", (tmp_path / "deps" / "r.txt").read_text())
    assert not (tmp_path / "requirements.txt").exists()
    refused = grid("sync-env", "--dependency_file", "environment.yml", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "is not one: give a .txt path" in refused.stderr


def test_a_plain_datastore_resume_finishes_the_one_interrupted(grid: Any, tmp_path: Path) -> None:
    from gridrun.datastores import create_datastore, list_datastores
    from gridrun.home import GridHome

    class Interrupted:
        def phase(self, *args: object) -> None:
            pass

        def advance(self, nbytes: int = 0, nfiles: int = 0) -> None:
            raise KeyboardInterrupt

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("a,1\n")
    home = GridHome(grid.home).ensure()
    with pytest.raises(KeyboardInterrupt):
        create_datastore(home, src, name="half", progress=Interrupted())  # type: ignore[arg-type]
    assert [v.status for v in list_datastores(home)] == ["failed"]
    out = grid("datastore", "resume")
    assert "Datastore half version 1 completed" in out.stdout
    assert [v.status for v in list_datastores(home)] == ["succeeded"]
