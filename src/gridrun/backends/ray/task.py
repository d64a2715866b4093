"""The message from the agent to a Ray node for one attempt: typed, versioned, built by
one pure function.

Like Ray's own ``JobSubmitRequest``, what crosses the wire is a dataclass with
``to_dict``/``from_dict`` and a version, never a hand-built dict: :func:`task_request`
makes it from the run's build description (``ray.json``, written from the
``BuildRequest``) and the :class:`~gridrun.specs.Job`, and the node reads it back with
:meth:`TaskSpec.from_dict` (:mod:`.node`). So every field of the environment reaches
the node, the best-effort flags of inferred requirements included, which a node then
builds as leniently as the local and Docker backends do.

A run from a repository carries its origin (:class:`~gridrun.project.refetch.RepoOrigin`:
URL, commit, a checkout's diff and untracked files; never a credential) and its
snapshot digest, so that a node that reaches the repository fetches the commit itself;
``must_fetch`` says the package holds no committed file (``ray.nodes_fetch: always``),
so a node that cannot fetch has nothing to fall back on.

Imports only the standard library, :mod:`gridrun.specs` and
:mod:`gridrun.project.refetch`: nodes load it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gridrun.project.refetch import RepoOrigin
from gridrun.specs import Job

TASK_VERSION = 3  # 2: origin and snapshot_digest; 3: must_fetch


@dataclass(frozen=True)
class TaskDatastore:
    """A datastore mounted read-only for the attempt (as ``DatastoreMount``)."""

    name: str
    version: int
    source: str
    mount_dir: str


@dataclass(frozen=True)
class TaskSpec:
    """Everything a node needs to build the environment and run one attempt."""

    env_key: str
    python: str
    requirements: tuple[str, ...]
    home_label: str  # tells apart the working copies of two GRID_HOMEs on one node
    experiment: str
    attempt: str
    script: str
    args: tuple[str, ...]
    env: dict[str, str]
    gpus: int = 0
    python_env: bool = True  # False: a Julia script, no virtualenv
    best_effort: bool = False  # inferred requirements: drop what cannot be installed
    checks: tuple[str, ...] = ()  # names version repair makes resolve (best effort)
    oldest_python: str = ""  # how far a best-effort build may step down
    torch_build: dict[str, Any] | None = None  # TorchBuild.to_dict()
    cuda: str | None = None  # the head's capacity.cuda, for a node without nvidia-smi
    pip: Any = None  # the submitting user's PipConfig (added by the agent)
    datastores: tuple[TaskDatastore, ...] = ()
    origin: RepoOrigin | None = None  # the node may fetch the tree from there
    snapshot_digest: str = ""  # ...and must then get exactly this snapshot hash
    must_fetch: bool = False  # the package lacks the committed files: no fallback
    version: int = TASK_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pip"] = self.pip  # kept as is: a PipConfig travels pickled, as before
        d["origin"] = self.origin.to_dict() if self.origin else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskSpec:
        if int(d.get("version", 0)) != TASK_VERSION:
            raise ValueError(
                f"a Ray task message of version {d.get('version')}, this node reads "
                f"{TASK_VERSION}: run the same gridrun on the nodes as on the agent"
            )
        return cls(
            env_key=str(d["env_key"]),
            python=str(d["python"]),
            requirements=tuple(d["requirements"]),
            home_label=str(d["home_label"]),
            experiment=str(d["experiment"]),
            attempt=str(d["attempt"]),
            script=str(d["script"]),
            args=tuple(d["args"]),
            env=dict(d["env"]),
            gpus=int(d.get("gpus") or 0),
            python_env=bool(d.get("python_env", True)),
            best_effort=bool(d.get("best_effort", False)),
            checks=tuple(d.get("checks") or ()),
            oldest_python=str(d.get("oldest_python") or ""),
            torch_build=d.get("torch_build"),
            cuda=d.get("cuda"),
            pip=d.get("pip"),
            datastores=tuple(TaskDatastore(**x) for x in d.get("datastores") or ()),
            origin=RepoOrigin.from_dict(d["origin"]) if d.get("origin") else None,
            snapshot_digest=str(d.get("snapshot_digest") or ""),
            must_fetch=bool(d.get("must_fetch", False)),
        )


@dataclass(frozen=True)
class TaskOptions:
    """What Ray reserves for the task (``.options(...)`` of the remote function)."""

    num_cpus: float
    num_gpus: int = 0
    memory: int | None = None
    resources: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            out["num_gpus"] = self.num_gpus
        if self.memory:
            out["memory"] = self.memory
        if self.resources:
            out["resources"] = dict(self.resources)
        return out


def task_request(
    home_root: Path, job: Job, info: dict[str, Any], coordinator: str, attempt: str
) -> tuple[TaskSpec, TaskOptions]:
    """The task message and Ray options for one attempt of ``job``.

    ``info`` is the run's ``ray.json`` (the build's description). As for Docker, only
    ``--env``/``--env_file`` values and the short allow-list travel from the submitting
    shell to a node (:mod:`gridrun.runenv`); gridrun's own variables win. GPU
    visibility is Ray's business on the node (it sets CUDA_VISIBLE_DEVICES).
    """
    from gridrun.envs.pipconf import load_pip_config
    from gridrun.runenv import container_environment

    env = {
        **container_environment(home_root, job.run_name),
        **{k: v for k, v in job.env.items() if k != "CUDA_VISIBLE_DEVICES"},
    }
    best_effort = bool(info.get("best_effort", False))
    spec = TaskSpec(
        env_key=str(info["env_key"]),
        python=str(info["python"]),
        requirements=tuple(info["requirements"]),
        home_label=coordinator.split("-")[1],
        experiment=job.experiment_name,
        attempt=attempt,
        script=job.script,
        args=tuple(job.args),
        env=env,
        gpus=job.gpus,
        python_env=bool(info.get("python_env", True)),
        best_effort=best_effort,
        checks=tuple(info.get("checks") or ()) if best_effort else (),
        oldest_python=str(info.get("oldest_python") or "") if best_effort else "",
        torch_build=info.get("torch_build"),
        cuda=info.get("cuda"),
        pip=load_pip_config(),
        datastores=tuple(
            TaskDatastore(d.name, int(d.version), str(d.source), d.mount_dir)
            for d in job.datastores
        ),
        origin=RepoOrigin.from_dict(info["origin"]) if info.get("origin") else None,
        snapshot_digest=str(info.get("snapshot_hash") or ""),
        must_fetch=bool(info.get("must_fetch", False)),
    )
    options = TaskOptions(
        num_cpus=job.cpus,
        num_gpus=job.gpus,
        memory=job.memory,
        resources=dict(info.get("resources") or {}),
    )
    return spec, options
