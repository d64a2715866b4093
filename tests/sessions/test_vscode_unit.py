"""What jupyter-server-proxy is told to start for VS Code: pure functions of paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridrun.errors import BuildError
from gridrun.sessions import vscode

pytestmark = pytest.mark.unit


def test_code_server_is_reached_only_through_jupyterlab(tmp_path: Path) -> None:
    tool, data, work = tmp_path / "tool", tmp_path / "jupyter" / "vscode", tmp_path / "my work"
    server = vscode.proxy_config(tool, data, work)["ServerProxy"]["servers"]["vscode"]  # type: ignore[index]
    command = server["command"]
    assert command[:2] == [str(vscode.node_binary(tool)), str(vscode.entry_script(tool))]
    # No port of its own: a socket jupyter-server-proxy makes in a private folder, and
    # no password, since JupyterLab checks its token before proxying.
    assert server["unix_socket"] is True and "--socket={unix_socket}" in command
    assert "--auth=none" in command and not any(a.startswith("--bind-addr") for a in command)
    # Its settings and extensions stay in the session, never in the user's home.
    assert f"--user-data-dir={data / 'data'}" in command
    assert f"--extensions-dir={data / 'extensions'}" in command
    assert f"--config={data / 'config.yaml'}" in command
    assert command[-1] == str(work)  # one argument, spaces and all
    assert "--disable-telemetry" in command and "--disable-update-check" in command


def test_the_config_lands_in_the_sessions_own_jupyter_folder(tmp_path: Path) -> None:
    config = tmp_path / "jupyter" / "config"
    vscode.write_proxy_config(config, tmp_path / "tool", tmp_path / "vs", tmp_path / "work")
    written = json.loads((config / "jupyter_server_config.json").read_text())
    assert written == json.loads(
        json.dumps(vscode.proxy_config(tmp_path / "tool", tmp_path / "vs", tmp_path / "work"))
    )
    assert (tmp_path / "vs").is_dir()


def test_without_npm_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm here
    with pytest.raises(BuildError) as err:
        vscode.code_server_tool(tmp_path, lambda _line: None)
    assert "npm is not on PATH" in err.value.message
    assert "apt-get install npm" in str(err.value.hint)
