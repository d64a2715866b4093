"""Helpers for the environment tests: pip config locations, local wheels and packages.

Everything installed by these tests comes from files made here (wheels, a package
whose build backend can be made slow or made to fail), so the builds are real uv
builds that need no network, except the ones that check PyPI on purpose.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import gridrun
from gridrun.envs.pipconf import PipConfig
from gridrun.envs.venv import venv_python

BUILDER = Path(__file__).with_name("builder_proc.py")
SRC = Path(gridrun.__file__).resolve().parents[1]

# Variables that would let this machine's pip or uv setup leak into isolated tests.
LEAKY = (
    "HOME",
    "XDG_CONFIG_HOME",
    "XDG_CONFIG_DIRS",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "UV_INDEX_STRATEGY",
)


@dataclass
class PipDirs:
    """Where each kind of pip config file lives for one test."""

    etc: Path  # stands for /etc
    xdg_dirs: Path  # $XDG_CONFIG_DIRS
    home: Path
    xdg_home: Path  # $XDG_CONFIG_HOME
    site: Path  # $VIRTUAL_ENV

    def write(self, kind: str, text: str) -> Path:
        path = {
            "etc": self.etc / "pip.conf",
            "xdg": self.xdg_dirs / "pip" / "pip.conf",
            "legacy": self.home / ".pip" / "pip.conf",
            "user": self.xdg_home / "pip" / "pip.conf",
            "site": self.site / "pip.conf",
        }[kind]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


def make_wheel(
    dest: Path,
    name: str,
    version: str,
    script: str | None = None,
    body: str = "",
    requires: tuple[str, ...] = (),
    package: str | None = None,
    modules: dict[str, str] | None = None,
) -> Path:
    """A minimal pure-Python wheel; ``script`` adds a console script of that name.

    ``body`` goes at the top of the package's ``__init__.py`` (an import it needs);
    ``requires`` are its ``Requires-Dist`` lines; ``package``: the import name, where it
    is not the distribution's; ``modules``: more modules of the package, ``{"sub.py":
    source}`` (a submodule that imports what the package itself does not).
    """
    dist = f"{name}-{version}"
    package = package or name
    needs = "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{package}/__init__.py": (
            f"{body}VERSION = {version!r}\n\ndef main():\n    print('{name}', VERSION)\n"
        ),
        **{f"{package}/{path}": text for path, text in (modules or {}).items()},
        f"{dist}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{needs}"
        ),
        f"{dist}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: gridrun-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    if script:
        files[f"{dist}.dist-info/entry_points.txt"] = (
            f"[console_scripts]\n{script} = {package}:main\n"
        )
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{dist}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel, "w") as zf:
        for arc, text in files.items():
            data = text.encode()
            zf.writestr(arc, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{arc},sha256={digest.decode()},{len(data)}")
        record.append(f"{dist}.dist-info/RECORD,,")
        zf.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


_BACKEND = '''
"""A build backend that waits while a SLOW file exists, or fails on a FAIL file."""
import base64, hashlib, os, time, zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = os.path.basename(HERE)


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    slow = os.path.join(HERE, "SLOW")
    if os.path.exists(os.path.join(HERE, "FAIL")):
        raise RuntimeError("compiler exploded")
    if os.path.exists(slow):
        deadline = time.time() + float(open(slow).read() or 60)
        while os.path.exists(slow) and time.time() < deadline:
            time.sleep(0.05)
    dist = NAME + "-1.0"
    files = {
        NAME + "/__init__.py": "BUILT = True\\n",
        dist + ".dist-info/METADATA": (
            "Metadata-Version: 2.1\\nName: " + NAME + "\\nVersion: 1.0\\n"
        ),
        dist + ".dist-info/WHEEL": (
            "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
        ),
    }
    wheel = dist + "-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as zf:
        for arc, text in files.items():
            zf.writestr(arc, text)
            h = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
            record.append(arc + ",sha256=" + h.decode() + "," + str(len(text.encode())))
        record.append(dist + ".dist-info/RECORD,,")
        zf.writestr(dist + ".dist-info/RECORD", "\\n".join(record) + "\\n")
    return wheel
'''


def make_source_package(parent: Path, name: str) -> Path:
    """A local source package built by an in-tree backend with no build requirements.

    Touch ``<pkg>/SLOW`` (content: seconds) to make its build wait, ``<pkg>/FAIL``
    to make it fail with ``RuntimeError: compiler exploded``.
    """
    pkg = parent / name
    pkg.mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(
        "[build-system]\nrequires = []\nbuild-backend = 'gridtest_backend'\n"
        "backend-path = ['.']\n\n"
        f"[project]\nname = '{name}'\nversion = '1.0'\n"
    )
    (pkg / "gridtest_backend.py").write_text(_BACKEND)
    return pkg


def builder_command(envs_dir: Path, key: str, log_file: Path, *requirements: str) -> list[str]:
    """argv of a separate process that calls build_venv (see builder_proc.py)."""
    return [sys.executable, str(BUILDER), str(envs_dir), key, "3.11", str(log_file), *requirements]


def builder_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


def run_builder(envs_dir: Path, key: str, log_file: Path, *reqs: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        builder_command(envs_dir, key, log_file, *reqs),
        env=builder_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_python(env: Path, code: str) -> str:
    """What ``code`` prints, run with the environment's Python."""
    proc = subprocess.run(
        [str(venv_python(env)), "-c", code], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def simple_index(root: Path, *wheels: Path) -> str:
    """A PEP 503 index of ``wheels`` under ``root`` (``root/<name>/index.html``); its URL."""
    pages: dict[str, list[Path]] = {}
    for wheel in wheels:
        name = wheel.name.split("-")[0].replace("_", "-").lower()
        pages.setdefault(name, []).append(wheel)
    for name, files in pages.items():
        page = root / name
        page.mkdir(parents=True, exist_ok=True)
        links = "".join(f'<a href="{w.resolve().as_uri()}">{w.name}</a>\n' for w in files)
        (page / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    return root.resolve().as_uri()


def offline(wheels: Path) -> PipConfig:
    """A pip configuration that installs only from ``wheels`` (no index)."""
    return PipConfig(find_links=(str(wheels),), no_index=True)
