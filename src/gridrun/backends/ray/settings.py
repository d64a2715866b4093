"""The Ray backend's settings: where the cluster is and what every experiment asks of it.

The address comes, in this order, from ``--ray_address``, the ``RAY_ADDRESS``
environment variable, and ``ray.address`` in ``GRID_HOME/config.yaml``, in either form
Ray's own tools accept: the head's GCS ``host:port`` (``ray start --head`` prints it)
or the dashboard's ``http://host:8265``. It is resolved once, at submission, and kept
in the run's spec, so the agent talks to the cluster the user named even when it was
started from another shell.

``GRID_HOME/config.yaml``::

    ray:
      address: 10.0.0.1:6379        # or http://10.0.0.1:8265
      resources: {special: 1}       # custom Ray resources every experiment asks for
      shared_paths: [/mnt/shared]   # filesystems every node sees at the same path
      nodes_fetch: auto             # auto | always | never (below)

``nodes_fetch`` (or ``--ray_nodes_fetch``) says how a run whose tree can be rebuilt from
its repository reaches the nodes. ``auto``: its snapshot travels as the Ray job's
``working_dir``, and a node that reaches the repository fetches the commit, else runs
the snapshot. ``always``: the nodes reach the repository, so only what it cannot give
travels (the manifest and a checkout's untracked files; the diff rides in each task's
message), and a node that cannot fetch fails the attempt saying so. ``never``: the
snapshot travels and no node fetches.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gridrun.config import check_keys
from gridrun.errors import ConfigError, UsageError

KEYS = {"address", "resources", "shared_paths", "nodes_fetch"}
NODES_FETCH = ("auto", "always", "never")
_HOST_PORT = re.compile(r"[A-Za-z0-9_.\-\[\]:]+:\d{1,5}")


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None
    resources: Mapping[str, float] = field(default_factory=dict)
    shared_paths: tuple[str, ...] = ()
    nodes_fetch: str = "auto"  # one of NODES_FETCH


def parse_section(raw: Any, where: str = "GRID_HOME/config.yaml") -> RaySettings:
    """The ``ray:`` section of the machine config, checked key by key."""
    if raw is None:
        return RaySettings()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'ray' in {where} must be a mapping.")
    check_keys(raw, KEYS, f"{where} ray")
    resources = raw.get("resources") or {}
    if not isinstance(resources, Mapping) or not all(
        isinstance(v, int | float) and v > 0 for v in resources.values()
    ):
        raise ConfigError(
            f"'ray.resources' in {where} must map resource names to positive numbers."
        )
    shared = raw.get("shared_paths") or []
    if isinstance(shared, str):
        shared = [shared]
    address = raw.get("address")
    nodes_fetch = raw.get("nodes_fetch")
    return RaySettings(
        address=check_address(str(address), f"ray.address in {where}") if address else None,
        resources={str(k): float(v) for k, v in resources.items()},
        shared_paths=tuple(os.path.abspath(str(p)) for p in shared),
        nodes_fetch=(
            check_nodes_fetch(nodes_fetch, f"ray.nodes_fetch in {where}")
            if nodes_fetch is not None
            else "auto"
        ),
    )


def check_nodes_fetch(value: Any, source: str) -> str:
    """One of :data:`NODES_FETCH`, or a one-line error naming where the bad one came from."""
    mode = str(value).strip().lower()
    if mode in NODES_FETCH:
        return mode
    raise ConfigError(
        f"{source} is '{value}'; it must be one of {', '.join(NODES_FETCH)}.",
        hint="auto: ship the snapshot, nodes fetch when they can; always: nodes fetch, "
        "nothing the repository holds is shipped; never: ship it, nodes never fetch.",
    )


def resolve_nodes_fetch(flag: str | None, settings: RaySettings) -> str:
    """``--ray_nodes_fetch``, else ``ray.nodes_fetch`` in the config, else ``auto``."""
    if flag:
        return check_nodes_fetch(flag, "--ray_nodes_fetch")
    return settings.nodes_fetch


def check_address(address: str, source: str) -> str:
    """A usable cluster address, or a one-line error naming where the bad one came from."""
    address = address.strip()
    if address.startswith(("http://", "https://", "ray://")) or _HOST_PORT.fullmatch(address):
        return address.rstrip("/")
    raise UsageError(
        f"Ray address '{address}' (from {source}) is neither host:port nor http://host:port.",
        hint="Use the address `ray start --head` printed, e.g. 10.0.0.1:6379 or "
        "http://10.0.0.1:8265.",
    )


def resolve_address(flag: str | None, settings: RaySettings) -> str:
    """``--ray_address``, else ``RAY_ADDRESS``, else ``ray.address`` in the config."""
    if flag:
        return check_address(flag, "--ray_address")
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env not in ("auto", "local"):
        return check_address(env, "RAY_ADDRESS")
    if settings.address:
        return settings.address
    raise UsageError(
        "No Ray cluster named: pass --ray_address, set RAY_ADDRESS or ray.address in "
        "GRID_HOME/config.yaml.",
        hint="Start one with `ray start --head` and use the address it prints.",
    )


def load_settings(config_path: Any) -> RaySettings:
    """The ``ray:`` section of ``GRID_HOME/config.yaml`` (empty settings without one)."""
    from gridrun.config import load_machine_config

    raw = load_machine_config(config_path).backend_sections.get("ray")
    return parse_section(raw, str(config_path))
