"""What a docker session asks of the engine, as text: its image's Dockerfile, its
container's request and its ``docker exec`` line, compared with recorded files
(``expected/``). Pure functions: no engine, no process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gridrun.sessions import container, image
from gridrun.sessions.server import Layout
from gridrun.specs import DatastoreMount, Resources
from spec_helpers import run_spec

pytestmark = pytest.mark.unit

EXPECTED = Path(__file__).parent / "expected"
RUN_TAG = "demo-cpu:0123456789ab-ba9876543210"
HOME = Path("/srv/grid home")


def _check(name: str, text: str) -> None:
    """Compare with the recorded file; GRIDRUN_RECORD=1 writes it instead."""
    path = EXPECTED / name
    if os.environ.get("GRIDRUN_RECORD"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; GRIDRUN_RECORD=1 records it"


def test_the_session_image_is_the_runs_image_plus_jupyterlab() -> None:
    labels = {"gridrun.session_image": "1", "gridrun.session_base": RUN_TAG}
    deps = "sha256:" + "d0" * 32  # the run image less its project layer
    _check("Dockerfile.session-cert", image.render(RUN_TAG, True, labels, deps))
    assert "ca.crt" not in image.render(RUN_TAG, False, labels)


def test_the_session_image_tag_follows_the_run_image_and_pip() -> None:
    tag = image.session_tag(RUN_TAG, "pip-a")
    assert tag.startswith("gridrun-session:") and tag == image.session_tag(RUN_TAG, "pip-a")
    assert tag != image.session_tag(RUN_TAG.replace("0123", "4567"), "pip-a")
    assert tag != image.session_tag(RUN_TAG, "pip-b")


def test_the_container_request() -> None:
    data = DatastoreMount("mydata", 2, Path("/srv/grid home/datastores/mydata/2"), "/datastores/x")
    rel = DatastoreMount("rel", 1, Path("/srv/grid home/datastores/rel/1"), "data")
    spec = run_spec(datastores=[data, rel], resources=Resources(cpus=2, memory=2**30))
    layout = Layout(HOME / "sessions" / "nb")
    cs = container.container_spec(HOME, "nb", 7, spec, "gridrun-session:abc", layout)
    _check("container.session.json", json.dumps(cs.to_dict(), indent=1, sort_keys=True) + "\n")
    assert "JUPYTER_TOKEN" not in cs.environment  # added at start, never recorded

    # A non-root user runs it as itself: what it writes in the working copy is its own.
    mine = container.container_spec(HOME, "nb", 7, spec, "i", layout, user="1000:1000")
    assert mine.user == "1000:1000" and "--allow-root" not in mine.command
    assert mine.environment["HOME"] == "/gridai/jupyter/home"
    assert "--allow-root" in cs.command and cs.user is None and "HOME" not in cs.environment


def test_ssh_is_docker_exec_in_the_working_copy() -> None:
    name = container.container_name(HOME, "nb")
    assert container.exec_argv(HOME, "nb", ["python", "-V"], tty=False) == [
        "docker", "exec", "-i", "-w", "/gridai/project", name, "python", "-V",
    ]  # fmt: skip
    as_user = container.exec_argv(HOME, "nb", ["id"], tty=False, user="1000:1000")
    assert as_user[2:5] == ["-i", "-u", "1000:1000"]
    shell = container.exec_argv(HOME, "nb", [], tty=True)
    assert shell[:4] == ["docker", "exec", "-i", "-t"] and shell[-3:-1] == ["/bin/sh", "-c"]
