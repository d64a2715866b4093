"""Configuration files: the machine's ``GRID_HOME/config.yaml`` and a run's ``--config``.

Unknown keys are errors that list the valid ones: a typo in a config file should
never silently fall back to a default.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridrun.backends.registry import CONFIG_SECTIONS
from gridrun.errors import ConfigError, UsageError

_UNITS = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}


def parse_memory(value: str | int | None) -> int | None:
    """``"4G"``, ``"512Mi"``, ``"2gb"`` or a byte count -> bytes."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*", str(value).lower())
    if not m:
        raise UsageError(f"Invalid memory '{value}'.", hint="Use a size such as 512M, 4G or 16Gi.")
    return int(float(m.group(1)) * _UNITS[m.group(2) or ""])


def _load_yaml(path: Path, what: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc}.") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{what} {path}{where} is not valid YAML: {problem}.") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must be a YAML mapping, not {type(data).__name__}.")
    return data


def check_keys(data: Mapping[str, Any], valid: set[str] | frozenset[str], where: str) -> None:
    """Every key of a config section is known, or one line lists the valid ones."""
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {', '.join(unknown)} in {where}.",
            hint=f"Valid keys: {', '.join(sorted(valid))}.",
        )


# --------------------------------------------------------------- machine config
@dataclass
class MachineConfig:
    """Overrides of what the agent detects, from ``GRID_HOME/config.yaml``."""

    cpus: float | None = None
    memory: int | None = None
    gpus: list[int] | None = None
    # The CUDA version the GPUs' driver runs ("12.6"), for when nvidia-smi cannot say.
    cuda: str | None = None
    # A mirror of https://download.pytorch.org/whl (GRID_TORCH_INDEX_URL wins).
    torch_index_url: str | None = None
    # SIGTERM-to-SIGKILL grace, like Kubernetes' terminationGracePeriodSeconds.
    stop_grace_seconds: float = 30.0
    agent_idle_seconds: float = 60.0
    default_backend: str = "local"
    metrics: dict[str, Any] | None = None  # patterns for scraping metrics (gridrun.metrics)
    #: A sweep with more experiments is refused before any is built.
    max_experiments: int = 10_000
    include_secrets: list[str] = field(default_factory=list)
    # A backend's own section (``ray:``), checked by that backend, which owns its keys.
    backend_sections: dict[str, Any] = field(default_factory=dict)


BACKEND_SECTIONS = CONFIG_SECTIONS
MACHINE_KEYS = {
    "capacity",
    "stop_grace_seconds",
    "agent_idle_seconds",
    "default_backend",
    "metrics",
    "max_experiments",
    "snapshot",
    "torch_index_url",
    *BACKEND_SECTIONS,
}
SNAPSHOT_KEYS = {"include_secrets"}


def _include_secrets(data: dict[str, Any], path: Path) -> list[str]:
    """``snapshot.include_secrets``: project paths the secret deny-list lets through."""
    section = data.get("snapshot")
    if section is None:
        return []
    if not isinstance(section, dict):
        raise ConfigError(f"'snapshot' in {path} must be a mapping.")
    check_keys(section, SNAPSHOT_KEYS, f"{path} snapshot")
    paths = section.get("include_secrets") or []
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ConfigError(
            f"'snapshot.include_secrets' in {path} must be a list of paths.",
            hint="For example: include_secrets: [.env, keys/deploy.pem]",
        )
    return [p.strip().strip("/") for p in paths if p.strip().strip("/")]


CAPACITY_KEYS = {"cpus", "memory", "gpus", "cuda"}


# The last parse of each config file, by what ``stat`` says of it. A supervisor reads
# the config at every start, and a pure-Python YAML parse was the largest part of its
# CPU (issue 12): the launcher parses it once before forking them, and each one then
# only checks that the file is still the same (a changed file parses again).
_PARSED: dict[str, tuple[tuple[int, int, int, int], MachineConfig]] = {}


def load_machine_config(path: Path) -> MachineConfig:
    try:
        st = path.stat()
    except FileNotFoundError:
        return MachineConfig()
    except OSError:
        st = None
    key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) if st else None
    cached = _PARSED.get(str(path))
    if key is not None and cached is not None and cached[0] == key:
        return copy.deepcopy(cached[1])
    cfg = _parse_machine_config(path)
    if key is not None:
        _PARSED[str(path)] = (key, copy.deepcopy(cfg))
    return cfg


def _parse_machine_config(path: Path) -> MachineConfig:
    data = _load_yaml(path, "Config file")
    check_keys(data, MACHINE_KEYS, str(path))
    cfg = MachineConfig()
    cap = data.get("capacity") or {}
    if not isinstance(cap, dict):
        raise ConfigError(f"'capacity' in {path} must be a mapping.")
    check_keys(cap, CAPACITY_KEYS, f"{path} capacity")
    try:
        if "cpus" in cap:
            cfg.cpus = float(cap["cpus"])
        if "memory" in cap:
            cfg.memory = parse_memory(cap["memory"])
        if "gpus" in cap:
            g = cap["gpus"]
            cfg.gpus = list(range(int(g))) if isinstance(g, int) else [int(x) for x in g]
        if "cuda" in cap:
            cfg.cuda = str(cap["cuda"])
            if not re.fullmatch(r"\d+\.\d+", cfg.cuda):
                raise ValueError(
                    f"capacity.cuda must be a CUDA version such as 12.6, not {cfg.cuda}"
                )
        for key in ("stop_grace_seconds", "agent_idle_seconds"):
            if key in data:
                setattr(cfg, key, float(data[key]))
    except (TypeError, ValueError, UsageError) as exc:
        raise ConfigError(f"Invalid value in {path}: {exc}.") from exc
    if data.get("torch_index_url"):
        cfg.torch_index_url = str(data["torch_index_url"])
    if "default_backend" in data:
        cfg.default_backend = str(data["default_backend"])
    if data.get("metrics") is not None:
        from gridrun.metrics.stdout import load_patterns

        load_patterns([(data["metrics"], str(path))])  # a bad pattern fails here, in one line
        cfg.metrics = data["metrics"]
    if "max_experiments" in data:
        value = data["max_experiments"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"max_experiments in {path} must be a positive integer, got {value!r}."
            )
        cfg.max_experiments = value
    cfg.include_secrets = _include_secrets(data, path)
    cfg.backend_sections = {k: data[k] for k in BACKEND_SECTIONS if k in data}
    return cfg


# -------------------------------------------------------------------- run config
TRAIN_KEYS = {
    "cpus",
    "gpus",
    "memory",
    "instance",
    "instance_type",
    "disk_size",
    "base_image",
    "dockerfile",
    "dependency_file",
    "datastore_name",
    "datastore_version",
    "datastore_mount_dir",
    "datastores",
    "use_spot",
    "framework",
    "actions",
    "environment",
    "backend",
    "python",
    "scratch_size",
    "scratch_mount_path",
}
TOP_KEYS = {"compute", "hyper_params", "name", "description", "metrics", "snapshot"}
COMPUTE_KEYS = {"train", "provider"}

#: Grid's compute.train keys gridrun cannot honour: refused, never dropped.
REFUSED_TRAIN_KEYS = {
    "actions": "gridrun runs no build or training hooks; put the commands in a .sh script "
    "that runs before your training, or in a --dockerfile",
    "environment": "set the variables in a .sh script that starts your training",
    "backend": "pass --backend on the command line",
}


@dataclass
class RunConfig:
    """What a Grid-style ``--config`` YAML asks for (``compute.train`` + ``hyper_params``)."""

    train: dict[str, Any] = field(default_factory=dict)
    hyper_params: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    include_secrets: list[str] = field(default_factory=list)


def load_run_config(path: Path) -> RunConfig:
    data = _load_yaml(path, "Config file")
    check_keys(data, TOP_KEYS, str(path))
    compute = data.get("compute") or {}
    if not isinstance(compute, dict):
        raise ConfigError(f"'compute' in {path} must be a mapping.")
    check_keys(compute, COMPUTE_KEYS, f"{path} compute")
    notes = []
    if compute.get("provider"):
        notes.append(
            "compute.provider: gridrun runs on this machine (or --backend); no cloud "
            "credentials or region are used."
        )
    train = compute.get("train") or {}
    if not isinstance(train, dict):
        raise ConfigError(f"'compute.train' in {path} must be a mapping.")
    check_keys(train, TRAIN_KEYS, f"{path} compute.train")
    for key, why in REFUSED_TRAIN_KEYS.items():
        if train.get(key) not in (None, "", [], {}):
            raise ConfigError(f"compute.train.{key} in {path} is not supported: {why}.")
    if "use_spot" in train and not isinstance(train["use_spot"], bool):
        raise ConfigError(f"compute.train.use_spot in {path} must be true or false.")
    if train.get("instance") and train.get("instance_type"):
        raise ConfigError(f"compute.train has both instance and instance_type in {path}.")
    hp = data.get("hyper_params") or {}
    if not isinstance(hp, dict):
        raise ConfigError(f"'hyper_params' in {path} must be a mapping.")
    if data.get("metrics") is not None:
        from gridrun.metrics.stdout import load_patterns

        load_patterns([(data["metrics"], str(path))])
    desc = data.get("description")
    if desc is not None and not isinstance(desc, str):
        raise ConfigError(f"'description' in {path} must be text.")
    return RunConfig(
        train=train,
        hyper_params=hp,
        name=data.get("name"),
        raw=data,
        notes=notes,
        include_secrets=_include_secrets(data, path),
    )
