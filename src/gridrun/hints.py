"""One line on why a training run died, read from the end of its log.

``exited with code 1`` says nothing a researcher can act on. The common deaths leave
a recognisable last traceback: a dataset download with no network (``Name or service
not known``), CUDA out of memory, a data file that is not in the snapshot, the kernel's
SIGKILL at the memory limit (exit 137), a module the environment still lacks. Each
gets one line naming what was tried (the host, the file, the module) and what to do,
shown at the end of ``--follow``, in ``grid status RUN`` and on the dashboard.

A pure function of the log's last lines and the exit code (:func:`diagnose`), so it is
tested without processes; :func:`experiment_hint` reads the log.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

TAIL_BYTES = 64 * 1024  # the end of a log holds its last traceback
# ``[stderr] [2026-12-05T01:11:14.863884+00:00] text``, as the supervisor writes it.
_PREFIX = re.compile(r"^\[(?:stdout|stderr|build)\] \[[^\]]*\] ?")
_NO_NETWORK = re.compile(
    r"Name or service not known|Temporary failure in name resolution|"
    r"nodename nor servname|No address associated with hostname|Network is unreachable|"
    r"Failed to resolve|getaddrinfo failed|Failed to establish a new connection|"
    r"Connection refused|Could not resolve host|Connection timed out"
)
# Wrappers of the causes above; named only where the line gives no cause.
_NO_NETWORK_WRAPPER = re.compile(
    r"Max retries exceeded|LocalEntryNotFoundError|OfflineModeIsEnabled|ConnectTimeout|"
    r"urlopen error"
)
_HOST = (
    re.compile(r"host='([^']+)'"),  # urllib3: HTTPSConnectionPool(host='huggingface.co', ...)
    re.compile(r"Failed to resolve '([^']+)'"),
    re.compile(r"[a-z][a-z0-9+.-]*://([^/\s:'\"]+)", re.I),  # any URL the script printed
)
_CUDA_OOM = re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory")
_NO_MODULE = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")
_NO_FILE = re.compile(
    r"(?:FileNotFoundError|IsADirectoryError|NotADirectoryError|OSError|IOError|RuntimeError)"
    r"[^\n]*?(?:No such file or directory|not found|does not exist)[^\n]*?'([^']+)'"
)
_NO_FILE_BARE = re.compile(r"(?:FileNotFoundError|No such file or directory)[^\n]*?'([^']+)'")
SIGKILL_CODES = (137, -9)


def diagnose(lines: Sequence[str], exit_code: int | None, memory: int | None = None) -> str | None:
    """The one-line hint for an experiment that ended with ``exit_code``; None: no idea.

    ``lines``: the end of its log; ``memory``: the limit it ran under, in bytes.
    """
    text = [_PREFIX.sub("", line) for line in lines]
    if exit_code in SIGKILL_CODES and not _CUDA_OOM.search("\n".join(text[-20:])):
        if memory:
            return (
                f"killed (exit 137, SIGKILL), most likely at its memory limit of {_gib(memory)}: "
                "ask for more with --memory, or use less (a smaller batch size)"
            )
        return (
            "killed (exit 137, SIGKILL), most likely by the kernel for want of memory: "
            "use less memory, or pass --memory to give it a limit of its own"
        )
    # The last error wins: a traceback near the end is the one that ended the run.
    for line in reversed(text[-200:]):
        if _CUDA_OOM.search(line):
            return (
                "CUDA out of memory: use a smaller batch size or model, or ask for more "
                "GPUs with --gpus"
            )
        module = _NO_MODULE.search(line)
        if module:
            return _missing_module(module.group(1))
        offline = _NO_NETWORK.search(line) or _NO_NETWORK_WRAPPER.search(line)
        if offline:
            host = _host(text, line) or "the internet"
            return (
                f"no network: the script could not reach {host} to download "
                f"({offline.group(0)}); put the data in the project or a datastore, or "
                "run where it can reach the internet"
            )
        missing = _NO_FILE.search(line) or _NO_FILE_BARE.search(line)
        if missing:
            return (
                f"a file or folder is missing: {missing.group(1)}; paths are relative to "
                "the project's root, where the script runs: put it in the project (it is "
                "snapshotted) or mount it with --datastore_name"
            )
    return None


def _missing_module(module: str) -> str:
    from gridrun.deps import requirement_for_import

    top = module.split(".")[0]
    try:
        dist = requirement_for_import(top)
    except Exception:  # the index may be absent or unreadable: the hint still helps
        dist = None
    what = f"add {dist} to" if dist else "add the distribution that provides it to"
    return f"module {top} is still missing: {what} requirements.txt in the project"


def _host(text: Sequence[str], failing: str) -> str | None:
    """The host the script tried: named in the failing line, else in a line before it."""
    index = len(text) - 1 - list(reversed(text)).index(failing)
    for line in [failing, *reversed(text[max(0, index - 200) : index])]:
        for pattern in _HOST:
            found = pattern.search(line)
            if found:
                return found.group(1)
    return None


def _gib(n: int) -> str:
    """As the user likely wrote it: ``1G`` is 10**9 bytes, ``2Gi`` 2**31."""
    for unit, size in (("GiB", 2**30), ("GB", 10**9), ("MiB", 2**20), ("MB", 10**6)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n / 2**30:.3g} GiB"


def tail_lines(path: Path) -> list[str]:
    """The last lines of a log (its last 64 KiB), or none if it cannot be read."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if size > TAIL_BYTES else lines  # the first may be cut


def experiment_hint(exp_dir: Path, exit_code: int | None, memory: int | None) -> str | None:
    """The hint for a failed experiment, from ``exp_dir/output.log``."""
    from gridrun.home import ExperimentPaths

    return diagnose(tail_lines(ExperimentPaths(exp_dir).output_log), exit_code, memory)
