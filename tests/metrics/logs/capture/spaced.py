"""Scripts that print pairs without colons: ``epoch 1 loss 0.5`` and
``step 100 | loss 0.5 | lr 0.001`` (the shapes of issue 19)."""

import torch

torch.manual_seed(0)
x = torch.randn(512, 8)
y = x.sum(1, keepdim=True)
model = torch.nn.Linear(8, 1)
opt = torch.optim.Adam(model.parameters(), lr=0.01)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.5)
print("Using 1 CPU device for 3 epochs")
step = 0
for epoch in range(3):
    for i in range(0, 512, 64):
        loss = torch.nn.functional.mse_loss(model(x[i : i + 64]), y[i : i + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        print(f"step {step} | loss {loss.item():.4f} | lr {sched.get_last_lr()[0]:.5f}")
    print(f"epoch {epoch} loss {loss.item():.4f}")
print("Epoch 3 of 3 done")
