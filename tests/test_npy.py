"""npy bundles: written files read back exactly; tampering and mismatches are named."""
import json

import numpy as np
import pytest

from dlrosetta.npy import BundleError, read_bundle, write_bundle
from dlrosetta.shards import read_shards
from conftest import tiny_image_shards


def test_round_trip_and_header_is_version_1(tmp_path):
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, -2, 3], np.int32)}
    manifest = write_bundle(tmp_path, "weights", arrays, {"k": 1})
    got, meta = read_bundle(manifest, "weights")
    assert all(np.array_equal(got[k], v) and got[k].dtype == v.dtype for k, v in arrays.items())
    assert meta["meta"] == {"k": 1} and [e["name"] for e in meta["arrays"]] == ["a", "b"]
    raw = (tmp_path / "a.npy").read_bytes()
    assert raw[:8] == b"\x93NUMPY\x01\x00"  # the readers in R and Julia expect format 1.0
    header_len = int.from_bytes(raw[8:10], "little")
    assert (10 + header_len) % 64 == 0 and b"'<f4'" in raw[10:10 + header_len]


def test_other_dtypes_are_refused(tmp_path):
    with pytest.raises(BundleError, match="float64"):
        write_bundle(tmp_path, "weights", {"x": np.zeros(2)}, {})


def test_corrupt_shard_is_named(tmp_path):
    manifest = tiny_image_shards(tmp_path)
    path = tmp_path / "x_test.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum mismatch for .*x_test.npy"):
        read_shards(manifest)


def test_missing_shard_and_manifest_are_named(tmp_path):
    manifest = tiny_image_shards(tmp_path)
    (tmp_path / "y_train.npy").unlink()
    with pytest.raises(BundleError, match="shard file missing: .*y_train.npy"):
        read_shards(manifest)
    with pytest.raises(BundleError, match="not found: .*nowhere"):
        read_shards(tmp_path / "nowhere" / "manifest.json")


def test_wrong_kind_and_version_are_refused(tmp_path):
    manifest = tiny_image_shards(tmp_path)
    with pytest.raises(BundleError, match="expected 'dlrosetta.weights'"):
        read_bundle(manifest, "weights")
    data = json.loads(manifest.read_text())
    data["format_version"] = 99
    manifest.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="format_version 99"):
        read_shards(manifest)


def test_shards_meta_has_label_counts(tmp_path):
    shards = read_shards(tiny_image_shards(tmp_path))
    counts = shards.meta["label_counts"]
    assert sum(counts["train"]) == len(shards.y_train) == shards.meta["train_samples"]
    assert counts["test"] == np.bincount(shards.y_test, minlength=10).tolist()
    assert len(shards.manifest_sha256) == 64
