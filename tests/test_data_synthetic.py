"""Synthetic data sets: shapes, determinism, a learnable signal; shard checksums; the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from dlrosetta.data import DataError, synthetic
from dlrosetta.data.prepare import prepare_dataset
from dlrosetta.checksum import sha256_file
from dlrosetta.npy import BundleError
from dlrosetta.shards import read_shards

CIFAR = {"kind": "synthetic-cifar", "train_samples": 300, "test_samples": 200, "seed": 7}
IMDB = {"kind": "synthetic-imdb", "train_samples": 400, "test_samples": 200, "vocab_size": 5000,
        "maxlen": 80, "seed": 7}


def prepare(tmp_path, cfg, **changes):
    cfg = {**cfg, **changes}
    out = tmp_path / "-".join(f"{k}{v}" for k, v in cfg.items())
    return prepare_dataset(cfg["kind"], cfg, out)


def test_cifar_shapes_and_range(tmp_path):
    s = read_shards(prepare(tmp_path, CIFAR))
    assert s.x_train.shape == (300, 32, 32, 3) and s.x_test.shape == (200, 32, 32, 3)
    assert s.x_train.dtype == np.float32 and s.y_train.dtype == np.int32
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0
    assert s.meta["label_counts"]["train"] == [30] * 10 and s.meta["num_classes"] == 10
    assert s.meta["source"] == {"generator": "dlrosetta.data.synthetic.cifar",
                                "generator_version": synthetic.GENERATOR_VERSION, "seed": 7}


def test_imdb_shapes_and_tokens(tmp_path):
    s = read_shards(prepare(tmp_path, IMDB))
    assert s.x_train.shape == (400, 80) and s.x_train.dtype == np.int32 and s.y_train.dtype == np.int32
    assert s.x_train.min() == 0 and s.x_train.max() < IMDB["vocab_size"]
    assert s.meta["label_counts"] == {"train": [200, 200], "test": [100, 100]}
    assert {s.meta[k] for k in ("start_token", "oov_token", "index_from")} == {1, 2, 3}
    # Pre-padded: zeros only before the first token, which is START for untruncated rows.
    first = (s.x_train != 0).argmax(axis=1)
    assert all((row[:f] == 0).all() and (row[f:] != 0).all() for row, f in zip(s.x_train, first))
    padded = first > 0
    assert padded.any() and (s.x_train[padded, first[padded]] == 1).all()
    assert (s.x_train == 2).any()  # Zipf tail beyond the vocabulary: out-of-vocabulary words


@pytest.mark.parametrize("cfg", [CIFAR, IMDB], ids=["cifar", "imdb"])
def test_deterministic_from_the_seed(tmp_path, cfg):
    same = {sha256_file(prepare(tmp_path / str(i), cfg)) for i in range(2)}
    other = sha256_file(prepare(tmp_path, cfg, seed=8))
    assert len(same) == 1 and other not in same


@pytest.mark.parametrize("make", [lambda n: synthetic.cifar(n, 50, 3),
                                  lambda n: synthetic.imdb(n, 50, 5000, 80, 3)], ids=["cifar", "imdb"])
def test_test_split_does_not_depend_on_training_size(make):
    np.testing.assert_array_equal(make(20).x_test, make(60).x_test)


def test_cifar_classes_are_separable():
    d = synthetic.cifar(1000, 500, 7)
    x = d.x_train.reshape(len(d.x_train), -1)
    means = np.stack([x[d.y_train == k].mean(axis=0) for k in range(10)])
    t = d.x_test.reshape(len(d.x_test), -1)
    nearest = ((t[:, None, :] - means[None]) ** 2).sum(axis=-1).argmin(axis=1)
    assert (nearest == d.y_test).mean() > 0.5  # chance: 0.1


def test_imdb_sentiment_is_learnable_but_noisy():
    d = synthetic.imdb(1280, 1000, 5000, 80, 7)
    # Naive Bayes on token counts: well above chance, yet far from perfect, since a fixed
    # share of sentiment words contradicts the label (a model cannot reach 100%).
    counts = np.stack([np.bincount(d.x_train[d.y_train == c].ravel(), minlength=5000) + 1
                       for c in (0, 1)]).astype(float)
    log_p = np.log(counts / counts.sum(axis=1, keepdims=True))
    scores = np.stack([log_p[c][d.x_test].sum(axis=1) for c in (0, 1)], axis=1)
    accuracy = (scores.argmax(axis=1) == d.y_test).mean()
    assert 0.65 < accuracy < 0.95


@pytest.mark.parametrize("changes, message", [
    ({"train_samples": 0}, "train_samples"), ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"),
    ({"vocab_size": 500}, "vocab_size"), ({"maxlen": None}, "maxlen"), ({"extra": 1}, "extra"),
])
def test_bad_config_is_named(tmp_path, changes, message):
    with pytest.raises(DataError, match=message):
        prepare(tmp_path, IMDB, **changes)


def test_unknown_kind(tmp_path):
    with pytest.raises(DataError, match="unknown kind 'mnist'"):
        prepare_dataset("m", {"kind": "mnist"}, tmp_path)


def test_corrupt_shard_fails_naming_the_file(tmp_path):
    manifest = prepare(tmp_path, CIFAR)
    shard = manifest.parent / "x_train.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="x_train.npy"):
        read_shards(manifest)


def test_cli(tmp_path):
    cfg = json.dumps({**IMDB, "train_samples": 8, "test_samples": 4})
    run = subprocess.run([sys.executable, "-m", "dlrosetta.data.prepare", "--name", "synthetic-imdb",
                          "--config-json", cfg, "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(tmp_path / "out" / "manifest.json")
    assert read_shards(run.stdout.strip()).meta["dataset"] == "synthetic-imdb"

    bad = subprocess.run([sys.executable, "-m", "dlrosetta.data.prepare", "--name", "x",
                          "--config-json", "{not json", "--out", str(tmp_path / "bad")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "error:" in bad.stderr
