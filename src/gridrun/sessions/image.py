"""A docker session's image: the run's own image, with JupyterLab and ipykernel added.

The run's image (built, or found cached, exactly as ``grid run --backend docker``
builds it: ``backends/docker/image.py``) is the base, so the kernel is the image's
Python with the run's packages. One more image is derived from it, as the run's
dependencies got into the run's image: pip inside the build, with the user's pip
configuration translated for a build container (``container_pip``), in a stage of
its own so that no layer of the session image holds the pip configuration or a CA
bundle. The session's container then needs no network to start JupyterLab.

* ``/opt/gridrun/jupyterlab``: a virtualenv holding the JupyterLab server, never the
  run's environment, so the run's packages stay as the run had them.
* ``/opt/gridrun/ipykernel``: ipykernel installed with ``--target`` by the run's
  Python, appended to ``sys.path`` by the kernel (after the run's site-packages:
  the run's own IPython or pyzmq win), as local sessions do (``tools.py``).
* ``/opt/gridrun/share/jupyter/kernels/python3``: the only kernel, written in the
  build by the run's Python itself (its ``sys.executable``: jupyter_client swaps a
  bare ``python`` for its own interpreter). ``JUPYTER_PATH`` puts it first.

The tag is ``gridrun-session:<hash>`` of the run's tag, the tool versions and the pip
configuration: a second session of the same code reuses it and builds nothing.

The tools stage starts from the run image *without its project layer*
(:func:`tools_base`), the image its dependencies end in, which a code change leaves
as it was: the engine's layer cache then holds the pip installs, and a session of
changed code only copies ``/opt/gridrun`` onto the new run image (seconds, where
installing JupyterLab again takes a minute).
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from gridrun.backends.base import BuildLog
from gridrun.errors import BuildError
from gridrun.sessions.tools import IPYKERNEL_OLD_PYTHON, IPYKERNEL_VERSION, JUPYTERLAB_VERSION

REPOSITORY = "gridrun-session"
GENERATOR_VERSION = "1"  # bump when the template changes: it is part of the tag
TOOLS = "/opt/gridrun"
JUPYTERLAB = f"{TOOLS}/jupyterlab"
IPYKERNEL = f"{TOOLS}/ipykernel"
JUPYTER_PATH = f"{TOOLS}/share/jupyter"
STAGE = "/tmp/gridrun"

# The ipykernel for the image's Python, chosen by pip's markers in the build (the
# host cannot know the image's Python without starting it).
KERNEL_REQUIREMENTS = (
    f'ipykernel=={IPYKERNEL_VERSION}; python_version >= "3.10"\n'
    f'ipykernel=={IPYKERNEL_OLD_PYTHON}; python_version < "3.10"\n'
)

# Run by the image's ``python`` in the build: the kernel spec naming that interpreter.
KERNELSPEC_PY = f"""\
import json, os, sys
dest = sys.argv[1]
os.makedirs(dest, exist_ok=True)
code = ("import sys; sys.path.append({IPYKERNEL!r}); "
        "from ipykernel.kernelapp import launch_new_instance; launch_new_instance()")
spec = {{
    "argv": [sys.executable, "-c", code, "-f", "{{connection_file}}"],
    "display_name": "Python %d.%d (run environment)" % sys.version_info[:2],
    "language": "python",
    "metadata": {{"debugger": True}},
}}
with open(os.path.join(dest, "kernel.json"), "w") as fh:
    json.dump(spec, fh, indent=1)
"""


def session_tag(run_tag: str, pip_fingerprint: str) -> str:
    from gridrun.backends.docker.image import _sha

    digest = _sha(
        GENERATOR_VERSION,
        run_tag,
        JUPYTERLAB_VERSION,
        KERNEL_REQUIREMENTS,
        pip_fingerprint,
    )
    return f"{REPOSITORY}:{digest[:12]}"


def tools_base(api: Any, run_tag: str) -> str:
    """The image the run's dependencies end in: ``run_tag`` less its project layers.

    gridrun's generated Dockerfile ends in ``COPY project/ /gridai/project/`` and one
    ``LABEL``; the classic builder records each step as a parent image, so walking
    up past those finds the image a code change does not touch. Anything else (a
    user's Dockerfile, an engine that keeps no parents) gives ``run_tag`` itself.
    """
    import docker.errors

    from gridrun.backends.docker.dockerfile import PROJECT_DIR

    try:
        info = api.inspect_image(run_tag)
        skipped = 0
        while True:
            step = " ".join((info.get("ContainerConfig") or {}).get("Cmd") or [])
            project = "COPY" in step and f" in {PROJECT_DIR}" in step
            if not ("#(nop)" in step and (project or "LABEL" in step)) or not info.get("Parent"):
                break
            info = api.inspect_image(info["Parent"])
            skipped += 1
    except docker.errors.APIError:
        return run_tag
    return str(info["Id"]) if skipped >= 2 else run_tag


def render(
    run_tag: str, has_cert: bool, labels: dict[str, str], tools_from: str | None = None
) -> str:
    """The session image's Dockerfile (pure text: compared with a recorded file).

    ``tools_from``: where the tools are installed (:func:`tools_base`); the run's image
    by default.
    """
    env = f"PIP_CONFIG_FILE={STAGE}/pip/pip.conf"
    if has_cert:
        env += f" SSL_CERT_FILE={STAGE}/pip/ca.crt REQUESTS_CA_BUNDLE={STAGE}/pip/ca.crt"
    pip = "-m pip install --no-cache-dir --disable-pip-version-check"
    lines = [
        "# Generated by gridrun for a session: the run's image, plus JupyterLab and",
        "# ipykernel. The pip configuration exists only in the tools stage.",
        f"FROM {tools_from or run_tag} AS tools",
        f"COPY pip/ {STAGE}/pip/",
        f"COPY kernelspec.py kernel-requirements.txt {STAGE}/",
        f"RUN export {env} \\",
        f" && (python3 -m venv {JUPYTERLAB} || python -m venv {JUPYTERLAB}) \\",
        f" && {JUPYTERLAB}/bin/python {pip} jupyterlab=={JUPYTERLAB_VERSION} \\",
        f" && python {pip} --target {IPYKERNEL} -r {STAGE}/kernel-requirements.txt \\",
        f" && python {STAGE}/kernelspec.py {JUPYTER_PATH}/kernels/python3",
        "",
        f"FROM {run_tag}",
        f"COPY --from=tools {TOOLS} {TOOLS}",
        f"ENV JUPYTER_PATH={JUPYTER_PATH}",
    ]
    pairs = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    lines.append(f"LABEL {pairs}")
    return "\n".join(lines) + "\n"


def build_session_image(api: Any, run_tag: str, home_root: Path, log: BuildLog) -> str:
    """The session image derived from ``run_tag``, built once; its tag."""
    import re

    from gridrun.backends.docker.image import (
        _chunk_lines,
        container_pip,
        explain_failure,
        find_image,
        images_dir,
        record_use,
    )
    from gridrun.envs.pipconf import load_pip_config
    from gridrun.fsutil import file_lock

    cpip = container_pip(load_pip_config())
    tag = session_tag(run_tag, cpip.fingerprint())
    lock = images_dir(home_root) / "locks" / (re.sub(r"[^a-z0-9.-]", "_", tag) + ".lock")
    with file_lock(lock):  # two sessions of the same code build once
        if find_image(api, tag) is not None:
            log(f"Reusing cached session image {tag}")
            record_use(home_root, tag)
            return tag
        labels = {"gridrun.session_image": "1", "gridrun.session_base": run_tag}
        text = render(run_tag, cpip.has_cert, labels, tools_base(api, run_tag))
        log(f"Building session image {tag} (JupyterLab {JUPYTERLAB_VERSION} on {run_tag})")
        for note in cpip.notes:
            log(note)
        recent: list[str] = []
        with tempfile.TemporaryDirectory(prefix="gridrun-session-build-") as tmp:
            tarball = Path(tmp) / "context.tar"
            with tarfile.open(tarball, "w") as tar:
                files = {
                    "Dockerfile": text.encode(),
                    "kernelspec.py": KERNELSPEC_PY.encode(),
                    "kernel-requirements.txt": KERNEL_REQUIREMENTS.encode(),
                    "pip/pip.conf": cpip.conf_text.encode(),
                    **{f"pip/{n}": data for n, data in cpip.files.items()},
                }
                for name, data in sorted(files.items()):
                    info = tarfile.TarInfo(name)
                    info.size, info.mode = len(data), 0o644
                    tar.addfile(info, fileobj=_reader(data))
            with open(tarball, "rb") as fh:
                import docker.errors

                try:
                    stream = api.build(
                        fileobj=fh,
                        custom_context=True,
                        tag=tag,
                        rm=True,
                        forcerm=True,
                        decode=True,
                        pull=False,
                        timeout=3600,
                    )
                    for chunk in stream:
                        if "error" in chunk:
                            reason = explain_failure(str(chunk["error"]), recent)
                            for _rest in stream:
                                pass
                            raise BuildError(
                                f"The session image failed to build: {reason}.",
                                hint="pip inside the build must reach PyPI (or the index "
                                "your pip configuration names).",
                            )
                        for line in _chunk_lines(chunk):
                            log(line)
                            recent = [*recent[-79:], line]
                except docker.errors.APIError as exc:
                    raise BuildError(
                        f"The session image failed to build: {exc.explanation or exc}."
                    ) from exc
    record_use(home_root, tag)
    return tag


def _reader(data: bytes) -> Any:
    import io

    return io.BytesIO(data)
