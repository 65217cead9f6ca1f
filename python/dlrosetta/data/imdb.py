"""IMDB sentiment from the official Large Movie Review Dataset archive (aclImdb_v1.tar.gz).

Read: the members aclImdb/{train,test}/{neg,pos}/<id>_<rating>.txt, streamed out of the
tar.gz; unsup/, the bag-of-words files, URL lists and the archive's own vocabulary are
ignored. Labels: neg = 0, pos = 1. Tokenised by dlrosetta.data.tokens (the Keras way).

Order. The archive defines none, so dlrosetta defines it: within each split, reviews are
sorted by numeric id (the <id> of the file name), the negative review before the
positive one of the same id. Each split holds ids 0..12499 once per label, so labels
alternate and every prefix is balanced: a subset (train_samples/test_samples = N) is the
first N reviews of this order.

Vocabulary. Word ranks count the whole official training split, also when only a subset
is kept, so a subset's rows are exactly the first rows of the full data set's shards.

Twins: none (data is prepared once, in Python; every language reads the shards).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np

from dlrosetta.data import DataError, Dataset
from dlrosetta.data.archive import require_archive, stream_members, subset_size
from dlrosetta.data.tokens import (check_token_config, frequency_ranks, pad_sequences,
                                   ranks_to_tokens, token_meta, words)
from dlrosetta.checksum import sha256_file

DESCRIPTION = "Large Movie Review Dataset v1.0 (aclImdb_v1.tar.gz)"
URL = "https://ai.stanford.edu/~amaas/data/sentiment/"
LABELS = {"neg": 0, "pos": 1}
SPLITS = ("train", "test")
_MEMBER = re.compile(r"aclImdb/(train|test)/(neg|pos)/(\d+)_\d+\.txt")


def _review_key(name: str) -> Optional[tuple[str, int, int]]:
    """(split, id, label) of a labelled review member; None for every other member."""
    m = _MEMBER.fullmatch(name)
    return (m[1], int(m[3]), LABELS[m[2]]) if m else None


def load(archive: str | Path, vocab_size: int, maxlen: int, train_samples: Optional[int] = None,
         test_samples: Optional[int] = None) -> Dataset:
    check_token_config(vocab_size, maxlen)
    path = require_archive(archive, DESCRIPTION, URL)

    # Words get ids in order of first appearance while streaming; the reviews keep only
    # their id arrays (a few bytes a word) until the ranking is known.
    word_ids: dict[bytes, int] = {}
    reviews: dict[str, list[tuple[int, int, np.ndarray]]] = {s: [] for s in SPLITS}
    for (split, review_id, label), text in stream_members(path, _review_key):
        ids = [word_ids.setdefault(w, len(word_ids)) for w in words(text)]
        reviews[split].append((review_id, label, np.asarray(ids, np.int64)))
    for split in SPLITS:
        present = {label for _, label, _ in reviews[split]}
        if present != set(LABELS.values()):
            absent = [f"aclImdb/{split}/{name}/" for name, label in LABELS.items() if label not in present]
            raise DataError(f"{path}: no reviews under {absent}; is it the {DESCRIPTION} archive?")
        reviews[split].sort(key=lambda r: (r[0], r[1]))

    counts = np.bincount(np.concatenate([ids for _, _, ids in reviews["train"]]),
                         minlength=len(word_ids))
    ranks = frequency_ranks(counts, list(word_ids))

    def encode(split: str, requested: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
        kept = reviews[split][: subset_size(requested, len(reviews[split]), split)]
        x = pad_sequences((ranks_to_tokens(ranks[ids], vocab_size) for _, _, ids in kept), maxlen)
        return x, np.array([label for _, label, _ in kept], np.int32)

    x_train, y_train = encode("train", train_samples)
    x_test, y_test = encode("test", test_samples)
    return Dataset(x_train, y_train, x_test, y_test,
                   {"num_classes": len(LABELS), **token_meta(vocab_size, maxlen),
                    "source": {"archive": str(path), "sha256": sha256_file(path),
                               "format": DESCRIPTION,
                               "order": "per split: by review id, neg before pos",
                               "ranked_words": int(np.count_nonzero(counts)),
                               "ranked_over_train_reviews": len(reviews["train"])}})
