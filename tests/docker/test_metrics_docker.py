"""Metrics from a container: printed lines live, files once they are copied out."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from tensorboardX import SummaryWriter

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BASE = "gridrun-test-base:bookworm"

TRAIN = """\
# {nonce}
import os, shutil
os.makedirs("logs", exist_ok=True)
with open("logs/metrics.csv", "w") as f:
    f.write("step,val_acc\\n")
    for s in range(3):
        f.write(f"{{s}},{{0.5 + s / 10}}\\n")
for s in range(4):
    print(f"step={{s}} loss={{1 / (s + 1)}}", flush=True)
os.makedirs("runs", exist_ok=True)
shutil.copy("tb.bin", "runs/events.out.tfevents.1.container")
"""


def test_docker_experiment_metrics(grid, tmp_path: Path) -> None:
    project = tmp_path / "dmetrics"
    project.mkdir()
    (project / "train.py").write_text(TRAIN.format(nonce=uuid.uuid4().hex))
    w = SummaryWriter(str(tmp_path / "tb"))
    for s in range(5):
        w.add_scalar("grad_norm", float(s), s)
    w.close()
    (project / "tb.bin").write_bytes(next((tmp_path / "tb").glob("events.*")).read_bytes())
    grid(
        "run", "--backend", "docker", "--base_image", BASE, "--name", "dkm",
        "--follow", "train.py", cwd=project, timeout=600,
    )  # fmt: skip
    (exp,) = grid.json("metrics", "dkm")
    assert exp["status"] == "succeeded"
    m = exp["metrics"]
    assert [p[0] for p in m["loss"]["series"]] == [0, 1, 2, 3]
    assert m["loss"]["last"] == 0.25
    assert [p[2] for p in m["val_acc"]["series"]] == [0.5, 0.6, 0.7]
    assert m["grad_norm"]["count"] == 5 and m["grad_norm"]["max"] == 4.0
