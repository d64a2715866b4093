"""``grid images`` and ``grid images prune`` against a real engine (in-process CLI)."""

from __future__ import annotations

import fcntl
import json
import os

import pytest
from click.testing import CliRunner

from gridrun.backends.docker import DockerBackend
from gridrun.backends.docker.image import find_image, read_last_used
from gridrun.cli import cli
from gridrun.store.db import Store
from spec_helpers import experiments, run_spec

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _grid(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.output


def test_list_and_prune_keep_images_of_active_runs(
    api, home, make_project, make_request, build_log
) -> None:
    backend = DockerBackend()
    kept_req = make_request(make_project({"a.py": "print('a')\n"}, name="img-active"))
    gone_req = make_request(make_project({"b.py": "print('b')\n"}, name="img-unused"))
    kept = backend.build(kept_req, build_log())
    gone = backend.build(gone_req, build_log())
    # Hold the agent's lock, so that no agent starts (reading commands revive one) and
    # tries to build the hand-made pending run below, which would end it.
    agent_lock = os.open(home.agent_lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(agent_lock, fcntl.LOCK_EX)
    store = Store(home.db_path)
    try:  # an active (pending) run that uses `kept`
        store.create_run(
            name="active",
            backend="docker",
            spec=run_spec(),
            env_key=kept,
            experiments=experiments([]),
        )
    finally:
        store.close()

    code, out = _grid("-o", "json", "images")
    assert code == 0
    listed = {i["tag"]: i for i in json.loads(out)}
    assert listed[kept]["in_use"] and not listed[gone]["in_use"]
    assert listed[gone]["last_used"] == pytest.approx(read_last_used(home.root)[gone])
    assert listed[gone]["size"] > 0

    code, out = _grid("images")
    assert code == 0 and "┃" in out and gone in out.replace("\n", "")  # heavy-head table

    only = ["--project", gone_req.project_name]
    code, out = _grid("images", "prune", *only, input="n\n")
    assert code != 0 and find_image(api, gone) is not None  # refused: nothing removed

    code, out = _grid("-o", "json", "images", "prune", "--yes", *only)
    assert code == 0
    removed = json.loads(out)["removed"]
    assert removed == [gone]
    code, out = _grid("-o", "json", "images", "prune", "--yes", "--project", kept_req.project_name)
    assert json.loads(out)["removed"] == []  # its run is active
    assert find_image(api, gone) is None and find_image(api, kept) is not None
    assert gone not in read_last_used(home.root)
    os.close(agent_lock)
