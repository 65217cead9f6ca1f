"""Data shards: one npy bundle per data set, written once, read by every stack.

Arrays: x_train, y_train, x_test, y_test (docs/shards.md). Images are float32 NHWC in
[0, 1]; token sequences int32 [N, maxlen], 0 = padding; labels int32.

Twins: r/R/shards.R, julia/src/shards.jl.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from dlrosetta.checksum import sha256_file
from dlrosetta.npy import read_bundle, write_bundle

SPLITS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Shards:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    meta: Mapping[str, Any]
    manifest_sha256: str


def write_shards(directory: str | os.PathLike, x_train, y_train, x_test, y_test,
                 meta: Mapping[str, Any]):
    """Write a data set's shards; adds label counts and shapes to the metadata."""
    num_classes = int(meta["num_classes"])
    full_meta = {**meta,
                 "train_samples": int(len(y_train)), "test_samples": int(len(y_test)),
                 "label_counts": {"train": np.bincount(y_train, minlength=num_classes).tolist(),
                                  "test": np.bincount(y_test, minlength=num_classes).tolist()}}
    arrays = {"x_train": x_train, "y_train": np.asarray(y_train, np.int32),
              "x_test": x_test, "y_test": np.asarray(y_test, np.int32)}
    return write_bundle(directory, "shards", arrays, full_meta)


def read_shards(manifest_path: str | os.PathLike, verify: bool = True) -> Shards:
    arrays, manifest = read_bundle(manifest_path, "shards", SPLITS, verify=verify)
    return Shards(**arrays, meta=manifest["meta"], manifest_sha256=sha256_file(manifest_path))
