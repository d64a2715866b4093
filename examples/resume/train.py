"""A training loop that survives preemption: checkpoint on SIGTERM, resume on restart.

Run it under ``--auto_resume`` and preempt it with ``grid preempt``::

    grid run --name resumable --auto_resume --localdir examples/resume examples/resume/train.py --epochs 30
    grid preempt resumable-exp0      # SIGTERM, grace period, kill, then resume
    grid status resumable            # Restarts: 1 (1 preempted)
    grid logs resumable-exp0         # "resumed from epoch N"

It uses nothing of gridrun. It writes ``checkpoints/state.json`` after every epoch
and when SIGTERM arrives, and reads it back at start. gridrun resumes a preempted
experiment in the same working directory, so the checkpoint is there;
``GRID_RESTART_COUNT`` (0 on the first attempt) only feeds the log line.
"""

import argparse
import json
import os
import signal
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--seconds_per_epoch", type=float, default=0.5)
args = parser.parse_args()

CHECKPOINT = os.path.join("checkpoints", "state.json")
state = {"epoch": 0, "w": 0.0, "b": 0.0}


def save() -> None:
    os.makedirs("checkpoints", exist_ok=True)
    tmp = CHECKPOINT + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(state, fh)
    os.replace(tmp, CHECKPOINT)  # never a half-written checkpoint


def on_sigterm(signum, frame):
    save()
    print(f"SIGTERM: saved checkpoint at epoch {state['epoch']}, exiting", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, on_sigterm)

if os.path.exists(CHECKPOINT):
    with open(CHECKPOINT) as fh:
        state = json.load(fh)
    restart = os.environ.get("GRID_RESTART_COUNT", "0")
    print(f"resumed from epoch {state['epoch']} (restart {restart})", flush=True)

data = [(x / 20, 3 * (x / 20) + 1) for x in range(40)]
while state["epoch"] < args.epochs:
    for x, y in data:
        err = state["w"] * x + state["b"] - y
        state["w"] -= args.lr * err * x
        state["b"] -= args.lr * err
    state["epoch"] += 1
    loss = sum((state["w"] * x + state["b"] - y) ** 2 for x, y in data) / len(data)
    print(f"epoch {state['epoch']} loss {loss:.5f}", flush=True)
    save()
    time.sleep(args.seconds_per_epoch)

print(f"finished {args.epochs} epochs: w={state['w']:.3f} b={state['b']:.3f}", flush=True)
