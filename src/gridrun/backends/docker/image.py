"""Docker images for the docker backend: naming, caching, building, last use.

An image is named ``<project>-<cpu|gpu>:<snapshot hash>-<dependency hash>`` (12 hex
digits each). The tag is computed before anything is built, so a run whose code and
dependencies are unchanged finds its image and builds nothing. The Dockerfile
(:mod:`gridrun.backends.docker.dockerfile`) puts the dependency layers before the project, so a
code-only change reuses them from the engine's layer cache and only re-copies the code.

Inferred requirements are best effort, as on the local backend: they are resolved on
this machine first and the image installs the pins that resolved, dropping any that
cannot be installed in it (:mod:`gridrun.backends.docker.besteffort`). Declared ones
are installed strictly by ``pip install -r``.

Builds use the low-level API (``APIClient.build(decode=True)``) to stream every line of
output to the run's build log as it comes.

Last use is recorded in ``GRID_HOME/images/last-used.json`` (tag -> epoch seconds),
written on every build or reuse and every experiment start, under a file lock: image
labels are immutable, and the engine's ``LastTagTime`` only moves when an image is
tagged, so neither can say when an image was last used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridrun.backends.base import BuildLog, BuildRequest
from gridrun.backends.docker import dockerfile as df
from gridrun.backends.docker.besteffort import (
    INSTALLER,
    InstallWatcher,
    Requirements,
    dropped_in_image,
    load_record,
    resolve_inferred,
    save_record,
    uvoutput_source,
)
from gridrun.envs.pipconf import PipConfig, load_pip_config
from gridrun.errors import BuildError, ProjectError
from gridrun.fsutil import atomic_write_json, file_lock
from gridrun.specs import TorchBuild

LABEL = "gridrun"
SHORT = 12
BUILD_READ_TIMEOUT = 3600  # seconds one build step may stay silent
# Bump when how inferred requirements are resolved for an image changes: it is part of
# the dependency hash of every best-effort image.
RESOLVE_SCHEME = "1"


# ------------------------------------------------------------------ last use
def images_dir(home_root: Path) -> Path:
    from gridrun.home import GridHome

    return GridHome(Path(home_root)).images


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with file_lock(path):
        yield


def read_last_used(home_root: Path) -> dict[str, float]:
    try:
        data = json.loads((images_dir(home_root) / "last-used.json").read_text())
        return {str(k): float(v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError):
        return {}


def record_use(home_root: Path, tag: str, when: float | None = None) -> None:
    """Remember that ``tag`` was just used (best effort: a read-only home is not fatal)."""
    folder = images_dir(home_root)
    try:
        with _locked(folder / ".lock"):
            data = read_last_used(home_root)
            data[tag] = when if when is not None else time.time()
            atomic_write_json(folder / "last-used.json", data, indent=1, sort_keys=True)
    except OSError:
        pass


def forget_use(home_root: Path, tags: list[str]) -> None:
    folder = images_dir(home_root)
    with contextlib.suppress(OSError), _locked(folder / ".lock"):
        data = read_last_used(home_root)
        for tag in tags:
            data.pop(tag, None)
        atomic_write_json(folder / "last-used.json", data, indent=1, sort_keys=True)


# -------------------------------------------------------------------- naming
def sanitize_repo(name: str) -> str:
    """A Docker repository name component: lowercase alphanumerics and single ``-``."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return (cleaned or "project")[:100]


def _sha(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass
class ContainerPip:
    """The pip configuration as a build container sees it.

    ``files`` maps a name under ``gridrun/pip/`` of the build context to its bytes:
    the CA bundle, a client certificate, constraint files. Host-only sources
    (``file://`` indexes, local ``find-links``) cannot be seen inside a build, so they
    are dropped, each with a note for the build log.
    """

    conf_text: str
    files: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # The configuration on this machine, where inferred requirements are resolved.
    host_fingerprint: str = ""
    # The PyTorch build the image gets (TorchBuild.key(): its variant and index, an
    # extra index here), "pypi" where its index did not answer, "" where none is chosen.
    torch: str = ""

    @property
    def has_cert(self) -> bool:
        return "ca.crt" in self.files

    def fingerprint(self) -> str:
        parts = [self.conf_text]
        if self.torch:  # existing tags stay as they were
            parts += ["torch", self.torch]
        for name, data in sorted(self.files.items()):
            parts += [name, hashlib.sha256(data).hexdigest()]
        return _sha(*parts)


def container_pip(pip: PipConfig, torch: TorchBuild | None = None) -> ContainerPip:
    """Translate the user's pip configuration for a build container.

    ``torch``: the PyTorch build whose index the image installs torch from (see
    :func:`torch_source`); it joins as an extra index.
    """
    from dataclasses import replace

    eff = pip.effective()
    notes: list[str] = []
    index = eff.index_url
    if index and not _remote(index):
        notes.append(f"pip: index-url {index} is on this machine; the build uses PyPI.")
        index = None
    extras = []
    trusted = list(eff.trusted_hosts)
    if torch is not None and torch.index_url:
        extras.append(torch.index_url)
        host = urllib.parse.urlparse(torch.index_url).hostname or ""
        if torch.index_url.startswith("http://") and host and host not in trusted:
            trusted.append(host)  # plain HTTP, as a company mirror may be
    for url in eff.extra_index_urls:
        if _remote(url):
            extras.append(url)
        else:
            notes.append(f"pip: dropped extra-index-url {url} (a build cannot see host paths).")
    for link in eff.find_links:
        if _remote(link):
            continue
        notes.append(f"pip: dropped find-links {link} (a build cannot see host paths).")
    if eff.no_index and not (index or extras or any(_remote(f) for f in eff.find_links)):
        notes.append("pip: no-index is set and no remote source is left; installs will fail.")
    wanted = {"ca.crt": eff.cert, "client.pem": eff.client_cert}
    wanted |= {f"constraint-{i}.txt": c for i, c in enumerate(eff.constraints)}
    files: dict[str, bytes] = {}
    path_map: dict[str, str] = {}
    for name, source in wanted.items():
        if not source or _remote(source):
            continue
        local = source[len("file://") :] if source.startswith("file://") else source
        try:
            files[name] = Path(local).read_bytes()
        except OSError as exc:
            raise BuildError(
                f"The pip configuration names {source}, which cannot be read "
                f"({exc.strerror or exc})."
            ) from exc
        path_map[source] = f"{df.STAGE_TMP}/pip/{name}"
    seen = replace(
        eff,
        index_url=index,
        extra_index_urls=tuple(extras),
        find_links=tuple(f for f in eff.find_links if _remote(f)),
        trusted_hosts=tuple(trusted),
    )
    torch_key = "" if torch is None else torch.key() if torch.index_url else "pypi"
    return ContainerPip(
        seen.pip_conf_text(path_map), files, notes, pip.fingerprint(), torch=torch_key
    )


def torch_source(req: BuildRequest, pip: PipConfig) -> tuple[TorchBuild | None, str]:
    """(the build the image takes from PyTorch's index, or None; the line to log).

    The image's pip gets the build's index as an extra index. Inferred requirements are
    resolved here first with it (:mod:`gridrun.envs.torchbuild`'s explicit index), so
    the image installs exact pins such as ``torch==2.9.1+cpu``, which only that index
    has. Declared ones are installed by the image's pip from both indexes: at equal
    versions the build's local version (``+cpu``) is the newer, as with PyTorch's own
    ``pip install --extra-index-url`` instructions. An index this machine cannot reach,
    or one on this machine (a build container cannot see host paths), leaves PyPI's
    default build, with one warning.
    """
    from gridrun.envs.torchbuild import default_build_download, fallback_warning, reachable

    build = req.torch_build
    if build is None or not req.python_env or req.dockerfile or req.conda_file:
        return None, ""
    if not build.index_url:
        return build, build.describe()
    if not _remote(build.index_url):
        why = "it is on this machine, which an image build cannot see"
    else:
        why = reachable(build.index_url) or ""
    if why:
        fallback = TorchBuild("", "", build.reason)
        return fallback, fallback_warning(build, why, default_build_download(req.python, pip))
    return build, f"{build.describe()}, from {build.index_url}"


def _remote(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def best_effort_build(req: BuildRequest) -> bool:
    """Inferred requirements installed by gridrun's own Dockerfile (no user's, no conda)."""
    return bool(
        req.best_effort
        and req.requirements
        and req.python_env
        and not req.dockerfile
        and not req.conda_file
    )


def dependency_hash(req: BuildRequest, pip: ContainerPip) -> str:
    """Everything the dependency layers depend on, besides files of the snapshot.

    The contents of ``apt.txt``, ``environment.yml`` and a user Dockerfile are covered
    by the snapshot hash, which is the other half of the tag.

    Inferred requirements come out of a resolution on this machine, so their hash adds
    what that depends on, as the local environment's key does: this machine's pip
    configuration (with what its find-links folders hold) and the names version
    repair checks. What the index held at the first build is then fixed for the tag,
    as it is for a local environment: a second run with the same inputs reuses the
    image; the pins it holds are recorded (``GRID_HOME/images/builds``) and logged.
    """
    parts: tuple[str, ...] = () if req.python_env else ("julia",)  # tags stay as they were
    if req.julia_project:
        parts += (f"julia-project:{req.julia_project}",)
    extra: tuple[str, ...] = ()
    if best_effort_build(req):
        extra = ("best-effort", RESOLVE_SCHEME, pip.host_fingerprint, "\n".join(sorted(req.checks)))
    return _sha(
        df.GENERATOR_VERSION,
        *parts,
        req.python,
        req.base_image or "",
        "gpu" if req.gpu else "cpu",
        "\n".join(req.apt_packages),
        "\n".join(req.requirements),
        req.conda_file or "",
        req.dockerfile or "",
        pip.fingerprint(),
        *extra,
    )


def image_tag(req: BuildRequest, pip: ContainerPip) -> str:
    repo = f"{sanitize_repo(req.project_name)}-{'gpu' if req.gpu else 'cpu'}"
    snap = re.sub(r"[^a-z0-9]", "", req.snapshot_hash.lower())[:SHORT] or "nosnapshot"
    return f"{repo}:{snap}-{dependency_hash(req, pip)[:SHORT]}"


# ------------------------------------------------------------------- context
@dataclass
class BuildPlan:
    tag: str
    context: Path  # a folder: Dockerfile, gridrun/, project/
    dockerfile: str  # path of the Dockerfile inside the context
    dockerfile_text: str
    base_image: str | None  # None when the user's Dockerfile chooses
    notes: list[str]


def _snapshot_file(req: BuildRequest, rel: str) -> str | None:
    from gridrun.project.manifest import load_manifest, object_path

    entry = load_manifest(req.snapshot_manifest).get(rel)
    if entry is None or entry.sha256 is None:
        return None
    return object_path(req.objects_dir, entry.sha256).read_text(encoding="utf-8")


def dockerfile_spec(
    req: BuildRequest, pip: ContainerPip, wanted: Requirements | None = None
) -> DockerfileSpecResult:
    """The generated Dockerfile's inputs, read from the request and the snapshot."""
    if wanted is None:
        wanted = Requirements(list(req.requirements))
    if req.base_image:
        base, install_python = req.base_image, False
    elif not req.python_env:  # a Julia script (submission names the image; older specs)
        from gridrun.gridflags import JULIA_IMAGE

        base, install_python = JULIA_IMAGE, False
    else:
        base, install_python = df.default_base_image(req.python, req.gpu)
    apt = list(req.apt_packages)
    apt_txt = _snapshot_file(req, "apt.txt")
    if apt_txt is not None:
        apt += df.parse_apt_txt(apt_txt)
    conda_text = None
    if req.conda_file:
        conda_text = _snapshot_file(req, req.conda_file)
        if conda_text is None:
            raise ProjectError(f"The conda file {req.conda_file} is not in the project.")
    spec = df.DockerfileSpec(
        base_image=base,
        python=req.python,
        apt_packages=df.validate_apt_packages(apt),
        has_requirements=bool(wanted.lines),
        conda=conda_text is not None,
        conda_adds_python=conda_text is not None and not df.conda_names_python(conda_text),
        has_cert=pip.has_cert,
        install_python=install_python,
        deps_hash=dependency_hash(req, pip)[:SHORT],
        python_env=req.python_env,
        julia_project=req.julia_project or "",
        best_effort=wanted.best_effort,
        closed=wanted.closed,
    )
    return DockerfileSpecResult(spec, conda_text)


@dataclass
class DockerfileSpecResult:
    spec: df.DockerfileSpec
    conda_text: str | None


def prepare_context(
    req: BuildRequest, pip: ContainerPip, dest: Path, wanted: Requirements | None = None
) -> BuildPlan:
    """Lay out a build context in ``dest``: the snapshot, requirements, pip config.

    ``wanted``: what to install (default: the request's requirements, strictly).
    """
    if wanted is None:
        wanted = Requirements(list(req.requirements))
    from gridrun.project import materialize

    tag = image_tag(req, pip)
    if req.dockerfile:
        text = _snapshot_file(req, req.dockerfile)
        if text is None:
            raise ProjectError(f"The Dockerfile {req.dockerfile} is not in the project.")
        df.check_user_dockerfile(text, req.dockerfile)
        materialize(req.snapshot_manifest, req.objects_dir, dest)
        return BuildPlan(tag, dest, req.dockerfile, text, None, pip.notes)
    result = dockerfile_spec(req, pip, wanted)
    text = df.render(result.spec, build_labels(req, tag))
    materialize(req.snapshot_manifest, req.objects_dir, dest / df.CTX_PROJECT)
    (dest / df.CTX_PIP_DIR).mkdir(parents=True)
    (dest / df.CTX_PIP_CONF).write_text(pip.conf_text)
    for name, data in pip.files.items():
        (dest / df.CTX_PIP_DIR / name).write_bytes(data)
    if wanted.lines:
        (dest / df.CTX_REQUIREMENTS).write_text("\n".join(wanted.lines) + "\n")
    if wanted.best_effort:
        (dest / df.CTX_INSTALLER).write_text(INSTALLER)
        (dest / df.CTX_UVOUTPUT).write_text(uvoutput_source())
    if result.conda_text is not None:
        (dest / df.CTX_CONDA).write_text(result.conda_text)
    (dest / df.CTX_DOCKERFILE).write_text(text)
    return BuildPlan(tag, dest, df.CTX_DOCKERFILE, text, result.spec.base_image, pip.notes)


def _tar_context(folder: Path, out: Path) -> None:
    """A context tarball with fixed owners, so that COPY gives root-owned files."""

    def reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(out, "w") as tar:
        for entry in sorted(folder.iterdir()):
            tar.add(entry, arcname=entry.name, filter=reset)


# --------------------------------------------------------------------- build
_PIP_MISSING = (
    re.compile(r"No matching distribution found for ([^\s;]+)"),
    re.compile(r"Could not find a version that satisfies the requirement ([^\s;(]+)"),
)
_APT_MISSING = re.compile(r"E: Unable to locate package (\S+)")


def explain_failure(error: str, recent: list[str]) -> str:
    """One line naming what broke: the package pip or apt could not find, if any."""
    for line in reversed(recent):
        if line.startswith("gridrun: "):  # a check of the generated Dockerfile (NO_JULIA)
            return line[len("gridrun: ") :]
        for pattern in _PIP_MISSING:
            match = pattern.search(line)
            if match:
                return f"no matching distribution found for '{match.group(1)}' (pip)"
        match = _APT_MISSING.search(line)
        if match:
            return f"system package '{match.group(1)}' not found (apt)"
    pip_errors = [ln for ln in recent if ln.startswith("ERROR:")]
    if pip_errors:
        return f"{error.strip()}: {pip_errors[-1][len('ERROR:') :].strip()}"
    return error.strip()


def find_image(api: Any, tag: str) -> dict | None:
    import docker.errors

    try:
        return api.inspect_image(tag)
    except docker.errors.ImageNotFound:
        return None


def ensure_base_image(api: Any, image: str, log: BuildLog) -> None:
    """Pull the base image when the engine lacks it; name it when that fails.

    Checked before the build so the error says which image is missing rather than
    passing on the engine's registry error.
    """
    import docker.errors

    if find_image(api, image) is not None:
        return
    log(f"Pulling base image {image}")
    repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    try:
        api.pull(repo or image, tag=tag or None)
    except docker.errors.APIError as exc:
        reason = str(exc.explanation or exc).splitlines()[0]
        raise BuildError(
            f"Base image {image} is not in the Docker engine and could not be pulled ({reason}).",
            hint="Pull or load it (docker pull / docker load), or pass --base_image with one "
            "that `docker images` lists.",
        ) from exc


def build_image(
    api: Any, req: BuildRequest, log: BuildLog, home_root: Path, pip: PipConfig | None = None
) -> str:
    """Build (or reuse) the run's image; return its tag. Raises BuildError on failure."""
    host_pip = pip if pip is not None else load_pip_config()
    torch, torch_line = torch_source(req, host_pip)
    cpip = container_pip(host_pip, torch)
    tag = image_tag(req, cpip)
    if torch_line:
        log(torch_line)
    images = images_dir(home_root)
    lock = images / "locks" / (re.sub(r"[^a-z0-9.-]", "_", tag) + ".lock")
    with _locked(lock):  # two runs of the same code build once
        if find_image(api, tag) is not None:
            log(f"Reusing cached image {tag}")
            record = load_record(images, tag)
            for warning in record["warnings"] if record else []:
                if warning != torch_line:  # logged above already
                    log(warning)  # what its build dropped or pinned holds for every run of it
            record_use(home_root, tag)
            return tag
        wanted = Requirements(list(req.requirements))
        if best_effort_build(req):
            wanted = resolve_inferred(req, host_pip, home_root, log, torch)
        watcher = InstallWatcher(log, wanted.closed) if wanted.best_effort else None
        with tempfile.TemporaryDirectory(prefix="gridrun-build-") as tmp:
            context = Path(tmp) / "context"
            context.mkdir()
            plan = prepare_context(req, cpip, context, wanted)
            for note in plan.notes:
                log(note)
            tarball = Path(tmp) / "context.tar"
            _tar_context(context, tarball)
            log(f"Building image {tag} (base {plan.base_image or 'from ' + plan.dockerfile})")
            if plan.base_image:
                ensure_base_image(api, plan.base_image, log)
            _stream_build(api, plan, tarball, req, log, watcher)
        fell_back = [torch_line] if torch_line.startswith("Warning:") else []
        if watcher is not None:
            dropped = dropped_in_image(images, dependency_hash(req, cpip), wanted, watcher, log)
            save_record(images, tag, [*fell_back, *wanted.warnings, *dropped], wanted.lines)
        elif fell_back:
            save_record(images, tag, fell_back, wanted.lines)
    record_use(home_root, tag)
    return tag


def build_labels(req: BuildRequest, tag: str) -> dict[str, str]:
    return {
        LABEL: "1",
        "gridrun.project": req.project_name,
        "gridrun.snapshot": req.snapshot_hash,
        "gridrun.python": req.python,
        "gridrun.gpu": "1" if req.gpu else "0",
        "gridrun.deps": tag.rsplit("-", 1)[-1],
        "gridrun.built_by": req.run_name,
    }


def _stream_build(
    api: Any,
    plan: BuildPlan,
    tarball: Path,
    req: BuildRequest,
    log: BuildLog,
    watcher: InstallWatcher | None = None,
) -> None:
    import docker.errors
    import requests.exceptions

    recent: list[str] = []
    try:
        with open(tarball, "rb") as fh:
            stream = api.build(
                fileobj=fh,
                custom_context=True,
                tag=plan.tag,
                dockerfile=plan.dockerfile,
                rm=True,
                forcerm=True,
                decode=True,
                pull=False,
                labels=build_labels(req, plan.tag) if req.dockerfile else None,
                timeout=BUILD_READ_TIMEOUT,
            )
            for chunk in stream:
                if "error" in chunk:
                    reason = explain_failure(str(chunk["error"]), recent)
                    log(str(chunk["error"]).strip())
                    for _rest in stream:  # drain, so the connection goes back to the pool
                        pass
                    raise BuildError(
                        f"Image build failed: {reason}.",
                        hint="See the [build] lines of `grid logs` for the full output.",
                    )
                for line in _chunk_lines(chunk):
                    log(line)
                    if watcher is not None:
                        watcher.feed(line)
                    recent = [*recent[-79:], line]
    except docker.errors.APIError as exc:
        raise BuildError(
            f"Image build failed: {exc.explanation or exc}.",
            hint=_base_hint(plan, str(exc.explanation or exc)),
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise BuildError(f"Image build failed: lost the Docker engine ({exc}).") from exc


def _base_hint(plan: BuildPlan, message: str) -> str | None:
    if plan.base_image and ("pull access denied" in message or "not found" in message):
        return (
            f"The base image {plan.base_image} is neither in the engine nor pullable: "
            "pull it, or pass --base_image with one that `docker images` lists."
        )
    return None


def _chunk_lines(chunk: dict) -> list[str]:
    """Printable lines of one build message; pull progress bars are left out."""
    if "stream" in chunk:
        return [ln.rstrip() for ln in str(chunk["stream"]).splitlines() if ln.strip()]
    if "status" in chunk and "progress" not in chunk and "progressDetail" not in chunk:
        ident = f"{chunk['id']}: " if chunk.get("id") else ""
        return [f"{ident}{chunk['status']}"]
    if "status" in chunk and not chunk.get("progressDetail"):
        ident = f"{chunk['id']}: " if chunk.get("id") else ""
        return [f"{ident}{chunk['status']}"]
    return []
