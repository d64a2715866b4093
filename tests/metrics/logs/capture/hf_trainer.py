"""Hugging Face's Trainer on a tiny BERT made from a config (no download): its printed
dicts of losses and eval metrics, and its tqdm bars."""

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments


class Data(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(5, 100, (n, 16), generator=g)
        self.labels = (self.ids[:, 0] > 50).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def accuracy(pred):
    return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}


torch.manual_seed(0)
config = BertConfig(
    vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
)
args = TrainingArguments(
    output_dir="hf_out",
    num_train_epochs=3,
    per_device_train_batch_size=16,
    logging_steps=4,
    eval_strategy="epoch",
    save_strategy="no",
    report_to=[],
    learning_rate=5e-4,
    use_cpu=True,
)
trainer = Trainer(
    model=BertForSequenceClassification(config),
    args=args,
    train_dataset=Data(256, 0),
    eval_dataset=Data(64, 1),
    compute_metrics=accuracy,
)
print(trainer.train())
