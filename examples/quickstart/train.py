"""A tiny "training" script for the quickstart: fits y = 3x + 1 by gradient descent.

It knows nothing about gridrun: it reads its hyperparameters from the command line,
prints progress, and saves a checkpoint, which gridrun keeps as an artifact.
"""

import argparse
import json
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--epochs", type=int, default=5)
args = parser.parse_args()

random.seed(0)
data = [(x, 3 * x + 1 + random.gauss(0, 0.1)) for x in [i / 50 for i in range(100)]]
w, b = 0.0, 0.0
for epoch in range(1, args.epochs + 1):
    for x, y in data:
        err = (w * x + b) - y
        w -= args.lr * err * x
        b -= args.lr * err
    loss = sum(((w * x + b) - y) ** 2 for x, y in data) / len(data)
    print(f"epoch {epoch} lr {args.lr} loss {loss:.4f}")

os.makedirs("checkpoints", exist_ok=True)
with open("checkpoints/model.json", "w") as fh:
    json.dump({"w": w, "b": b, "loss": loss}, fh)
print(f"saved checkpoints/model.json (w={w:.3f}, b={b:.3f})")
