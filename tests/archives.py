"""Builders of tiny archives in the real formats of the official data sets, for tests.

CIFAR-10 "python version": a tar.gz of cifar-10-batches-py/{data_batch_1..5, test_batch,
batches.meta, readme.html}; each batch is a dict pickled by Python 2's cPickle (protocol
2, keys and strings as Python 2 `str`, b"data" a numpy uint8 array). Python 3 cannot
write that form (it pickles bytes through _codecs.encode), so the opcodes are emitted
here as cPickle wrote them. IMDB: a tar.gz of aclImdb/{train,test}/{neg,pos}/<id>_<r>.txt
plus the archive's other members (unsup reviews, vocabulary, bag-of-words files).
"""
from __future__ import annotations

import io
import struct
import tarfile
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

CIFAR_DIR = "cifar-10-batches-py"


class Py2Pickle:
    """Just enough of the pickle protocol-2 opcodes to write a CIFAR-10 batch."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")  # PROTO 2

    def str(self, s: bytes):  # Python 2 str: SHORT_BINSTRING / BINSTRING
        self.out += (b"U" + bytes([len(s)]) if len(s) < 256 else b"T" + struct.pack("<i", len(s))) + s

    def int(self, v: int):
        self.out += b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v)

    def global_(self, module: str, name: str):
        self.out += b"c" + f"{module}\n{name}\n".encode()

    def array(self, a: np.ndarray):
        """numpy 1.x's ndarray.__reduce__: _reconstruct(ndarray, (0,), 'b') + BUILD state."""
        self.global_("numpy.core.multiarray", "_reconstruct")
        self.global_("numpy", "ndarray")
        self.int(0)
        self.out += b"\x85"  # TUPLE1
        self.str(b"b")
        self.out += b"\x87R("  # TUPLE3, REDUCE, MARK of the state tuple
        self.int(1)
        self.out += b"("
        for d in a.shape:
            self.int(d)
        self.out += b"t"
        self.global_("numpy", "dtype")
        self.str(a.dtype.str[1:].encode())
        self.int(0)
        self.int(1)
        self.out += b"\x87R("  # dtype(...), then its state tuple
        self.int(3)
        self.str(a.dtype.str[:1].encode())
        self.out += b"NNN"
        self.int(-1)
        self.int(-1)
        self.int(0)
        self.out += b"tb\x89"  # TUPLE, BUILD (dtype), NEWFALSE (not Fortran order)
        self.str(np.ascontiguousarray(a).tobytes())
        self.out += b"tb"  # TUPLE, BUILD (array)

    def done(self) -> bytes:
        return bytes(self.out + b".")


def cifar_batch(data: np.ndarray, labels: Iterable[int], batch_label: bytes = b"batch") -> bytes:
    """A batch pickled as in the official archive: {batch_label, labels, data, filenames}."""
    labels = list(labels)
    p = Py2Pickle()
    p.out += b"}("  # EMPTY_DICT, MARK
    p.str(b"batch_label")
    p.str(batch_label)
    p.str(b"labels")
    p.out += b"]("  # EMPTY_LIST, MARK
    for v in labels:
        p.int(int(v))
    p.out += b"e"  # APPENDS
    p.str(b"data")
    p.array(np.asarray(data, np.uint8))
    p.str(b"filenames")
    p.out += b"]("
    for i in range(len(labels)):
        p.str(f"image_{i}.png".encode())
    p.out += b"eu"  # APPENDS, SETITEMS
    return p.done()


def cifar_rows(images_chw: np.ndarray) -> np.ndarray:
    """uint8 [n, 3, 32, 32] (R, G, B planes) -> the format's rows [n, 3072]."""
    return np.asarray(images_chw, np.uint8).reshape(len(images_chw), 3 * 32 * 32)


def cifar_members(train: list[tuple[np.ndarray, list[int]]], test: tuple[np.ndarray, list[int]]
                  ) -> dict[str, bytes]:
    """Members of a CIFAR-10 archive from five training batches and a test batch, each
    (rows uint8 [n, 3072], labels); stored in a scrambled order as in the real archive."""
    members = {f"{CIFAR_DIR}/data_batch_{i + 1}": cifar_batch(*batch, f"training batch {i + 1} of 5".encode())
               for i, batch in enumerate(train)}
    members[f"{CIFAR_DIR}/test_batch"] = cifar_batch(*test, b"testing batch 1 of 1")
    members[f"{CIFAR_DIR}/readme.html"] = b"<html>CIFAR-10</html>"
    order = [4, 6, 2, 0, 3, 1, 5]  # members are not stored in name order
    names = list(members)
    return {names[i]: members[names[i]] for i in order}


def write_tar_gz(path: Path, members: Mapping[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def imdb_members(reviews: Iterable[tuple[str, str, int, int, bytes]]) -> dict[str, bytes]:
    """Members of an aclImdb archive from (split, 'neg'|'pos', id, rating, text), in the
    given order, plus the members a loader must ignore."""
    members = {f"aclImdb/{split}/{label}/{rid}_{rating}.txt": text
               for split, label, rid, rating, text in reviews}
    members.update({
        "aclImdb/README": b"Large Movie Review Dataset v1.0",
        "aclImdb/imdb.vocab": b"the\nand\na\n",
        "aclImdb/train/labeledBow.feat": b"0 0:9 1:1\n",
        "aclImdb/train/urls_pos.txt": b"http://www.imdb.com/title/tt0453418/usercomments\n",
        # An unlabelled review full of one word: if it were read, that word would rank first.
        "aclImdb/train/unsup/0_0.txt": b"zzz " * 50,
    })
    return members
