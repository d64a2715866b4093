"""Which PyTorch build an environment gets: the CPU one, or the CUDA one the driver runs.

PyPI's ``torch`` for Linux is the CUDA build: with its ``nvidia-*`` wheels and
``triton`` it installs to about 5 GB (3.8 GB to download for torch 2.9; a fallback
reads the figure from the index, :func:`default_build_download`). An experiment that asked for
no GPU runs with ``CUDA_VISIBLE_DEVICES=`` and never uses any of it, so it gets the
CPU build (a 183 MB wheel, about 750 MB installed), as Grid built CPU images for CPU
runs. An experiment with ``--gpus N`` gets the CUDA build that fits the machine's
driver (``nvidia-smi``), or the CUDA version ``capacity.cuda`` in ``config.yaml``
declares where no driver answers.

The mechanism is the PyTorch indexes themselves (``<base>/cpu``, ``<base>/cu126``), not
uv's ``--torch-backend``: uv hard-codes download.pytorch.org there, and companies
mirror it (``GRID_TORCH_INDEX_URL``, or ``torch_index_url`` in ``config.yaml``). The
index is made *explicit* for the torch packages alone (uv's ``tool.uv.sources`` in a
generated ``pyproject.toml`` read with ``-r``), so every other package resolves as the
user's pip configuration says, and torch cannot come from PyPI's CUDA build instead.

The choice is made at submission (the summary and ``grid status RUN`` say which and
why), carried on the run's spec, and is part of the environment key: a CPU and a CUDA
environment of the same code are two cached environments.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from gridrun.envs.key import python_minor
from gridrun.envs.pipconf import PipConfig
from gridrun.specs import TorchBuild

FAMILY = ("torch", "torchvision", "torchaudio")
DEFAULT_INDEX = "https://download.pytorch.org/whl"
INDEX_VARIABLE = "GRID_TORCH_INDEX_URL"
# The CUDA builds PyTorch publishes (newest first): a driver runs any build up to its
# own CUDA version.
CUDA_BUILDS = ((13, 0), (12, 9), (12, 8), (12, 6), (12, 4), (12, 1), (11, 8))
PROBE_SECONDS = 5.0
# The variant of a CUDA build that each node chooses by its own driver (Ray).
EACH_NODE = "cuda"
# What the size of PyPI's build is read from: its JSON API, a request per package
# (torch, then the nvidia-*, cuda-* and triton wheels it pins), all within this.
SIZE_SECONDS = 10.0
SIZE_REQUESTS = 40
# Requirements of torch that make its CUDA download (pinned, Linux-only).
_CUDA_PARTS = re.compile(r"(nvidia-|cuda-|triton)", re.IGNORECASE)


def wants_torch(requirements: Iterable[str], imports: Iterable[str]) -> bool:
    """Whether the environment will hold torch: a requirement or an import names it."""
    names = {re.split(r"[\s\[<>=!~;@]", r.strip(), maxsplit=1)[0].lower() for r in requirements}
    tops = {name.split(".")[0] for name in imports}
    return bool(names.intersection(FAMILY) or tops.intersection(FAMILY))


def chosen_by_user(requirements: Iterable[str]) -> bool:
    """Whether the requirements pick a build themselves: a local version
    (``torch==2.1.0+cu121``) or an index or find-links line naming PyTorch's."""
    for line in requirements:
        text = line.strip().lower()
        if text.startswith("-"):
            if "pytorch" in text or "torch" in text.split("/")[-1]:
                return True
            continue
        name = re.split(r"[\s\[<>=!~;@]", text, maxsplit=1)[0]
        if name in FAMILY and re.search(r"\+(cpu|cu\d+|rocm[\d.]+|xpu)\b", text):
            return True
    return False


def index_base(configured: str | None) -> str:
    """The PyTorch index's base URL: the variable, then ``config.yaml``, then PyTorch's."""
    base = os.environ.get(INDEX_VARIABLE) or configured or DEFAULT_INDEX
    return base.rstrip("/")


def choose(gpus: int, base: str, cuda: str | None) -> TorchBuild:
    """The build for an experiment with ``gpus`` GPUs; ``cuda``: the driver's version."""
    if gpus <= 0:
        return TorchBuild("cpu", f"{base}/cpu", "no GPU requested")
    version = _version(cuda)
    if version is None:
        return TorchBuild("", "", f"--gpus {gpus}, and no CUDA driver answered")
    for build in CUDA_BUILDS:
        if build <= version:
            variant = f"cu{build[0]}{build[1]}"
            why = f"--gpus {gpus}, the driver runs CUDA {cuda}"
            return TorchBuild(variant, f"{base}/{variant}", why)
    return TorchBuild("", "", f"--gpus {gpus}, and CUDA {cuda} is older than any build")


def each_node(gpus: int, base: str) -> TorchBuild:
    """For a backend whose experiments run on other machines (Ray): the CUDA build each
    node's driver runs, chosen on the node (``index_url`` is the base there)."""
    return TorchBuild(EACH_NODE, base, f"--gpus {gpus}, the one each node's driver runs")


def driver_cuda(configured: str | None) -> str | None:
    """The CUDA version the NVIDIA driver runs (``nvidia-smi``), else ``capacity.cuda``."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        found = re.search(r"CUDA Version:\s*(\d+\.\d+)", out)
        if found:
            return found.group(1)
    return configured or None


def _version(text: str | None) -> tuple[int, int] | None:
    found = re.fullmatch(r"\s*(\d+)\.(\d+)(?:\.\d+)?\s*", text or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def reachable(index_url: str) -> str | None:
    """None if the index answers for torch; else why not, in a few words."""
    url = f"{index_url.rstrip('/')}/torch/"
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        return None if path.is_dir() else f"{path} does not exist"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_SECONDS) as response:
            response.read(1)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return str(reason) or type(exc).__name__
    return None


def sources_project(build: TorchBuild, wanted: Iterable[str]) -> str:
    """A ``pyproject.toml`` that takes the torch packages from the build's index only.

    Read with ``uv pip install -r``: its dependencies join the requirements (torch is
    always one, so that a torch brought in by another package comes from there too),
    and ``tool.uv.sources`` ties each torch package to the explicit index.
    """
    names = sorted({"torch", *(n for n in wanted if n in FAMILY)})
    deps = ", ".join(f'"{n}"' for n in names)
    sources = "".join(f'{n} = {{ index = "pytorch" }}\n' for n in FAMILY)
    return (
        "# Written by gridrun: the PyTorch build this environment gets.\n"
        f'[project]\nname = "grid-torch-build"\nversion = "0"\ndependencies = [{deps}]\n\n'
        f"[tool.uv.sources]\n{sources}\n"
        f'[[tool.uv.index]]\nname = "pytorch"\nurl = "{build.index_url}"\nexplicit = true\n'
    )


def fallback_warning(build: TorchBuild, why: str, download: str = "several GB") -> str:
    """The one line a build that cannot reach the chosen index logs and keeps."""
    what = build.describe().split(" (")[0].removeprefix("torch: ")
    return (
        f"Warning: torch: the {what}'s index {build.index_url} cannot be reached ({why}); "
        f"installing PyPI's default build, {download} to download"
    )


def default_build_download(python: str, pip: PipConfig | None) -> str:
    """What PyPI's default torch build downloads here: ``about 3.9 GB``, or ``several GB``.

    Read from the index's JSON API (PyPI's, or a mirror's that serves ``/pypi``): the
    newest torch's wheel for this Python and platform, and the wheels of the ``nvidia-*``,
    ``cuda-*`` and ``triton`` releases it pins on Linux, one level down too (cuda-toolkit
    pins the nvidia-* ones in newer torch). Nothing is downloaded but that metadata;
    when any of it cannot be read, the size is not guessed: ``several GB``.
    """
    api = _json_api(pip)
    if api is None:
        return "several GB"
    deadline = time.monotonic() + SIZE_SECONDS
    tag = "cp" + python_minor(python).replace(".", "")
    total = 0
    todo: list[tuple[str, str, str]] = [("torch", "", "")]
    seen: set[str] = set()
    while todo:
        name, version, extras = todo.pop()
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        if len(seen) > SIZE_REQUESTS or time.monotonic() > deadline:
            return "several GB"
        data = _release_json(api, name, version, deadline)
        size = _wheel_size(data, tag) if data else None
        if data is None or size is None:
            return "several GB"
        total += size
        requires = data["info"].get("requires_dist") or []
        todo.extend(_cuda_pins(requires, extras.split(",") if extras else ()))
    return f"about {total / 1e9:.1f} GB"


def _json_api(pip: PipConfig | None) -> str | None:
    """``https://pypi.org/pypi`` for PyPI, a mirror's ``.../pypi`` beside its ``/simple``."""
    index = pip.effective().index_url if pip is not None else None
    if not index:
        return "https://pypi.org/pypi"
    index = index.rstrip("/")
    if index.endswith("/simple"):
        return index[: -len("/simple")] + "/pypi"
    return None


def _release_json(api: str, name: str, version: str, deadline: float) -> dict | None:
    """The release's JSON: ``<name>/<version>/json``, else the project's ``releases``."""
    data = _get_json(f"{api}/{name}/{version}/json", deadline) if version else None
    if data is None:
        data = _get_json(f"{api}/{name}/json", deadline)
        files = (data or {}).get("releases", {}).get(version) if version and data else None
        if version and data and data["info"].get("version") != version:
            if not files:
                return None
            data = {**data, "urls": files}
    return data


def _get_json(url: str, deadline: float) -> dict | None:
    try:
        timeout = max(0.5, min(PROBE_SECONDS, deadline - time.monotonic()))
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("info"), dict) else None


def _wheel_size(data: dict, tag: str) -> int | None:
    """The size of the release's wheel for this Python (or any) on Linux x86_64."""
    machine = platform.machine() or "x86_64"
    sizes: list[tuple[int, int]] = []
    for entry in data.get("urls") or []:
        filename = str(entry.get("filename", ""))
        if not filename.endswith(".whl"):
            continue
        if filename.endswith("-any.whl"):  # a meta package (cuda-toolkit)
            rank = 2
        elif "manylinux" not in filename or machine not in filename:
            continue
        elif f"-{tag}-" in filename:
            rank = 0
        elif "-py3-none-" in filename or "-abi3-" in filename:
            rank = 1
        else:
            continue
        sizes.append((rank, int(entry.get("size") or 0)))
    return min(sizes)[1] if sizes else None


def _cuda_pins(requires: Iterable[str], extras: Iterable[str] = ()) -> list[tuple[str, str, str]]:
    """(name, version or "" for the newest, extras) of the Linux CUDA parts in ``requires``.

    ``extras``: those asked of the package these are the requirements of
    (``cuda-toolkit[cublas,...]`` pins each nvidia-* wheel under an extra).
    """
    out = []
    for line in requires:
        spec, _, marker = line.partition(";")
        found = re.fullmatch(
            r"\s*([A-Za-z0-9._-]+)(\[[^\]]*\])?\s*\(?(?:(==|~=)\s*([^,\s)]+))?.*", spec
        )
        if not found or not _CUDA_PARTS.match(found.group(1)):
            continue
        asked = re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if asked and not set(asked) & set(extras):
            continue
        if re.search(r"Windows|Darwin|aarch64|arm64", marker):
            continue
        version = found.group(4) or ""
        out.append((found.group(1), version, (found.group(2) or "").strip("[]")))
    return out
