"""Token sequences the Keras way (docs/shards.md): one implementation for the real IMDB
loader and the synthetic generator, so both produce sequences by the same rules.

  words     lower-case, "<br />" removed (replaced by a space, so the words on either
            side stay apart), words are runs of [a-z0-9'].
            Reviews are handled as UTF-8 bytes: lower-casing is ASCII-only and every
            non-ASCII byte separates words (no non-ASCII letter can be part of a word).
  ranks     1 = the most frequent word of the training split, ties alphabetical;
            rank 0 stands for a word the ranking never saw (it occurs only in test).
  tokens    START (1), then rank + INDEX_FROM (so the most frequent word is 4), with
            OOV (2) for unranked words and for tokens >= vocab_size.
  padding   pre-pad with 0, pre-truncate: the last maxlen tokens are kept
            (Keras pad_sequences defaults), int32 [n, maxlen].

(The module is not called tokenize.py: with its folder on sys.path that name would
shadow the standard library's tokenize, which linecache, and so every traceback, uses.)

Twins: none (data is prepared once, in Python; every language reads the shards).
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

import numpy as np

from dlrosetta.data import require_int

PAD = 0
START_TOKEN = 1
OOV_TOKEN = 2
INDEX_FROM = 3

_WORD = re.compile(rb"[a-z0-9']+")


def words(text: bytes) -> list[bytes]:
    return _WORD.findall(text.lower().replace(b"<br />", b" "))


def frequency_ranks(counts: np.ndarray, vocabulary: Sequence[bytes]) -> np.ndarray:
    """rank[i] of word i (vocabulary[i], seen counts[i] times in training): 1 for the most
    frequent, ties in alphabetical order; 0 for words never seen in training."""
    seen = np.flatnonzero(counts)
    by_rank = sorted(seen.tolist(), key=lambda i: (-int(counts[i]), vocabulary[i]))
    ranks = np.zeros(len(counts), np.int64)
    ranks[by_rank] = np.arange(1, len(by_rank) + 1)
    return ranks


def ranks_to_tokens(ranks: np.ndarray, vocab_size: int) -> np.ndarray:
    """One sequence of word ranks -> int32 tokens, START first (see module docstring)."""
    tokens = np.asarray(ranks, np.int64) + INDEX_FROM
    tokens[(np.asarray(ranks) == 0) | (tokens >= vocab_size)] = OOV_TOKEN
    return np.concatenate([[START_TOKEN], tokens]).astype(np.int32)


def pad_sequences(sequences: Iterable[np.ndarray], maxlen: int) -> np.ndarray:
    """Pre-pad with PAD / pre-truncate to int32 [n, maxlen]."""
    sequences = list(sequences)
    out = np.full((len(sequences), maxlen), PAD, np.int32)
    for row, seq in zip(out, sequences):
        tail = np.asarray(seq)[-maxlen:]
        row[maxlen - len(tail):] = tail
    return out


def token_meta(vocab_size: int, maxlen: int) -> dict[str, int]:
    """The shard meta keys every token data set carries (docs/shards.md)."""
    return {"vocab_size": int(vocab_size), "maxlen": int(maxlen), "start_token": START_TOKEN,
            "oov_token": OOV_TOKEN, "index_from": INDEX_FROM}


def check_token_config(vocab_size, maxlen) -> None:
    require_int("vocab_size", vocab_size, INDEX_FROM + 2)  # the least with room for a word
    require_int("maxlen", maxlen, 1)
