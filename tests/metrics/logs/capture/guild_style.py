"""Guild's output scalars: flags printed once, then ``key: value`` lines per step."""

import torch

lr = 0.1
hidden = 8
print(f"lr: {lr}")
print(f"hidden: {hidden}")
torch.manual_seed(0)
x = torch.randn(256, 4)
y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(256)
model = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
opt = torch.optim.SGD(model.parameters(), lr=lr)
for step in range(40):
    pred = model(x).squeeze(1)
    loss = torch.nn.functional.mse_loss(pred, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 2 == 0:
        print(f"step: {step}")
        print(f"loss: {loss.item():.5f}")
        print(
            f"val_loss: {torch.nn.functional.mse_loss(model(x[:64]).squeeze(1), y[:64]).item():.5f}"
        )
