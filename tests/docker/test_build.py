"""Image builds against a real engine: caching, code-only rebuilds, failures, secrets."""

from __future__ import annotations

import io
import tarfile
import time
from typing import Any

import pytest

from gridrun.backends.docker import DockerBackend
from gridrun.backends.docker.image import find_image
from gridrun.errors import BuildError
from gridrun.logs import LogSink

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TRAIN = """\
import sys
import six
print("argv", sys.argv, "six", six.__version__)
"""


def _steps(log: Any) -> list[str]:
    return [ln for ln in log.lines if ln.startswith("Step ")]


def _cached_after(log: Any, needle: str) -> bool:
    """Whether the build step whose line contains ``needle`` came from the cache."""
    lines = log.lines
    for i, line in enumerate(lines):
        if line.startswith("Step ") and needle in line:
            return i + 1 < len(lines) and lines[i + 1].strip() == "---> Using cache"
    raise AssertionError(f"no step with {needle!r} in:\n{log.text()}")


def test_build_run_reuse_and_code_only_rebuild(
    api, make_project, make_request, make_job, build_log, marker_cert, capsys
) -> None:
    root = make_project({"train.py": TRAIN, "apt.txt": "# none\n"})
    req = make_request(root, ["six==1.17.0"])
    backend = DockerBackend()

    cold = build_log()
    started = time.perf_counter()
    tag = backend.build(req, cold)
    cold_s = time.perf_counter() - started
    assert tag.startswith("gridrun-test-proj-cpu:" + req.snapshot_hash[:12] + "-")
    assert find_image(api, tag) is not None
    assert not _cached_after(cold, "pip install")  # the marker cert made it cold
    assert any("dropped" in ln or "Building image" in ln for ln in cold.lines)

    job = make_job(req, tag, "train.py", ["--lr", "0.1", "two words", "ü"])
    with LogSink(job.log_path) as sink:
        assert backend.run(job, sink).exit_code == 0
    backend.release(job, None)
    out = job.log_path.read_text()
    assert "argv ['train.py', '--lr', '0.1', 'two words', 'ü'] six 1.17.0" in out

    again = build_log()
    started = time.perf_counter()
    assert backend.build(req, again) == tag
    cached_s = time.perf_counter() - started
    assert again.lines[-1] == f"Reusing cached image {tag}" and not _steps(again)

    (root / "train.py").write_text(TRAIN + "print('changed')\n")
    req2 = make_request(root, ["six==1.17.0"])
    code = build_log()
    started = time.perf_counter()
    tag2 = backend.build(req2, code)
    code_s = time.perf_counter() - started
    assert tag2 != tag and tag2.split("-")[-1] == tag.split("-")[-1]
    assert _cached_after(code, "pip install")
    assert _cached_after(code, "COPY --from=deps /opt/venv")
    assert not _cached_after(code, "COPY project/")
    with capsys.disabled():
        print(
            f"\n[timing] cold build {cold_s:.2f}s, cached re-run {cached_s:.3f}s, "
            f"code-only rebuild {code_s:.2f}s"
        )
    assert cached_s < cold_s and code_s < cold_s


def _export_files(api: Any, image: str) -> dict[str, bytes]:
    """Every regular file of an image's filesystem (docker export)."""
    cid = api.create_container(image, command=["true"])["Id"]
    try:
        buf = io.BytesIO(b"".join(api.export(cid)))
    finally:
        api.remove_container(cid, force=True)
    files = {}
    with tarfile.open(fileobj=buf) as tar:
        for m in tar:
            if m.isreg():
                fh = tar.extractfile(m)
                assert fh is not None
                files[m.name] = fh.read()
    return files


def test_final_image_holds_no_pip_config_or_certificate(
    api, make_project, make_request, build_log, marker_cert, tmp_path, monkeypatch
) -> None:
    _bundle, marker = marker_cert
    conf = tmp_path / "pip.conf"
    # A trusted host nobody uses: harmless to pip, and easy to find in a layer.
    index_marker = "gridrun-index-marker.invalid"
    conf.write_text(
        f"[global]\nindex-url = https://pypi.org/simple\ntrusted-host = {index_marker}\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    root = make_project({"train.py": TRAIN})
    req = make_request(root, ["six==1.17.0"])
    tag = DockerBackend().build(req, build_log())

    final = _export_files(api, tag)
    leaks = [
        n for n, data in final.items() if marker.encode() in data or index_marker.encode() in data
    ]
    assert leaks == []
    assert not any(n.endswith("pip.conf") or "tmp/gridrun" in n for n in final)
    for layer in api.history(tag):
        assert "gridrun/pip" not in (layer.get("CreatedBy") or "")
    # The search works: the dependency stage (kept only in this engine) has both.
    deps = api.images(
        filters={"label": [f"gridrun.deps={tag.split('-')[-1]}", "gridrun.stage=deps"]}
    )
    assert deps
    stage = _export_files(api, deps[0]["Id"])
    assert any(marker.encode() in d for d in stage.values())
    assert any(index_marker.encode() in d for d in stage.values())


def test_unknown_package_fails_naming_it(make_project, make_request, build_log) -> None:
    root = make_project({"train.py": "print(1)\n"})
    req = make_request(root, ["gridrun-no-such-package-9f3e==1.0"])
    log = build_log()
    with pytest.raises(BuildError) as info:
        DockerBackend().build(req, log)
    assert "gridrun-no-such-package-9f3e" in info.value.message
    assert "no matching distribution" in info.value.message
    assert any("No matching distribution" in ln for ln in log.lines)


USER_DOCKERFILE = """\
FROM gridrun-test-base:bookworm
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /gridai/project
COPY . .
"""


def test_user_dockerfile_used_as_given(make_project, make_request, make_job, build_log) -> None:
    root = make_project(
        {
            "train.py": "import sys; print('custom', sys.prefix)\n",
            "docker/Dockerfile": USER_DOCKERFILE,
        }
    )
    backend = DockerBackend()
    req = make_request(root, dockerfile="docker/Dockerfile")
    tag = backend.build(req, build_log())
    job = make_job(req, tag, "train.py", [])
    with LogSink(job.log_path) as sink:
        assert backend.run(job, sink).exit_code == 0
    backend.release(job, None)
    assert "custom /opt/venv" in job.log_path.read_text()

    (root / "docker/Dockerfile").write_text(USER_DOCKERFILE.replace("COPY . .", "COPY . /app"))
    log = build_log()
    with pytest.raises(BuildError, match=r"docker/Dockerfile must set COPY \. /gridai/project"):
        backend.build(make_request(root, dockerfile="docker/Dockerfile"), log)
    assert not any(ln.startswith("Step ") for ln in log.lines)


def test_project_missing_dockerfile_is_a_project_error(make_project, make_request) -> None:
    from gridrun.errors import ProjectError

    root = make_project({"train.py": "print(1)\n"})
    with pytest.raises(ProjectError, match="Dockerfile nope/Dockerfile is not in the project"):
        DockerBackend().build(make_request(root, dockerfile="nope/Dockerfile"), print)


def test_base_image_that_cannot_be_pulled(make_project, make_request, build_log) -> None:
    root = make_project({"train.py": "print(1)\n"})
    req = make_request(root, base_image="gridrun-test-missing-base:none")
    with pytest.raises(BuildError) as info:
        DockerBackend().build(req, build_log())
    assert "gridrun-test-missing-base:none" in str(info.value)
