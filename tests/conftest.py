"""Shared fixtures: tiny shards, orders and weights built in tmp_path with the real writers."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dlrosetta.model_spec import model_spec  # noqa: E402
from dlrosetta.order import write_epoch_order  # noqa: E402
from dlrosetta.runspec import RunSpec  # noqa: E402
from dlrosetta.shards import write_shards  # noqa: E402
from dlrosetta.weights import write_initial_weights  # noqa: E402

TINY_RESNET = {"depth": 8, "width": 4, "shortcut": "A", "num_classes": 10, "image_size": 32, "channels": 3}
TINY_LSTM = {"vocab_size": 50, "embedding_dim": 8, "units": 6, "maxlen": 12, "num_classes": 2}
TRAINING = {
    "resnet": {"epochs": 2, "batch_size": 16, "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}},
    "lstm": {"epochs": 2, "batch_size": 16, "optimizer": {"name": "adam", "learning_rate": 0.001,
                                                          "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}},
}


def tiny_image_shards(directory: Path, n_train=48, n_test=16, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.random((n_train + n_test, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, n_train + n_test).astype(np.int32)
    return write_shards(directory, x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                        {"dataset": "tiny-cifar", "kind": "synthetic-cifar", "num_classes": 10})


def tiny_token_shards(directory: Path, n_train=48, n_test=16, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, TINY_LSTM["vocab_size"], (n_train + n_test, TINY_LSTM["maxlen"])).astype(np.int32)
    y = rng.integers(0, 2, n_train + n_test).astype(np.int32)
    return write_shards(directory, x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                        {"dataset": "tiny-imdb", "kind": "synthetic-imdb", "num_classes": 2,
                         "vocab_size": TINY_LSTM["vocab_size"], "maxlen": TINY_LSTM["maxlen"]})


def tiny_run_factory(root: Path):
    """(model, stack, **overrides) -> RunSpec. The inputs of each model are written once
    under root, so every stack asked for reads the very same files."""

    def make(model: str = "resnet", stack: str = "fake", **overrides) -> RunSpec:
        cfg = TINY_RESNET if model == "resnet" else TINY_LSTM
        d = root / model
        if not (d / "weights" / "manifest.json").exists():
            (tiny_image_shards if model == "resnet" else tiny_token_shards)(d / "shards")
            write_epoch_order(d / "order.npy", 48, TRAINING[model]["epochs"], seed=1)
            write_initial_weights(d / "weights", model_spec(model, cfg), 5, cfg)
        fields = dict(stack=stack, model=model, dataset=f"tiny-{model}", model_config=cfg,
                      training=TRAINING[model], shards=str(d / "shards" / "manifest.json"),
                      order=str(d / "order.npy"), initial_weights=str(d / "weights" / "manifest.json"),
                      init_seed=5, threads=1, seed=0, device="cpu",
                      measurements=str(root / "run" / f"{model}-{stack}-{overrides.get('check') or 'train'}"
                                       / "measurements.json"))
        return RunSpec(**{**fields, **overrides})

    return make


@pytest.fixture
def tiny_run(tmp_path):
    return tiny_run_factory(tmp_path)
