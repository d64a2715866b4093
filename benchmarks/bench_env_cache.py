"""What keeping runs away from uv's cache costs: build time and disk, per link mode.

An environment built by uv hard-links its files from uv's cache; a run that could
write the cache could change every environment linked to it (issue 21). Two fixes,
measured here on the same requirements:

* ``private``: a uv cache of gridrun's own under ``GRID_HOME/cache/uv`` (hidden from
  experiments with the rest of ``GRID_HOME``), hard links as before. Its first build
  downloads what the user's cache already had; later builds are as fast as today.
* ``copy``: the user's cache, ``UV_LINK_MODE=copy``: every build copies every file.

``python benchmarks/bench_env_cache.py [REQUIREMENT ...]`` (default ``numpy``) prints
wall time and the disk each new environment takes beyond what the cache holds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from uv import find_uv_bin


def own_bytes(root: Path) -> int:
    """Bytes of the files under ``root`` that are not hard links to something else."""
    total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_nlink == 1:
                total += st.st_blocks * 512
    return total


def build(uv: str, dest: Path, reqs: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([uv, "venv", "-q", "--seed", "--python", sys.executable, str(dest)],
                   env=env, check=True)  # fmt: skip
    subprocess.run([uv, "pip", "install", "-q", "--python", str(dest / "bin" / "python"), *reqs],
                   env=env, check=True)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    reqs = sys.argv[1:] or ["numpy"]
    uv = find_uv_bin()
    base = dict(os.environ, UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"requirements: {' '.join(reqs)}")
        print(f"{'mode':<28}{'wall s':>8}{'own disk MB':>13}")
        user = dict(base)
        build(uv, work / "warmup", reqs, user)  # the user's cache holds them
        for label, env in [
            ("shared cache, hardlink", dict(user, UV_LINK_MODE="hardlink")),
            ("shared cache, copy", dict(user, UV_LINK_MODE="copy")),
        ]:
            dest = work / label.replace(" ", "_").replace(",", "")
            secs = build(uv, dest, reqs, env)
            print(f"{label:<28}{secs:>8.2f}{own_bytes(dest) / 1e6:>13.1f}")
        private = dict(base, UV_CACHE_DIR=str(work / "private-cache"), UV_LINK_MODE="hardlink")
        for label in ("private cache, cold", "private cache, warm"):
            dest = work / label.replace(" ", "_").replace(",", "")
            secs = build(uv, dest, reqs, private)
            print(f"{label:<28}{secs:>8.2f}{own_bytes(dest) / 1e6:>13.1f}")
        cache = work / "private-cache"
        files = [f for f in cache.rglob("*") if f.is_file() and not f.is_symlink()]
        print(f"private cache itself: {sum(f.stat().st_size for f in files) / 1e6:.1f} MB")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
