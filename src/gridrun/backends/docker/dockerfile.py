"""The Dockerfile gridrun generates for a run, and the checks on one a user brings.

The generated file is layered so that the expensive parts are cached by the engine
and a code change rebuilds only the last layer::

    system   base image + system packages (apt.txt / --apt)
    deps     FROM system: a venv at /opt/venv (or a conda env through micromamba),
             the requirement list installed with the user's pip configuration
    final    FROM system: COPY --from=deps /opt/venv, then COPY the project snapshot

A Julia script (``python_env=False``) has no Python stage: its base (Julia's image)
has no Python to make a venv with, and the script needs none. The system stage checks
that the image has ``julia`` and otherwise fails with one line saying so.

The pip configuration (index URLs, trusted hosts, CA bundle) is COPYed into the
``deps`` stage only, and only ``/opt/venv`` leaves it, so no layer of the final image
contains the certificate or the pip.conf. This works with the classic builder of
Debian's ``docker.io`` (20.10): BuildKit's ``--secret`` would need a BuildKit session,
which the Docker SDK cannot open.

Everything here is pure text, so it is tested without an engine.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from gridrun.errors import BuildError

GENERATOR_VERSION = "1"  # bump when the template changes: it is part of the image tag
PROJECT_DIR = "/gridai/project"
VENV = "/opt/venv"
CUDA_BASE = "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"
CUDA_BASE_PYTHON = "3.10"  # the python3 of Ubuntu 22.04
MICROMAMBA_IMAGE = "mambaorg/micromamba:1.5.10"

# Paths inside the build context (see gridrun.backends.docker.image.prepare_context).
CTX_DOCKERFILE = "gridrun/Dockerfile"
CTX_REQUIREMENTS = "gridrun/requirements.txt"
CTX_INSTALLER = "gridrun/install.py"  # best effort (gridrun.backends.docker.besteffort)
CTX_UVOUTPUT = "gridrun/uvoutput.py"  # gridrun.envs.uvoutput, which the installer uses
CTX_PIP_DIR = "gridrun/pip"
CTX_PIP_CONF = "gridrun/pip/pip.conf"
CTX_CERT = "gridrun/pip/ca.crt"
CTX_CONDA = "gridrun/environment.yml"
CTX_PROJECT = "project"

# Where the deps stage sees them (never in the final image).
STAGE_TMP = "/tmp/gridrun"
STAGE_PIP_CONF = f"{STAGE_TMP}/pip/pip.conf"
STAGE_CERT = f"{STAGE_TMP}/pip/ca.crt"

_APT_NAME = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(:[a-z0-9]+)?([=][A-Za-z0-9.+~:\-]+)?$")


@dataclass(frozen=True)
class DockerfileSpec:
    """What the generated Dockerfile depends on (and nothing else)."""

    base_image: str
    python: str  # "3.11": the run's Python, used when the base has to get one
    apt_packages: tuple[str, ...] = ()
    has_requirements: bool = True
    conda: bool = False  # an environment.yml is in the context
    conda_adds_python: bool = False  # the environment.yml names no python
    has_cert: bool = False
    install_python: bool = False  # the base has no Python (the CUDA default)
    deps_hash: str = ""
    python_env: bool = True  # False: a Julia script, run with the image's julia
    julia_project: str = ""  # a Julia script's Project.toml (in the project) to instantiate
    # Inferred requirements: installed by the best-effort installer, which drops what
    # cannot be installed; ``closed``: they are pins resolved on the host, dependencies
    # included (so pip resolves nothing).
    best_effort: bool = False
    closed: bool = False


def default_base_image(python: str, gpu: bool) -> tuple[str, bool]:
    """(image, install_python): ``python:X.Y-slim``, or a CUDA runtime that needs Python."""
    if gpu:
        return CUDA_BASE, True
    return f"python:{python}-slim", False


def parse_apt_txt(text: str) -> list[str]:
    """Package names from an ``apt.txt`` (one or more a line, ``#`` comments)."""
    out: list[str] = []
    for line in text.splitlines():
        out.extend(line.split("#", 1)[0].split())
    return out


def validate_apt_packages(packages: list[str]) -> tuple[str, ...]:
    """Deduplicated, in order; a name that is not a Debian package name is refused."""
    seen: dict[str, None] = {}
    for pkg in packages:
        if not _APT_NAME.match(pkg):
            raise BuildError(
                f"'{pkg}' is not a valid system package name.",
                hint="apt.txt lists Debian package names, e.g. libgomp1 or ffmpeg=7:5.1*.",
            )
        seen.setdefault(pkg, None)
    return tuple(seen)


def conda_names_python(text: str) -> bool:
    """Whether an environment.yml lists python among its dependencies."""
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise BuildError(f"environment.yml is not valid YAML: {exc}") from exc
    deps = data.get("dependencies") if isinstance(data, dict) else None
    if not isinstance(deps, list):
        raise BuildError("environment.yml has no 'dependencies' list.")
    for dep in deps:
        if isinstance(dep, str) and re.match(r"^(conda-forge::)?python([<>=!~ ]|$)", dep):
            return True
    return False


def _apt_install(packages: list[str]) -> str:
    names = " ".join(shlex.quote(p) for p in packages)
    return (
        "RUN apt-get update \\\n"
        " && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
        f"{names} \\\n"
        " && rm -rf /var/lib/apt/lists/*"
    )


def _python_install(python: str) -> list[str]:
    """Lines that give an Ubuntu 22.04 base the run's Python (deadsnakes when not 3.10)."""
    if python == CUDA_BASE_PYTHON:
        return [_apt_install(["python3", "python3-venv", "python3-pip"])]
    return [
        _apt_install(["software-properties-common", "gpg-agent"]),
        "RUN add-apt-repository -y ppa:deadsnakes/ppa",
        _apt_install([f"python{python}", f"python{python}-venv"]),
    ]


#: The line a build without julia ends with (``explain_failure`` shows it as the reason).
NO_JULIA = (
    "gridrun: this image has no julia on PATH, which a .jl script needs; "
    "pass --framework julia or a --base_image with Julia"
)


def _render_julia(spec: DockerfileSpec, labels: dict[str, str] | None) -> str:
    """One stage: the base (Julia's image), system packages, the project. No Python."""
    lines = [
        "# Generated by gridrun: do not edit. Classic builder, no BuildKit needed.",
        "# A Julia script: base + system packages -> project snapshot; no Python stage.",
        "",
        "# 1. Base image and system packages; the script runs with the image's julia.",
        f"FROM {spec.base_image}",
    ]
    if spec.apt_packages:
        lines.append(_apt_install(list(spec.apt_packages)))
    lines += [
        f"RUN command -v julia >/dev/null || {{ echo {shlex.quote(NO_JULIA)} >&2; exit 1; }}",
    ]
    if spec.julia_project:
        lines += _julia_packages(spec.julia_project)
    lines += [
        "",
        "# 2. The project (the only layer a code change rebuilds).",
        f"WORKDIR {PROJECT_DIR}",
        f"COPY {CTX_PROJECT}/ {PROJECT_DIR}/",
    ]
    if labels:
        pairs = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
        lines.append(f"LABEL {pairs}")
    return "\n".join(lines) + "\n"


#: Where a Julia script's packages are instantiated: the project files' copy, and a
#: depot every user may write (the container may run as the host's uid, not root).
JULIA_PROJECT_DIR = "/opt/julia-project"
JULIA_DEPOT = "/opt/julia-depot"


def _julia_packages(project_file: str) -> list[str]:
    """Project.toml (and its Manifest.toml, when there is one) instantiated in a layer
    of their own, so a code change does not download the packages again."""
    path = PurePosixPath(project_file)
    manifest = path.with_name(path.name.replace("Project", "Manifest"))
    # The manifest as a one-file glob: COPY then takes it when present, and the
    # Project.toml beside it keeps the instruction from matching nothing.
    manifest_glob = f"{CTX_PROJECT}/{str(manifest)[:-1]}[{str(manifest)[-1]}]"
    return [
        "",
        f"# 1b. The Julia packages of {project_file}, instantiated apart from the code.",
        f"ENV JULIA_PROJECT={JULIA_PROJECT_DIR} JULIA_DEPOT_PATH={JULIA_DEPOT}",
        # The JSON form: a project folder's name may hold spaces.
        "COPY "
        + json.dumps([f"{CTX_PROJECT}/{project_file}", manifest_glob, f"{JULIA_PROJECT_DIR}/"]),
        "RUN julia -e 'using Pkg; Pkg.instantiate(); Pkg.precompile()' \\",
        f" && chmod -R a+rwX {JULIA_DEPOT}",
    ]


def render(spec: DockerfileSpec, labels: dict[str, str] | None = None) -> str:
    """The Dockerfile text; deterministic, so the engine's layer cache applies.

    ``labels`` go on the final image in one last LABEL instruction (one build step,
    where the engine's ``labels`` build parameter would add one step per label).
    """
    if not spec.python_env:
        return _render_julia(spec, labels)
    lines = [
        "# Generated by gridrun: do not edit. Classic builder, no BuildKit needed.",
        "# Layers: base + system packages -> Python dependencies -> project snapshot.",
    ]
    if spec.conda:
        lines += [f"FROM {MICROMAMBA_IMAGE} AS micromamba", ""]
    lines += ["# 1. Base image and system packages.", f"FROM {spec.base_image} AS system"]
    if spec.install_python and not spec.conda:  # a conda env brings its own Python
        lines += _python_install(spec.python)
    if spec.apt_packages:
        lines.append(_apt_install(list(spec.apt_packages)))
    lines += [
        "",
        "# 2. Python dependencies. The pip configuration (index, CA bundle) exists only in",
        f"#    this stage; the final image copies nothing but {VENV} from it.",
        "FROM system AS deps",
    ]
    uses_pip_conf = spec.has_requirements or spec.conda
    env = ""
    if uses_pip_conf:
        lines.append(f"COPY {CTX_PIP_DIR}/ {STAGE_TMP}/pip/")
        env = f"PIP_CONFIG_FILE={STAGE_PIP_CONF} "
        if spec.has_cert:
            env += f"SSL_CERT_FILE={STAGE_CERT} REQUESTS_CA_BUNDLE={STAGE_CERT} "
    if spec.conda:
        extra = f' "python={spec.python}" pip' if spec.conda_adds_python else " pip"
        cacert = f" --cacert-path {STAGE_CERT}" if spec.has_cert else ""
        lines += [
            "COPY --from=micromamba /bin/micromamba /usr/local/bin/micromamba",
            f"COPY {CTX_CONDA} {STAGE_TMP}/environment.yml",
            f"RUN {env}micromamba create -y{cacert} -p {VENV} "
            f"-f {STAGE_TMP}/environment.yml{extra} \\\n"
            " && micromamba clean -a -y",
        ]
    elif spec.install_python:
        lines.append(f"RUN python{spec.python} -m venv {VENV}")
    else:
        lines.append(f"RUN python3 -m venv {VENV} || python -m venv {VENV}")
    if spec.has_requirements and spec.best_effort:
        closed = " closed" if spec.closed else ""
        lines += [
            f"COPY {CTX_INSTALLER} {CTX_UVOUTPUT} {CTX_REQUIREMENTS} {STAGE_TMP}/",
            f"RUN {env}{VENV}/bin/python {STAGE_TMP}/install.py "
            f"{STAGE_TMP}/requirements.txt{closed}",
        ]
    elif spec.has_requirements:
        lines += [
            f"COPY {CTX_REQUIREMENTS} {STAGE_TMP}/requirements.txt",
            f"RUN {env}{VENV}/bin/python -m pip install --no-cache-dir "
            f"--disable-pip-version-check -r {STAGE_TMP}/requirements.txt",
        ]
    lines += [
        f"LABEL gridrun=1 gridrun.stage=deps gridrun.deps={spec.deps_hash}",
        "",
        "# 3. The experiment image: dependencies, then the project (the only layer a",
        "#    code change rebuilds).",
        "FROM system",
        f"COPY --from=deps {VENV} {VENV}",
    ]
    prefix_var = "CONDA_PREFIX" if spec.conda else "VIRTUAL_ENV"
    lines += [
        f"ENV {prefix_var}={VENV} PATH={VENV}/bin:$PATH PYTHONUNBUFFERED=1 "
        "PYTHONDONTWRITEBYTECODE=1",
        f"WORKDIR {PROJECT_DIR}",
        f"COPY {CTX_PROJECT}/ {PROJECT_DIR}/",
    ]
    if labels:
        pairs = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
        lines.append(f"LABEL {pairs}")
    return "\n".join(lines) + "\n"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        parts = current.split(None, 1)
        if parts:
            out.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
        current = ""
    return out


def _copy_dest(args: str) -> tuple[str | None, bool]:
    """(destination, from_another_stage) of a COPY/ADD; JSON form included."""

    words: list[str]
    if args.lstrip().startswith("["):
        try:
            words = [str(w) for w in json.loads(args)]
        except ValueError:
            return None, False
    else:
        words = args.split()
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    if len(paths) < 2:
        return None, False
    return paths[-1], any(f.startswith("--from") for f in flags)


def check_user_dockerfile(text: str, path: str) -> None:
    """A user Dockerfile must set ``WORKDIR /gridai/project`` and copy the project there.

    Experiments run ``python <script>`` in that folder and their artifacts are read
    from it, so an image without the project there cannot work; say so before building.
    """
    stages: list[list[tuple[str, str]]] = []
    for ins, args in _instructions(text):
        if ins == "FROM":
            stages.append([])
        elif stages:
            stages[-1].append((ins, args))
    if not stages:
        raise BuildError(f"{path} has no FROM instruction.")
    workdir = "/"
    has_workdir = copies_project = False
    for ins, args in stages[-1]:
        if ins == "WORKDIR":
            target = args.strip().strip("\"'")
            workdir = target if target.startswith("/") else f"{workdir.rstrip('/')}/{target}"
            workdir = workdir.rstrip("/") or "/"
            has_workdir = has_workdir or workdir == PROJECT_DIR
        elif ins in ("COPY", "ADD"):
            dest, from_stage = _copy_dest(args)
            if dest is None or from_stage:
                continue
            full = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
            full = full.replace("/./", "/").rstrip("/.").rstrip("/")
            copies_project = copies_project or full == PROJECT_DIR
    missing = []
    if not has_workdir:
        missing.append(f"WORKDIR {PROJECT_DIR}")
    if not copies_project:
        missing.append(f"COPY . {PROJECT_DIR}")
    if missing:
        raise BuildError(
            f"{path} must set {' and '.join(missing)} in its final stage.",
            hint="gridrun runs your script from that folder and reads artifacts there.",
        )
