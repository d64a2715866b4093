"""Each run's own environment variables: the submitting shell's, never the agent's.

Why this exists: the agent is started by whichever ``grid run`` found none running, so
``dict(os.environ)`` in a supervisor gave every experiment the environment of *that*
shell -- one shell's ``SECRET_A`` leaked into another shell's run, and the submitter's
own variables were dropped. Now ``grid run`` records the environment it was called
with (less gridrun's own credentials, ``GIT_TOKEN`` and ``GRID_UI_TOKEN``), plus
``--env KEY=VALUE`` and ``--env_file FILE``, in
``GRID_HOME/runs/<run>/environment.json`` (0600). The values live only there: never in
``grid.db``, the logs, ``job.json`` or ``-o json``.

What an experiment gets, by backend:

* local: the recorded environment, then gridrun's own variables (``GRID_*``,
  ``CUDA_VISIBLE_DEVICES``, thread caps unless the shell set them) and the virtualenv
  on ``PATH``;
* Docker, Ray (and any remote backend): only the ``--env``/``--env_file`` values plus
  a short allow-list from the shell -- a laptop's ``PATH`` or ``HOME`` mean nothing in a
  container or on another node, and its credentials must not travel unasked.

``-o json`` shows the *names* (:func:`names`) so a user can check what a run got.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from gridrun.errors import UsageError

FORMAT = 1
# What a container or a remote node gets from the shell without being asked.
ALLOW_LIST = frozenset(
    {
        "PYTHONUNBUFFERED",
        "LANG",
        "LANGUAGE",
        "TZ",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
    }
)
ALLOW_PREFIXES = ("LC_",)
# gridrun's own credentials: used by the submitting command (GIT_TOKEN fetches a
# private repository), never recorded with the run nor handed to its experiments. An
# experiment that needs one gets it with --env, said outright.
NEVER_RECORDED = frozenset({"GIT_TOKEN", "GRID_UI_TOKEN"})
# Numeric libraries' thread counts, capped to the CPUs an experiment asked for unless
# the shell (or --env) chose a value.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _check_name(name: str, where: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"Invalid environment variable name '{name}' in {where}.",
            hint="Use letters, digits and '_', not starting with a digit: --env KEY=VALUE.",
        )
    return name


def parse_env_options(pairs: list[str], env_file: str | None) -> dict[str, str]:
    """``--env_file`` (dotenv syntax) first, then each ``--env KEY=VALUE``: later wins."""
    out: dict[str, str] = {}
    if env_file:
        out.update(read_env_file(Path(env_file)))
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(
                f"--env '{pair}' is not KEY=VALUE.",
                hint="For example: --env WANDB_MODE=offline (repeat --env for more).",
            )
        out[_check_name(name, "--env")] = value
    return out


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` allowed, ``#`` comments, optional quotes)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--env_file {path} cannot be read ({exc.strerror or exc}).") from exc
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        if not sep:
            raise UsageError(f"--env_file {path} line {number} is not KEY=VALUE.")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[_check_name(name.strip(), f"--env_file {path} line {number}")] = value
    return out


def env_path(home_root: Path, run_name: str) -> Path:
    from gridrun.home import GridHome

    return GridHome(Path(home_root)).run(run_name).environment


def save(home_root: Path, run_name: str, shell: dict[str, str], explicit: dict[str, str]) -> Path:
    """Record a run's environment, owner-only, before the run can start."""
    path = env_path(home_root, run_name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shell = {k: v for k, v in shell.items() if k not in NEVER_RECORDED}
    doc = {"format": FORMAT, "shell": shell, "explicit": explicit}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def load(home_root: Path, run_name: str) -> tuple[dict[str, str], dict[str, str]] | None:
    """(shell, explicit) as recorded; None for a run recorded before this existed."""
    try:
        doc = json.loads(env_path(home_root, run_name).read_text(encoding="utf-8"))
        return dict(doc["shell"]), dict(doc["explicit"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def local_environment(home_root: Path, run_name: str) -> dict[str, str]:
    """What a local experiment starts from: the submitting shell plus explicit values.

    A run without a record (submitted by an older gridrun) gets a minimal, neutral
    environment rather than the agent's.
    """
    recorded = load(home_root, run_name)
    if recorded is None:
        keep = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TERM", "TMPDIR")
        return {k: os.environ[k] for k in keep if k in os.environ}
    shell, explicit = recorded
    return {**shell, **explicit}


def container_environment(home_root: Path, run_name: str) -> dict[str, str]:
    """What a container gets: explicit values plus the allow-listed shell variables."""
    recorded = load(home_root, run_name)
    if recorded is None:
        return {}
    shell, explicit = recorded
    allowed = {k: v for k, v in shell.items() if k in ALLOW_LIST or k.startswith(ALLOW_PREFIXES)}
    return {**allowed, **explicit}


def names(home_root: Path, run_name: str, backend: str) -> dict[str, list[str]] | None:
    """Which variables a run's experiments get from its record, by name, never value.

    ``passed``: every name the backend hands on (local: the whole recorded shell;
    others: the allow-list); ``explicit``: those from ``--env``/``--env_file``. None
    for a run recorded before this existed.
    """
    recorded = load(home_root, run_name)
    if recorded is None:
        return None
    _shell, explicit = recorded
    passed = (
        local_environment(home_root, run_name)
        if backend == "local"
        else container_environment(home_root, run_name)
    )
    return {"passed": sorted(passed), "explicit": sorted(explicit)}
