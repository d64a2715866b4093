"""Which PyTorch build an environment gets: the CPU one, or the CUDA one the driver runs.

PyPI's ``torch`` for Linux is the CUDA build: with its ``nvidia-*`` wheels and
``triton`` it installs to about 5 GB (3.8 GB to download). An experiment that asked for
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

import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from gridrun.specs import TorchBuild

FAMILY = ("torch", "torchvision", "torchaudio")
DEFAULT_INDEX = "https://download.pytorch.org/whl"
INDEX_VARIABLE = "GRID_TORCH_INDEX_URL"
# The CUDA builds PyTorch publishes (newest first): a driver runs any build up to its
# own CUDA version.
CUDA_BUILDS = ((13, 0), (12, 9), (12, 8), (12, 6), (12, 4), (12, 1), (11, 8))
# What PyPI's default (CUDA) build of torch downloads on Linux x86_64, with its
# nvidia-* wheels, cuda-toolkit and triton (torch 2.9, measured on an empty uv cache).
DEFAULT_BUILD_DOWNLOAD = "3.8 GB"
PROBE_SECONDS = 5.0


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


def fallback_warning(build: TorchBuild, why: str) -> str:
    """The one line a build that cannot reach the chosen index logs and keeps."""
    what = build.describe().split(" (")[0].removeprefix("torch: ")
    return (
        f"Warning: torch: the {what}'s index {build.index_url} cannot be reached ({why}); "
        f"installing PyPI's default build, about {DEFAULT_BUILD_DOWNLOAD} to download"
    )
