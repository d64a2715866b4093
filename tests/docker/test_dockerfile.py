"""The generated Dockerfile, user Dockerfile checks, image naming and pip translation.

Pure text: these run without an engine. The recorded Dockerfiles in ``expected/`` are
the reference; regenerate them with ``GRIDRUN_RECORD=1`` after a deliberate change
(and bump ``GENERATOR_VERSION``).
"""

from __future__ import annotations

import os
from dataclasses import replace as dataclass_replace
from pathlib import Path

import pytest

from gridrun.backends.base import BuildRequest
from gridrun.backends.docker import dockerfile as df
from gridrun.backends.docker.image import container_pip, explain_failure, image_tag, sanitize_repo
from gridrun.envs.pipconf import PipConfig
from gridrun.errors import BackendError, BuildError

pytestmark = pytest.mark.unit

EXPECTED = Path(__file__).parent / "expected"
LABELS = {"gridrun": "1", "gridrun.project": "demo", "gridrun.snapshot": "abc"}

CASES = {
    "cpu-apt-requirements-cert": df.DockerfileSpec(
        base_image="gridrun-test-base:bookworm",
        python="3.11",
        apt_packages=("libgomp1", "curl"),
        has_requirements=True,
        has_cert=True,
        deps_hash="0123456789ab",
    ),
    "gpu-conda-cert": df.DockerfileSpec(
        base_image=df.CUDA_BASE,
        python="3.11",
        has_requirements=True,
        conda=True,
        conda_adds_python=True,
        has_cert=True,
        install_python=True,
        deps_hash="0123456789ab",
    ),
    "cpu-inferred-best-effort": df.DockerfileSpec(
        base_image="gridrun-test-base:bookworm",
        python="3.11",
        has_requirements=True,
        deps_hash="0123456789ab",
        best_effort=True,
        closed=True,
    ),
    "slim-no-requirements": df.DockerfileSpec(
        base_image="python:3.12-slim",
        python="3.12",
        has_requirements=False,
        deps_hash="0123456789ab",
    ),
    # --framework julia: Julia's image has no Python, and the script needs none.
    "julia-apt": df.DockerfileSpec(
        base_image="julia:1.11",
        python="3.12",
        apt_packages=("curl",),
        has_requirements=False,
        deps_hash="0123456789ab",
        python_env=False,
    ),
    # A Julia script with a Project.toml (Grid's third dependency file), in a folder
    # whose name has a space: its packages are instantiated in a layer of their own.
    "julia-project": df.DockerfileSpec(
        base_image="julia:1.6.1",
        python="3.12",
        has_requirements=False,
        deps_hash="0123456789ab",
        python_env=False,
        julia_project="sim code/Project.toml",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_dockerfile_matches_recording(case: str) -> None:
    text = df.render(CASES[case], LABELS)
    path = EXPECTED / f"Dockerfile.{case}"
    if os.environ.get("GRIDRUN_RECORD"):
        path.write_text(text)
    assert text == path.read_text()


def test_layers_come_in_cache_friendly_order() -> None:
    text = df.render(CASES["cpu-apt-requirements-cert"], LABELS)
    order = [
        text.index(s)
        for s in (
            "apt-get install",
            "COPY gridrun/requirements.txt",
            "pip install",
            "FROM system\n",
            "COPY --from=deps /opt/venv",
            "WORKDIR /gridai/project",
            "COPY project/ /gridai/project/",
        )
    ]
    assert order == sorted(order)
    final = text[text.index("FROM system\n") :]
    assert "gridrun/pip" not in final and "ca.crt" not in final  # pip config stays behind


def test_default_base_images() -> None:
    assert df.default_base_image("3.10", gpu=False) == ("python:3.10-slim", False)
    assert df.default_base_image("3.11", gpu=True) == (df.CUDA_BASE, True)
    gpu310 = df.render(df.DockerfileSpec(df.CUDA_BASE, "3.10", install_python=True))
    assert "deadsnakes" not in gpu310 and "python3.10 -m venv /opt/venv" in gpu310


GOOD = "FROM base\nRUN pip install six\nWORKDIR /gridai/project\nCOPY . .\n"


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        "FROM base\nWORKDIR /gridai/project\nCOPY . /gridai/project/\n",
        'FROM a AS b\nCOPY x /y\nFROM base\nWORKDIR /gridai\nWORKDIR project\nADD [".", "."]\n',
        "FROM base\nCOPY --chown=1000 . \\\n  /gridai/project\nWORKDIR /gridai/project\n",
    ],
)
def test_user_dockerfile_accepted(text: str) -> None:
    df.check_user_dockerfile(text, "Dockerfile")


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("FROM base\nCOPY . /app\nWORKDIR /app\n", "WORKDIR /gridai/project and COPY . /gridai"),
        ("FROM base\nWORKDIR /gridai/project\n", "must set COPY . /gridai/project"),
        ("FROM base\nCOPY . /gridai/project\n", "must set WORKDIR /gridai/project in"),
        (
            "FROM b AS x\nWORKDIR /gridai/project\nCOPY . .\nFROM base\n",
            "WORKDIR /gridai/project and",
        ),
        ("FROM base\nWORKDIR /gridai/project\nCOPY --from=x /src .\n", "COPY . /gridai/project"),
        ("# only a comment\n", "has no FROM"),
    ],
)
def test_user_dockerfile_refused_with_reason(text: str, missing: str) -> None:
    with pytest.raises(BuildError) as info:
        df.check_user_dockerfile(text, "docker/Dockerfile")
    assert missing in info.value.message
    assert "docker/Dockerfile" in info.value.message


def test_apt_packages_validated() -> None:
    assert df.parse_apt_txt("libgomp1 curl # tools\n\n# x\nffmpeg\n") == [
        "libgomp1",
        "curl",
        "ffmpeg",
    ]
    assert df.validate_apt_packages(["a", "b=1.2-3", "a", "libc6:amd64"]) == (
        "a",
        "b=1.2-3",
        "libc6:amd64",
    )
    with pytest.raises(BuildError, match="'curl;rm' is not a valid system package"):
        df.validate_apt_packages(["curl;rm"])


def test_conda_python_detection() -> None:
    assert df.conda_names_python("dependencies:\n  - python=3.11\n  - numpy\n")
    assert not df.conda_names_python("dependencies:\n  - numpy\n  - pip:\n    - six\n")
    with pytest.raises(BuildError, match="no 'dependencies'"):
        df.conda_names_python("name: x\n")


def _req(**kw: object) -> BuildRequest:
    fields: dict = dict(
        run_name="r",
        project_name="My Project!",
        python="3.11",
        requirements=["six==1.17.0"],
        snapshot_hash="ABCDEF0123456789" * 4,
        snapshot_manifest=Path("/x.json"),
        objects_dir=Path("/objects"),
    )
    fields.update(kw)
    return BuildRequest(**fields)


def test_image_tag_names_project_device_snapshot_and_dependencies() -> None:
    pip = container_pip(PipConfig())
    tag = image_tag(_req(), pip)
    repo, version = tag.split(":")
    assert repo == "my-project-cpu"
    snap, deps = version.split("-")
    assert snap == "abcdef012345" and len(deps) == 12
    assert image_tag(_req(gpu=True), pip).startswith("my-project-gpu:abcdef012345-")
    # Dependencies change the second half only; code changes the first half only.
    other = image_tag(_req(requirements=["six==1.16.0"]), pip)
    assert other.split("-")[-1] != deps and other.split(":")[1][:12] == snap
    code = image_tag(_req(snapshot_hash="f" * 64), pip)
    assert code.endswith(deps) and "ffffffffffff" in code
    assert sanitize_repo("__Weird  NAME__") == "weird-name"
    assert sanitize_repo("!!!") == "project"


def test_pip_config_for_a_build(tmp_path: Path) -> None:
    cert = tmp_path / "corp.pem"
    cert.write_text("PEM")
    cons = tmp_path / "constraints.txt"
    cons.write_text("six<2\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    pip = PipConfig(
        index_url="https://mirror.example/simple",
        extra_index_urls=("https://extra.example/simple", f"file://{wheels}"),
        find_links=(str(wheels),),
        trusted_hosts=("mirror.example",),
        cert=str(cert),
        constraints=(str(cons),),
    )
    cp = container_pip(pip)
    assert cp.files == {"ca.crt": b"PEM", "constraint-0.txt": b"six<2\n"}
    assert "index-url = https://mirror.example/simple" in cp.conf_text
    assert "extra-index-url = https://extra.example/simple" in cp.conf_text
    assert "trusted-host = mirror.example" in cp.conf_text
    assert "cert = /tmp/gridrun/pip/ca.crt" in cp.conf_text
    assert "constraint = /tmp/gridrun/pip/constraint-0.txt" in cp.conf_text
    assert str(wheels) not in cp.conf_text and str(tmp_path) not in cp.conf_text
    assert any("dropped find-links" in n for n in cp.notes)
    assert any("dropped extra-index-url file://" in n for n in cp.notes)
    # The certificate's content is part of the dependency identity.
    cert.write_text("PEM2")
    assert container_pip(pip).fingerprint() != cp.fingerprint()


def test_local_index_url_falls_back_to_pypi(tmp_path: Path) -> None:
    cp = container_pip(PipConfig(index_url=f"file://{tmp_path}"))
    assert "index-url" not in cp.conf_text
    assert any("the build uses PyPI" in n for n in cp.notes)


def test_build_failure_names_the_package() -> None:
    recent = [
        "Collecting nope-pkg",
        "ERROR: Could not find a version that satisfies the "
        "requirement nope-pkg-xyz==1.0 (from versions: none)",
        "ERROR: No matching distribution found for nope-pkg-xyz==1.0",
    ]
    assert "nope-pkg-xyz==1.0" in explain_failure("returned a non-zero code: 1", recent)
    apt = ["E: Unable to locate package libnothing"]
    assert "libnothing" in explain_failure("non-zero code: 100", apt)
    assert explain_failure("boom\n", ["plain"]) == "boom"


def test_a_julia_dockerfile_needs_no_python() -> None:
    text = df.render(CASES["julia-apt"], LABELS)
    code = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    assert "python" not in code.lower() and "venv" not in code and "pip" not in code
    assert text.count("FROM ") == 1 and "FROM julia:1.11\n" in text
    order = [
        text.index(s)
        for s in ("apt-get install", "command -v julia", "WORKDIR /gridai/project", "COPY project/")
    ]
    assert order == sorted(order)
    # An image without julia fails its build with the one line that says what it needs.
    recent = [df.NO_JULIA, "The command '/bin/sh -c command -v julia' returned a non-zero code: 1"]
    reason = explain_failure("The command ... returned a non-zero code: 1", recent)
    assert reason.startswith("this image has no julia on PATH") and "--framework julia" in reason


def test_a_julia_run_gets_julias_image_and_its_own_tag(tmp_path: Path) -> None:
    from gridrun.backends.docker.image import dockerfile_spec
    from gridrun.home import GridHome
    from gridrun.project import take_snapshot

    root = tmp_path / "jl"
    root.mkdir()
    (root / "train.jl").write_text('println("hi")\n')
    home = GridHome(tmp_path / "home").ensure()
    snap = take_snapshot(root, home)
    req = BuildRequest("run-1", "jl", "3.12", [], snap.hash, snap.manifest_path, home.objects)
    pip = container_pip(PipConfig())
    julia = dataclass_replace(req, python_env=False)
    spec = dockerfile_spec(julia, pip).spec
    assert (spec.base_image, spec.python_env, spec.install_python) == ("julia:1.11", False, False)
    assert image_tag(julia, pip) != image_tag(req, pip)  # never a Python image's tag
    instantiated = dataclass_replace(julia, julia_project="Project.toml")
    spec = dockerfile_spec(instantiated, pip).spec
    assert spec.julia_project == "Project.toml" and "Pkg.instantiate()" in df.render(spec)
    assert "Pkg.instantiate" not in df.render(dockerfile_spec(julia, pip).spec)
    assert image_tag(instantiated, pip) != image_tag(julia, pip)


def test_no_engine_is_one_line_with_next_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gridrun.backends.docker import DockerBackend

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(BackendError) as info:
        DockerBackend().check_available()
    msg = str(info.value)
    assert msg == (
        f"No Docker engine answers at unix://{tmp_path}/none.sock. Start one (sudo "
        "systemctl start docker, or dockerd &) or pass --backend local."
    )
