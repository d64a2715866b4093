"""A plain PyTorch loop with a tqdm bar and its postfix, as many scripts are written."""

import argparse

import torch
from tqdm import tqdm

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--batch-size", type=int, default=32)
args = parser.parse_args()
print(vars(args))

torch.manual_seed(0)
x = torch.randn(640, 10)
y = (x[:, 0] + x[:, 1] > 0).long()
model = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
print(model)
opt = torch.optim.SGD(model.parameters(), lr=args.lr)
for epoch in range(args.epochs):
    bar = tqdm(range(0, len(x), args.batch_size), desc=f"Epoch {epoch}")
    for i in bar:
        logits = model(x[i : i + args.batch_size])
        loss = torch.nn.functional.cross_entropy(logits, y[i : i + args.batch_size])
        opt.zero_grad()
        loss.backward()
        opt.step()
        acc = (logits.argmax(1) == y[i : i + args.batch_size]).float().mean()
        bar.set_postfix(loss=f"{loss.item():.4f}", acc=f"{acc.item():.3f}")
