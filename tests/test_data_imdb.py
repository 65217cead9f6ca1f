"""IMDB loader: the official aclImdb archive, built tiny in tmp_path, tokenised by hand."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from archives import imdb_members, write_tar_gz
from dlrosetta.data import DataError
from dlrosetta.data.prepare import prepare_dataset
from dlrosetta.data.tokens import pad_sequences, ranks_to_tokens, words
from dlrosetta.checksum import sha256_file
from dlrosetta.shards import read_shards

# Stored out of the official order on purpose (pos before neg, id 1 before id 0).
REVIEWS = [
    ("train", "pos", 1, 8, b"good 10/10"),
    ("train", "neg", 1, 1, b"Bad plot."),
    ("train", "pos", 0, 9, b"A good film; a GOOD story.<br />Don't miss it"),
    ("train", "neg", 0, 2, b"The film was BAD.<br /><br />Bad, bad acting!"),
    ("test", "pos", 0, 10, b"Good film, unseen words"),
    ("test", "neg", 0, 3, b"bad bad film"),
]
# Worked by hand. Training counts: bad 4, good 3; 10, a, film 2; acting, don't, it, miss,
# plot, story, the, was 1. Ranks (ties alphabetical, digits first): bad 1, good 2, 10 3,
# a 4, film 5, acting 6, don't 7, it 8, miss 9, plot 10, story 11, the 12, was 13.
# Tokens = rank + 3; with vocab_size 13, plot/story/the/was (13..16) become 2.
VOCAB_SIZE, MAXLEN = 13, 6
X_TRAIN = [
    [8, 2, 4, 4, 4, 9],     # neg 0: 1 the film was bad bad bad acting, pre-truncated (start cut)
    [7, 5, 2, 10, 12, 11],  # pos 0: 1 a good film a good story don't miss it, pre-truncated
    [0, 0, 0, 1, 4, 2],     # neg 1: 1 bad plot, pre-padded
    [0, 0, 1, 5, 6, 6],     # pos 1: 1 good 10 10
]
X_TEST = [
    [0, 0, 1, 4, 4, 8],     # neg 0: bad bad film
    [0, 1, 5, 8, 2, 2],     # pos 0: good film, then two words never seen in training
]


def cfg(path, **kw):
    return {"kind": "imdb", "archive": str(path), "vocab_size": VOCAB_SIZE, "maxlen": MAXLEN,
            "train_samples": None, "test_samples": None, **kw}


@pytest.fixture
def archive(tmp_path):
    return write_tar_gz(tmp_path / "aclImdb_v1.tar.gz", imdb_members(REVIEWS))


def test_words_the_keras_way():
    assert words(b"It's GREAT!<br /><br />10/10,end<br />Next caf\xc3\xa9") == \
        [b"it's", b"great", b"10", b"10", b"end", b"next", b"caf"]


def test_tokens_match_the_hand_computed_example(archive, tmp_path):
    shards = read_shards(prepare_dataset("imdb", cfg(archive), tmp_path / "out"))
    np.testing.assert_array_equal(shards.x_train, X_TRAIN)
    np.testing.assert_array_equal(shards.y_train, [0, 1, 0, 1])
    np.testing.assert_array_equal(shards.x_test, X_TEST)
    np.testing.assert_array_equal(shards.y_test, [0, 1])
    assert shards.x_train.dtype == np.int32 and shards.y_train.dtype == np.int32


def test_meta(archive, tmp_path):
    meta = json.loads(prepare_dataset("imdb-tiny", cfg(archive), tmp_path / "out").read_text())["meta"]
    assert {k: meta[k] for k in ("dataset", "kind", "num_classes", "vocab_size", "maxlen",
                                 "start_token", "oov_token", "index_from")} == \
        {"dataset": "imdb-tiny", "kind": "imdb", "num_classes": 2, "vocab_size": VOCAB_SIZE,
         "maxlen": MAXLEN, "start_token": 1, "oov_token": 2, "index_from": 3}
    assert meta["label_counts"] == {"train": [2, 2], "test": [1, 1]}
    assert meta["source"]["sha256"] == sha256_file(archive)
    assert meta["source"]["ranked_words"] == 13


def test_order_is_numeric_id_then_neg_before_pos(tmp_path):
    # Review (id, label) has 2*id + label + 1 words, so its row's length tells which it is.
    ids = [10, 2, 0, 1]
    reviews = [("train", name, i, 5, b"w " * (2 * i + label + 1))
               for i in ids for name, label in (("pos", 1), ("neg", 0))]
    reviews += [("test", "neg", 0, 1, b"w"), ("test", "pos", 0, 9, b"w")]
    path = write_tar_gz(tmp_path / "a.tar.gz", imdb_members(reviews))
    shards = read_shards(prepare_dataset("imdb", cfg(path, maxlen=32), tmp_path / "out"))
    lengths = (shards.x_train != 0).sum(axis=1) - 1
    expected = [(i, label) for i in sorted(ids) for label in (0, 1)]
    np.testing.assert_array_equal(lengths, [2 * i + label + 1 for i, label in expected])
    np.testing.assert_array_equal(shards.y_train, [label for _, label in expected])


def test_subset_is_a_prefix_ranked_over_the_whole_training_split(archive, tmp_path):
    full = read_shards(prepare_dataset("imdb", cfg(archive), tmp_path / "full"))
    part = read_shards(prepare_dataset("imdb", cfg(archive, train_samples=1, test_samples=1),
                                       tmp_path / "part"))
    np.testing.assert_array_equal(part.x_train, full.x_train[:1])
    np.testing.assert_array_equal(part.x_test, full.x_test[:1])
    with pytest.raises(DataError, match="test_samples"):
        prepare_dataset("imdb", cfg(archive, test_samples=3), tmp_path / "too-many")


def test_shared_token_functions():
    # Ranks 0 (unseen) and >= vocab_size - 3 map to OOV; START first; pre-pad/truncate.
    np.testing.assert_array_equal(ranks_to_tokens(np.array([1, 0, 6, 7]), 10), [1, 4, 2, 9, 2])
    np.testing.assert_array_equal(pad_sequences([np.array([5, 6, 7]), np.array([1])], 2),
                                  [[6, 7], [0, 1]])


def test_missing_archive_says_where_to_get_it(tmp_path):
    missing = tmp_path / "aclImdb_v1.tar.gz"
    with pytest.raises(DataError) as e:
        prepare_dataset("imdb", cfg(missing), tmp_path / "out")
    assert str(missing) in str(e.value) and "`archive`" in str(e.value)
    assert "https://ai.stanford.edu/~amaas/data/sentiment/" in str(e.value)


def test_truncated_archive_names_the_file(archive, tmp_path):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[:-4])
    with pytest.raises(DataError, match=re.escape(str(cut.resolve()))):
        prepare_dataset("imdb", cfg(cut), tmp_path / "out")


def test_missing_reviews_are_named(tmp_path):
    path = write_tar_gz(tmp_path / "a.tar.gz",
                        imdb_members([r for r in REVIEWS if r[:2] != ("test", "pos")]))
    with pytest.raises(DataError, match="aclImdb/test/pos/"):
        prepare_dataset("imdb", cfg(path), tmp_path / "out")


@pytest.mark.parametrize("key, value", [("vocab_size", 4), ("maxlen", 0), ("maxlen", "80")])
def test_bad_token_config_is_named(archive, tmp_path, key, value):
    with pytest.raises(DataError, match=key):
        prepare_dataset("imdb", cfg(archive, **{key: value}), tmp_path / "out")
