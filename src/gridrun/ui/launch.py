"""``/runs/new``: start a run from the browser through the same pipeline as ``grid run``.

The form becomes a :class:`~gridrun.submission.RunRequest`, exactly as ``grid run``'s
options do, and goes through :func:`~gridrun.submission.prepare` and
:func:`~gridrun.submission.record`. A first POST prepares without recording and
shows the warnings ``grid run`` would print (inferred dependencies, default CPUs, a
large sweep); the user confirms, and a second POST submits.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridrun.errors import GridError, UsageError
from gridrun.home import GridHome

FIELDS = (
    "localdir",
    "repo",
    "ref",
    "script",
    "args",
    "backend",
    "cpus",
    "gpus",
    "memory",
    "strategy",
    "num_trials",
    "datastore",
    "datastore_mount_dir",
    "name",
)


@dataclass
class Preview:
    """What the confirmation step shows."""

    warnings: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    experiments: int = 0
    summary: dict[str, str] = field(default_factory=dict)


def split_args(text: str) -> list[str]:
    """The arguments as a shell would split them (``--lr "[0.1, 0.01]"``)."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"Cannot split the arguments: {exc}.", hint="Check the quotes.") from None


def _number(value: str, kind: type, label: str) -> Any:
    if not value.strip():
        return None
    try:
        return kind(value)
    except ValueError:
        raise UsageError(f"{label} must be a number, not '{value}'.") from None


def request_from_form(form: dict[str, str], home: GridHome) -> Any:
    """The RunRequest ``grid run`` would build from the same choices."""
    from gridrun.config import load_machine_config
    from gridrun.project.repository import github_file_link
    from gridrun.submission import RunRequest

    localdir = form.get("localdir", "").strip()
    repo = form.get("repo", "").strip() or None
    script = form.get("script", "").strip()
    if not script:
        raise UsageError("Give the script to run, relative to the project folder.")
    from_repo = bool(repo or github_file_link(script))
    if not localdir and not from_repo:
        raise UsageError(
            "Give the project folder (a path on the machine serving the dashboard) "
            "or a git repository."
        )
    root = Path(localdir).expanduser()
    # Relative to the project folder, never to wherever `grid ui` was started; a
    # repository's script is relative to the repository's root.
    if not from_repo and not Path(script).is_absolute():
        script = str(root / script)
    datastores = []
    ds = form.get("datastore", "").strip()
    if ds:
        name, _, version = ds.partition(":")
        datastores.append(
            (
                name,
                _number(version, int, "The datastore version") if version else None,
                form.get("datastore_mount_dir", "").strip() or None,
            )
        )
    backend = form.get("backend") or load_machine_config(home.config_path).default_backend
    return RunRequest(
        script=script,
        script_args=split_args(form.get("args", "")),
        localdir=None if from_repo else str(root),
        repo=repo,
        ref=form.get("ref", "").strip() or None,
        name=form.get("name", "").strip() or None,
        backend=backend,
        cpus=_number(form.get("cpus", ""), float, "CPUs"),
        gpus=_number(form.get("gpus", ""), int, "GPUs"),
        memory=form.get("memory", "").strip() or None,
        strategy=form.get("strategy") or None,
        num_trials=_number(form.get("num_trials", ""), int, "Trials"),
        datastores=datastores,
    )


def preview(form: dict[str, str], home: GridHome) -> Preview:
    """Prepare the submission, record nothing, collect what ``grid run`` would warn."""
    from gridrun.cli.run import _command_line
    from gridrun.submission import prepare

    out = Preview()

    def confirm(question: str) -> bool:
        out.warnings.append(question)
        return True

    req = request_from_form(form, home.ensure())
    sub = prepare(req, home, out.warnings.append, confirm)
    spec = sub.spec
    out.experiments = len(sub.experiments)
    out.commands = [_command_line(spec.script, e.argv) for e in sub.experiments[:50]]
    out.summary = {
        "script": spec.script,
        "backend": req.backend,
        "cpus": f"{spec.cpus:g}",
        "gpus": str(spec.gpus),
        "experiments": str(len(sub.experiments)),
        "snapshot": f"{len(sub.snapshot_files)} files",
        **({"repository": f"{spec.repo}@{spec.commit}"} if spec.repo else {}),
        "dependencies": f"{len(spec.env.requirements)} from {sub.dependency_source}",
        "environment hash": sub.env_key,
    }
    return out


def submit(form: dict[str, str], home: GridHome) -> str:
    """Prepare and record the run, confirmed by the user; returns its name."""
    from gridrun.submission import prepare, record

    req = request_from_form(form, home.ensure())
    sub = prepare(req, home, lambda _w: None, lambda _q: True)
    return str(record(sub, req, home).name)


def count(args: str, strategy: str, num_trials: str) -> dict[str, Any]:
    """The live experiment count under the arguments box."""
    from gridrun.sweep import count_experiments

    try:
        n = count_experiments(
            split_args(args), strategy or "grid_search", _number(num_trials, int, "Trials")
        )
    except GridError as exc:
        return {"count": None, "error": str(exc)}
    return {"count": n, "error": None}
