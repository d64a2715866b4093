"""A tiny "training" script for the quickstart: fits y = 3x + 1 with numpy.

It knows nothing about gridrun: it reads its hyperparameters from the command line,
prints one metrics line per epoch, and saves a checkpoint, which gridrun keeps as an
artifact. There is no requirements.txt beside it, so gridrun finds `numpy` in its
imports and builds an environment with it.
"""

import argparse
import json
import os

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--epochs", type=int, default=5)
args = parser.parse_args()

rng = np.random.default_rng(0)
x = np.linspace(0, 2, 100)
y = 3 * x + 1 + rng.normal(0, 0.1, x.shape)
w, b = 0.0, 0.0
for epoch in range(1, args.epochs + 1):
    for _ in range(50):
        err = (w * x + b) - y
        w -= args.lr * float(np.mean(err * x))
        b -= args.lr * float(np.mean(err))
    loss = float(np.mean(((w * x + b) - y) ** 2))
    print(f"epoch: {epoch} loss: {loss:.4f}")

os.makedirs("checkpoints", exist_ok=True)
with open("checkpoints/model.json", "w") as fh:
    json.dump({"w": w, "b": b, "loss": loss}, fh)
print(f"saved checkpoints/model.json (w={w:.3f}, b={b:.3f}, numpy {np.__version__})")
