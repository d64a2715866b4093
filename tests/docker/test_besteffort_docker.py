"""Inferred requirements on Docker are best effort, as on local: through the real CLI.

Everything installs from wheels made here, served over HTTP on the engine's bridge
gateway (a build container cannot see host folders), with ``no-index``: each build is a
real uv resolution on this machine and a real pip install in the image, whose outcome
depends only on these wheels.
"""

from __future__ import annotations

import ipaddress
import sys
import threading
import uuid
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "envs"))
from envhelpers import make_wheel

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BASE = "gridrun-test-base:bookworm"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def wheels(api: Any, tmp_path: Path, grid) -> Iterator[tuple[Path, Path]]:
    """(served folder, folder only this machine sees); ``grid`` is pointed at both."""
    served = tmp_path / "served"
    served.mkdir()
    host_only = tmp_path / "host-only"
    host_only.mkdir()
    config = api.inspect_network("bridge")["IPAM"]["Config"][0]
    # An engine (20.10) that has not started a container yet names no Gateway: the
    # bridge takes the subnet's first address.
    gateway = config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))
    server = ThreadingHTTPServer((gateway, 0), partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://{gateway}:{server.server_address[1]}/"
    grid.env.update(PIP_FIND_LINKS=f"{host_only} {url}", PIP_NO_INDEX="1", PIP_TRUSTED_HOST=gateway)
    try:
        yield served, host_only
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def docker_run(grid, project: Path, *args: str, check: bool = True):
    return grid(
        "run", "--backend", "docker", "--base_image", BASE, *args, cwd=project, check=check,
        timeout=600,
    )  # fmt: skip


def flat(text: str) -> str:
    return " ".join(text.split()).replace("-", "_").lower()


def test_inferred_imports_are_dropped_repaired_recorded_and_cached(
    grid, wheels: tuple[Path, Path], tmp_path: Path
) -> None:
    served, host_only = wheels
    make_wheel(served, "gridrundk_old", "1.0", body="def legacy():\n    return 'from 1.0'\n")
    make_wheel(served, "gridrundk_old", "2.0")  # dropped legacy
    make_wheel(host_only, "gridrundk_hostonly", "1.0")
    project = tmp_path / "gist"
    project.mkdir()
    (project / "app.py").write_text(
        f"# {uuid.uuid4().hex}\n"
        "from gridrundk_old import legacy\n"
        "def inside_another_program():\n    import gridrundk_absent_xyz\n"
        "def on_my_laptop_only():\n    import gridrundk_hostonly\n"
        "print('legacy', legacy(), flush=True)\n"
    )
    out = docker_run(grid, project, "--name", "dkbe", "--follow", "app.py")
    assert "legacy from 1.0" in grid("logs", "dkbe-exp0").stdout

    data = grid.json("status", "dkbe")
    assert data["experiments"][0]["status"] == "succeeded"
    warnings = [flat(w) for w in data["build_warnings"]]
    # Not on the index: dropped on this machine, the build went on.
    assert any("dropped gridrundk_absent_xyz" in w and "not found" in w for w in warnings)
    # Version repair stepped back to the release that still has the name.
    assert any("version repair pinned gridrundk_old==1.0" in w for w in warnings), warnings
    # Installs here, not in the image: dropped by the image's installer, with pip's reason.
    assert any(
        "dropped gridrundk_hostonly from the image" in w and "not found" in w for w in warnings
    ), warnings
    status = flat(grid("status", "dkbe").stdout)
    assert "dropped gridrundk_absent_xyz" in status and "pinned gridrundk_old==1.0" in status
    build = flat(grid("logs", "dkbe-exp0", "--show-build-logs").stdout)
    assert "resolving 3 inferred requirements on this machine" in build
    assert "gridrundk_old==1.0" in build and "successfully tagged" in build
    assert "pinned gridrundk_old==1.0" in flat(out.stdout + out.stderr)  # --follow shows it

    # The same inputs again: the image is reused, nothing is resolved or built, and the
    # run records what that image's build dropped and pinned.
    docker_run(grid, project, "--name", "dkbe-again", "--follow", "app.py")
    again = grid("logs", "dkbe-again", "--show-build-logs").stdout
    assert "Reusing cached image" in again and "Step " not in again
    assert "Resolving" not in again
    assert grid.json("status", "dkbe-again")["env_ref"] == data["env_ref"]
    assert [flat(w) for w in grid.json("status", "dkbe-again")["build_warnings"]] == warnings

    # A code-only change: a new image whose dependency layer the engine replays from its
    # cache silently; what that layer's install dropped is still recorded.
    (project / "app.py").write_text((project / "app.py").read_text() + "print('v2')\n")
    docker_run(grid, project, "--name", "dkbe-code", "--follow", "app.py")
    code = grid("logs", "dkbe-code", "--show-build-logs").stdout
    assert "Using cache" in code and "Reusing cached environment" in code
    code_warnings = [flat(w) for w in grid.json("status", "dkbe-code")["build_warnings"]]
    assert sorted(code_warnings) == sorted(warnings)
    assert "v2" in grid("logs", "dkbe-code-exp0").stdout


def test_declared_line_that_cannot_be_installed_fails_naming_it(
    grid, wheels: tuple[Path, Path], tmp_path: Path
) -> None:
    served, _host_only = wheels
    make_wheel(served, "gridrundk_fine", "1.0")
    project = tmp_path / "strict"
    project.mkdir()
    (project / "requirements.txt").write_text("gridrundk_fine\ngridrundk-declared-missing==1.0\n")
    (project / "train.py").write_text(f"# {uuid.uuid4().hex}\nprint('never')\n")
    proc = docker_run(grid, project, "--name", "dkstrict", "--follow", "train.py", check=False)
    assert proc.returncode != 0
    data = grid.json("status", "dkstrict")
    assert data["status"] == "failed"
    assert "gridrundk-declared-missing==1.0" in data["error"], data["error"]
    assert not data.get("build_warnings")  # declared: nothing is dropped
