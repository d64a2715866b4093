"""A LightningModule fit with Lightning's own progress bar, banners and summary.

``python lightning_fit.py tqdm`` uses the tqdm bar, otherwise the default (rich when
rich is installed).
"""

import sys

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class Classifier(pl.LightningModule):
    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        logits = self(x)
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


torch.manual_seed(0)
x = torch.randn(640, 10)
y = (x[:, 0] + x[:, 1] > 0).long()
train = DataLoader(TensorDataset(x[:512], y[:512]), batch_size=32)
val = DataLoader(TensorDataset(x[512:], y[512:]), batch_size=64)
bars = [pl.callbacks.TQDMProgressBar()] if sys.argv[1:] == ["tqdm"] else []
trainer = pl.Trainer(
    max_epochs=4, logger=False, enable_checkpointing=False, accelerator="cpu", callbacks=bars
)
trainer.fit(Classifier(), train, val)
