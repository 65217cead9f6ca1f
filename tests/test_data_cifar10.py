"""CIFAR-10 loader: the official python-version archive, built tiny in tmp_path."""
from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest

from archives import CIFAR_DIR, cifar_batch, cifar_members, cifar_rows, write_tar_gz
from dlrosetta.data import DataError
from dlrosetta.data.prepare import prepare_dataset
from dlrosetta.checksum import sha256_file
from dlrosetta.shards import read_shards

PER_BATCH = 2


def planes(index: int) -> np.ndarray:
    """Image `index` as uint8 [3, 32, 32] R, G, B planes whose every value tells its
    channel, row and column apart: R = row + 32*(col % 8), G = 255 - col, B = index."""
    h, w = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    return np.stack([h + 32 * (w % 8), 255 - w, np.full((32, 32), index)]).astype(np.uint8)


def split(first: int, n: int):
    images = np.stack([planes(first + i) for i in range(n)])
    return images, [(first + i) % 10 for i in range(n)]


@pytest.fixture
def archive(tmp_path):
    train = [split(PER_BATCH * b, PER_BATCH) for b in range(5)]
    test = split(100, 3)
    members = cifar_members([(cifar_rows(x), y) for x, y in train], (cifar_rows(test[0]), test[1]))
    path = write_tar_gz(tmp_path / "cifar-10-python.tar.gz", members)
    return path, train, test


def cfg(path, **kw):
    return {"kind": "cifar10", "archive": str(path), "train_samples": None, "test_samples": None, **kw}


def test_images_are_nhwc_scaled_and_in_official_order(archive, tmp_path):
    path, train, test = archive
    shards = read_shards(prepare_dataset("cifar10", cfg(path), tmp_path / "out"))

    assert shards.x_train.shape == (5 * PER_BATCH, 32, 32, 3) and shards.x_train.dtype == np.float32
    assert shards.x_test.shape == (3, 32, 32, 3)
    assert shards.y_train.dtype == np.int32 and shards.y_test.dtype == np.int32
    # Training images come batch 1..5 in turn although the tar stores them scrambled.
    expected = np.concatenate([x for x, _ in train]).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(shards.x_train, expected.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(shards.y_train, np.concatenate([y for _, y in train]))
    np.testing.assert_array_equal(shards.y_test, test[1])
    # Spot values, written out: pixel (row 5, col 9) of test image 1 is R 5+32, G 246, B 101.
    np.testing.assert_array_equal(shards.x_test[1, 5, 9], np.float32([37, 246, 101]) / np.float32(255))


def test_meta_names_source_and_counts(archive, tmp_path):
    path, train, test = archive
    manifest = prepare_dataset("cifar10-small", cfg(path), tmp_path / "out")
    meta = json.loads(manifest.read_text())["meta"]
    assert meta["dataset"] == "cifar10-small" and meta["kind"] == "cifar10" and meta["num_classes"] == 10
    assert meta["source"]["archive"] == str(path.resolve())
    assert meta["source"]["sha256"] == sha256_file(path)
    assert meta["train_samples"] == 5 * PER_BATCH and meta["test_samples"] == 3
    assert meta["label_counts"]["train"] == np.bincount(np.concatenate([y for _, y in train]),
                                                        minlength=10).tolist()
    assert meta["label_counts"]["test"] == np.bincount(test[1], minlength=10).tolist()


def test_subset_is_the_first_samples(archive, tmp_path):
    path, _, _ = archive
    full = read_shards(prepare_dataset("c", cfg(path), tmp_path / "full"))
    part = read_shards(prepare_dataset("c", cfg(path, train_samples=3, test_samples=1), tmp_path / "part"))
    np.testing.assert_array_equal(part.x_train, full.x_train[:3])
    np.testing.assert_array_equal(part.y_test, full.y_test[:1])
    with pytest.raises(DataError, match="train_samples"):
        prepare_dataset("c", cfg(path, train_samples=5 * PER_BATCH + 1), tmp_path / "too-many")


def test_missing_archive_says_where_to_get_it(tmp_path):
    missing = tmp_path / "nowhere" / "cifar-10-python.tar.gz"
    with pytest.raises(DataError) as e:
        prepare_dataset("cifar10", cfg(missing), tmp_path / "out")
    assert str(missing) in str(e.value) and "`archive`" in str(e.value)
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in str(e.value)


@pytest.mark.parametrize("keep", [0.5, 0.9, -4])  # -4: only the gzip trailer is cut
def test_truncated_archive_names_the_file(archive, tmp_path, keep):
    path, _, _ = archive
    cut = tmp_path / "cut.tar.gz"
    data = path.read_bytes()
    cut.write_bytes(data[: keep if keep < 0 else int(len(data) * keep)])
    with pytest.raises(DataError, match=re.escape(str(cut.resolve()))):
        prepare_dataset("cifar10", cfg(cut), tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_garbage_archive_names_the_file(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not a gzip file" * 100)
    with pytest.raises(DataError, match="corrupt or truncated"):
        prepare_dataset("cifar10", cfg(junk), tmp_path / "out")


def test_missing_member_is_named(archive, tmp_path):
    path, train, test = archive
    members = cifar_members([(cifar_rows(x), y) for x, y in train], (cifar_rows(test[0]), test[1]))
    del members[f"{CIFAR_DIR}/test_batch"]
    partial = write_tar_gz(tmp_path / "partial.tar.gz", members)
    with pytest.raises(DataError, match=f"{CIFAR_DIR}/test_batch"):
        prepare_dataset("cifar10", cfg(partial), tmp_path / "out")


@pytest.mark.parametrize("content, message", [
    (b"\x80\x02}q\x00(U\x04data", "not a readable CIFAR-10 batch"),          # truncated pickle
    (cifar_batch(np.zeros((2, 3000), np.uint8), [0, 1]), "b'data'"),          # wrong row size
    (cifar_batch(np.zeros((2, 3072), np.uint8), [0, 10]), "b'labels'"),       # label out of range
    (pickle.dumps({b"data": "text"}, protocol=2), "not a readable CIFAR-10 batch"),  # Python 3 bytes
])
def test_corrupt_member_is_named(archive, tmp_path, content, message):
    path, train, test = archive
    members = cifar_members([(cifar_rows(x), y) for x, y in train], (cifar_rows(test[0]), test[1]))
    members[f"{CIFAR_DIR}/data_batch_2"] = content
    bad = write_tar_gz(tmp_path / "bad.tar.gz", members)
    with pytest.raises(DataError, match=message) as e:
        prepare_dataset("cifar10", cfg(bad), tmp_path / "out")
    assert f"{CIFAR_DIR}/data_batch_2" in str(e.value) and str(bad.resolve()) in str(e.value)


class _Exploit:
    """Pickles as a call of open(path, 'w'): what a hostile batch could make pickle run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_unpickler_runs_nothing_but_numpy_rebuilds(archive, tmp_path):
    path, train, test = archive
    marker = tmp_path / "pwned"
    members = cifar_members([(cifar_rows(x), y) for x, y in train], (cifar_rows(test[0]), test[1]))
    payload = pickle.dumps({"data": _Exploit(marker)}, protocol=2)
    pickle.loads(payload).pop("data").close()  # the payload is real: a plain unpickler runs it
    assert marker.exists()
    marker.unlink()
    members[f"{CIFAR_DIR}/test_batch"] = payload
    bad = write_tar_gz(tmp_path / "hostile.tar.gz", members)
    with pytest.raises(DataError, match="open is not allowed"):
        prepare_dataset("cifar10", cfg(bad), tmp_path / "out")
    assert not marker.exists()
