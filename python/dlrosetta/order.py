"""The epoch order file: row e is epoch e's permutation of the training indices.

Drawn once per (data set, seed, epochs) by NumPy, then read by every stack, so all
languages visit the same batches in the same order without sharing a random generator
(docs/shards.md, "Epoch order").

Twins: r/R/order.R, julia/src/order.jl.
"""
from __future__ import annotations

import os

import numpy as np


def epoch_order(n_train: int, epochs: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n_train) for _ in range(epochs)]).astype(np.int32)


def write_epoch_order(path: str | os.PathLike, n_train: int, epochs: int, seed: int) -> None:
    np.save(path, epoch_order(n_train, epochs, seed), allow_pickle=False)


def read_order(path: str | os.PathLike, epochs: int, n_train: int) -> np.ndarray:
    order = np.load(path, allow_pickle=False)
    if order.ndim != 2 or order.shape[0] < epochs or order.shape[1] != n_train:
        raise ValueError(f"epoch order {path} has shape {order.shape}; need at least "
                         f"{epochs} epochs of {n_train} indices")
    return order


def epoch_batches(order: np.ndarray, epoch: int, batch_size: int) -> np.ndarray:
    """The epoch's index rows: its permutation cut into full batches (the last partial
    batch is dropped, identically in every stack)."""
    row = order[epoch]
    steps = len(row) // batch_size
    return row[: steps * batch_size].reshape(steps, batch_size)


def profile_blocks(order: np.ndarray, batch_size: int, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Profile mode's three blocks of `steps` rows of epoch 0's batches: warm-up,
    unprofiled and profiled (rows 0..steps-1, steps..2*steps-1, 2*steps..3*steps-1),
    taken cyclically so that an epoch of fewer than 3*steps batches still fills them."""
    rows = epoch_batches(order, 0, batch_size)
    if steps < 1 or len(rows) == 0:
        raise ValueError(f"profile blocks need steps >= 1 and a full batch; got {steps} steps, "
                         f"{len(rows)} batches of {batch_size}")
    picks = np.arange(3 * steps) % len(rows)
    return tuple(rows[picks[k * steps:(k + 1) * steps]] for k in range(3))
