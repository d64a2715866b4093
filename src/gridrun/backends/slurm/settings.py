"""The Slurm backend's settings: the cluster's config file and what every job asks for.

``GRID_HOME/config.yaml``::

    slurm:
      conf: /etc/slurm/slurm.conf   # else SLURM_CONF, else Slurm's own default
      partition: gpu                # else the cluster's default partition
      time: "4:00:00"               # --time of every job (Slurm's formats)
      account: mylab                # --account
      extra: ["--qos=normal"]       # more sbatch arguments, as given
      repo_cache: /shared/repos     # where nodes keep the repositories they fetch
                                    # (default: node-local, under the node's tmp)

``--slurm_partition`` and ``--slurm_time`` on ``grid run`` win over the file. Options
are resolved once, at submission, and kept in the run's spec.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridrun.config import check_keys
from gridrun.errors import ConfigError, UsageError

KEYS = {"conf", "partition", "time", "account", "extra", "repo_cache"}
# Slurm's --time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or
# UNLIMITED/INFINITE.
_TIME = re.compile(r"(\d+-)?\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE", re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class SlurmSettings:
    conf: str | None = None
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    extra: tuple[str, ...] = field(default_factory=tuple)
    repo_cache: str | None = None  # None: each node's own (task.py)

    def client_env(self) -> dict[str, str]:
        """The environment for Slurm's client commands: this cluster's SLURM_CONF."""
        env = dict(os.environ)
        if self.conf:
            env["SLURM_CONF"] = self.conf
        return env


def parse_section(raw: Any, where: str = "GRID_HOME/config.yaml") -> SlurmSettings:
    """The ``slurm:`` section of the machine config, checked key by key."""
    if raw is None:
        return SlurmSettings()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'slurm' in {where} must be a mapping.")
    check_keys(raw, KEYS, f"{where} slurm")
    extra = raw.get("extra") or []
    if isinstance(extra, str) or not all(isinstance(x, str) for x in extra):
        raise ConfigError(f"'slurm.extra' in {where} must be a list of sbatch arguments.")
    conf = raw.get("conf")
    return SlurmSettings(
        conf=str(Path(str(conf)).expanduser()) if conf else None,
        partition=check_partition(str(raw["partition"]), f"slurm.partition in {where}")
        if raw.get("partition")
        else None,
        time=check_time(str(raw["time"]), f"slurm.time in {where}") if raw.get("time") else None,
        account=str(raw["account"]) if raw.get("account") else None,
        extra=tuple(extra),
        repo_cache=str(Path(str(raw["repo_cache"])).expanduser())
        if raw.get("repo_cache")
        else None,
    )


def check_time(value: str, source: str) -> str:
    value = value.strip()
    if _TIME.fullmatch(value):
        return value
    raise UsageError(
        f"Slurm time limit '{value}' (from {source}) is not in a format Slurm takes.",
        hint="Use minutes, HH:MM:SS or D-HH:MM:SS, e.g. 4:00:00.",
    )


def check_partition(value: str, source: str) -> str:
    value = value.strip()
    if _NAME.fullmatch(value):
        return value
    raise UsageError(f"Slurm partition '{value}' (from {source}) is not a partition name.")


def load_settings(config_path: Path) -> SlurmSettings:
    from gridrun.config import load_machine_config

    return parse_section(load_machine_config(config_path).backend_sections.get("slurm"))


def resolve(options: Mapping[str, str], settings: SlurmSettings) -> SlurmSettings:
    """The settings with the run's own options (``--slurm_partition``, ...) applied."""
    import dataclasses

    partition = options.get("slurm_partition") or settings.partition
    time = options.get("slurm_time") or settings.time
    conf = options.get("slurm_conf") or settings.conf or os.environ.get("SLURM_CONF")
    return dataclasses.replace(
        settings,
        conf=conf or None,
        partition=check_partition(partition, "--slurm_partition") if partition else None,
        time=check_time(time, "--slurm_time") if time else None,
    )
