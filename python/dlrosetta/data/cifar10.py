"""CIFAR-10 from the official "CIFAR-10 python version" archive (cifar-10-python.tar.gz).

The archive holds cifar-10-batches-py/data_batch_1..5 and test_batch: Python 2 cPickle
dicts with b"data", a uint8 numpy array [n, 3072] (each row the R, G, B planes of a
32x32 image, row-major), and b"labels", a list of ints 0..9. Official order: the training
batches 1..5 in turn, then the test batch; a subset is the first N of that order.
Output: float32 NHWC in [0, 1] (uint8 / 255), labels int32.

The batches are pickles, so they are read with an unpickler that can build nothing but
the built-in containers pickle makes by itself and numpy arrays (the format's b"data");
any other global in the stream is refused before it is looked up.

Twins: none (data is prepared once, in Python; every language reads the shards).
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Optional

import numpy as np

from dlrosetta.data import DataError, Dataset
from dlrosetta.data.archive import require_archive, require_members, stream_members, subset_size
from dlrosetta.checksum import sha256_file

DESCRIPTION = 'CIFAR-10 "python version" (cifar-10-python.tar.gz)'
URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
TRAIN_MEMBERS = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
TEST_MEMBER = "cifar-10-batches-py/test_batch"
NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)  # channel planes as stored; transposed to HWC on output

# ndarray.__reduce__ names numpy's array rebuilder; the batches were written when it lived
# in numpy.core (numpy 2 moved it to numpy._core), so both names map to the one function.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch") from None


def decode_batch(archive: Path, member: str, content: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (uint8 [n, 3072], int32 [n]), its structure checked."""
    try:
        batch = _BatchUnpickler(io.BytesIO(content), encoding="bytes").load()
    except Exception as e:  # untrusted bytes: any failure to parse them is corruption
        raise DataError(f"{archive}: member {member!r} is not a readable CIFAR-10 batch: {e}") from e
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == int(np.prod(IMAGE_SHAPE))):
        raise DataError(f"{archive}: member {member!r} has no b'data' uint8 array of rows of "
                        f"{int(np.prod(IMAGE_SHAPE))} bytes")
    if not (isinstance(labels, list) and len(labels) == len(data)
            and all(type(v) is int and 0 <= v < NUM_CLASSES for v in labels)):
        raise DataError(f"{archive}: member {member!r} has no b'labels' list of {len(data)} "
                        f"ints in 0..{NUM_CLASSES - 1}")
    return data, np.asarray(labels, np.int32)


def to_nhwc(rows: np.ndarray) -> np.ndarray:
    """uint8 [n, 3072] R,G,B planes -> float32 [n, 32, 32, 3] in [0, 1]."""
    planes = rows.reshape(len(rows), *IMAGE_SHAPE)
    images = np.ascontiguousarray(planes.transpose(0, 2, 3, 1), dtype=np.float32)
    images /= np.float32(255)  # in place: the full training split is 600 MB as float32
    return images


def load(archive: str | Path, train_samples: Optional[int] = None,
         test_samples: Optional[int] = None) -> Dataset:
    path = require_archive(archive, DESCRIPTION, URL)
    wanted = (*TRAIN_MEMBERS, TEST_MEMBER)
    batches = {name: decode_batch(path, name, content)
               for name, content in stream_members(path, lambda n: n if n in wanted else None)}
    require_members(path, batches, wanted, DESCRIPTION)

    x_train = np.concatenate([batches[m][0] for m in TRAIN_MEMBERS])
    y_train = np.concatenate([batches[m][1] for m in TRAIN_MEMBERS])
    x_test, y_test = batches[TEST_MEMBER]
    n_train = subset_size(train_samples, len(y_train), "train")
    n_test = subset_size(test_samples, len(y_test), "test")
    return Dataset(to_nhwc(x_train[:n_train]), y_train[:n_train],
                   to_nhwc(x_test[:n_test]), y_test[:n_test],
                   {"num_classes": NUM_CLASSES,
                    "source": {"archive": str(path), "sha256": sha256_file(path),
                               "format": DESCRIPTION,
                               "order": "data_batch_1..5 then test_batch, rows in stored order"}})
