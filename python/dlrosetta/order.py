"""The epoch order file: row e is epoch e's permutation of the training indices.

Drawn once per (data set, seed, epochs) by NumPy, then read by every stack, so all
languages visit the same batches in the same order without sharing a random generator
(docs/shards.md, "Epoch order").
"""
from __future__ import annotations

import os

import numpy as np


def epoch_order(n_train: int, epochs: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n_train) for _ in range(epochs)]).astype(np.int32)


def write_epoch_order(path: str | os.PathLike, n_train: int, epochs: int, seed: int) -> None:
    np.save(path, epoch_order(n_train, epochs, seed), allow_pickle=False)
