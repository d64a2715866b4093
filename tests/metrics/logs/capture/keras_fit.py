"""Keras 3 on the torch backend: model.fit's progress lines (``- loss: ... - accuracy: ...``)."""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras
import numpy as np

rng = np.random.default_rng(0)
x = rng.normal(size=(1024, 20)).astype("float32")
y = (x[:, 0] + x[:, 1] > 0).astype("int32")
model = keras.Sequential(
    [keras.Input((20,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(2)]
)
model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.summary()
verbose = int(sys.argv[1]) if len(sys.argv) > 1 else 1
model.fit(x, y, epochs=5, batch_size=64, validation_split=0.2, verbose=verbose)
