"""Synthetic stand-ins for CIFAR-10 and IMDB: same shapes and dtypes, deterministic from a
seed, generated in seconds, and learnable but not trivially so, so that quick studies
(CI, smoke runs) produce accuracies that mean something without the real archives.

synthetic-cifar: each class has a smooth random colour template (a coarse random grid,
bilinearly upsampled; part of it shared by all classes so that classes look alike). An
image is a random 32x32 window of its class's 40x40 template, mirrored with
probability 1/2, with random contrast and brightness and Gaussian pixel noise, clipped
to [0, 1].

synthetic-imdb: reviews of log-normal length whose filler words follow Zipf's law over
twice the vocabulary (so rare words fall out of vocabulary as in real text); each word
is, with a small probability, a sentiment word instead, taken from the review's class's
list most of the time and from the other class's list otherwise. Sentiment words are
mid-frequency ranks. Words are ranks, turned into tokens and padded by the very same
functions as the real IMDB (dlrosetta.data.tokens).

Randomness: one numpy Generator per purpose (class templates or word lists, training
split, test split), spawned from SeedSequence(seed), so the test split does not depend on
the number of training samples. Labels are balanced (a shuffled 0, 1, ..., K-1, 0, ...).
GENERATOR_VERSION goes into the shards' meta and changes with any change of output.

Twins: none (data is prepared once, in Python; every language reads the shards).
"""
from __future__ import annotations

import numpy as np

from dlrosetta.data import Dataset, require_int
from dlrosetta.data.tokens import INDEX_FROM, check_token_config, pad_sequences, ranks_to_tokens, token_meta

GENERATOR_VERSION = 1

# synthetic-cifar
NUM_CLASSES_CIFAR = 10
IMAGE = 32
TEMPLATE = 40            # template side; windows are shifted by up to TEMPLATE - IMAGE pixels
GRID = 5                 # coarse grid upsampled into a template (sets its smoothness)
SHARED = 0.5             # fraction of a template's variance common to all classes
AMPLITUDE = 0.18         # template standard deviation around mid-grey
CONTRAST = (0.6, 1.4)
BRIGHTNESS = 0.1
NOISE = 0.2
CHUNK = 4096             # images drawn per step: bounds temporaries for the full 50000

# synthetic-imdb
NUM_CLASSES_IMDB = 2
LENGTH_MEDIAN, LENGTH_SIGMA, LENGTH_RANGE = 120, 0.6, (10, 1000)
ZIPF_EXPONENT, ZIPF_OFFSET = 1.0, 2.7   # p(rank) ~ 1 / (rank + offset)^exponent
SENTIMENT_RATE = 0.05    # probability that a word is a sentiment word
SENTIMENT_AGREES = 0.85  # probability that a sentiment word matches the review's class
SENTIMENT_WORDS = 20     # per class
SENTIMENT_RANKS = (20, 1000)
MIN_VOCAB = SENTIMENT_RANKS[1] + INDEX_FROM


def _streams(seed: int, train_samples: int, test_samples: int) -> list[np.random.Generator]:
    """Generators for the class templates or word lists, the training and the test split."""
    require_int("train_samples", train_samples, 1)
    require_int("test_samples", test_samples, 1)
    require_int("seed", seed, 0)
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]


def _balanced_labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % num_classes).astype(np.int32)


def _upsample_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Linear interpolation from n_in grid points to n_out pixels (corners aligned)."""
    pos = np.linspace(0, n_in - 1, n_out)
    lo = np.minimum(pos.astype(int), n_in - 2)
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] = 1 - (pos - lo)
    m[np.arange(n_out), lo + 1] = pos - lo
    return m


def cifar_templates(rng: np.random.Generator) -> np.ndarray:
    """float32 [K, TEMPLATE, TEMPLATE, 3]: zero-mean smooth fields, std AMPLITUDE."""
    up = _upsample_matrix(TEMPLATE, GRID)
    grids = rng.standard_normal((NUM_CLASSES_CIFAR + 1, GRID, GRID, 3))
    grids = np.sqrt(1 - SHARED) * grids[1:] + np.sqrt(SHARED) * grids[:1]
    fields = np.einsum("hi,kijc,wj->khwc", up, grids, up)
    fields -= fields.mean(axis=(1, 2, 3), keepdims=True)
    fields *= AMPLITUDE / fields.std(axis=(1, 2, 3), keepdims=True)
    return fields.astype(np.float32)


def cifar_images(rng: np.random.Generator, templates: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = np.empty((len(labels), IMAGE, IMAGE, 3), np.float32)
    span = np.arange(IMAGE)
    for start in range(0, len(labels), CHUNK):
        y = labels[start:start + CHUNK]
        n = len(y)
        rows = rng.integers(0, TEMPLATE - IMAGE + 1, n)[:, None] + span
        cols = rng.integers(0, TEMPLATE - IMAGE + 1, n)[:, None] + span
        mirror = rng.random(n) < 0.5
        cols[mirror] = cols[mirror, ::-1]
        contrast = rng.uniform(*CONTRAST, n).astype(np.float32)[:, None, None, None]
        brightness = rng.uniform(-BRIGHTNESS, BRIGHTNESS, n).astype(np.float32)[:, None, None, None]
        x = templates[y[:, None, None], rows[:, :, None], cols[:, None, :]]
        x *= contrast
        x += 0.5 + brightness
        x += NOISE * rng.standard_normal(x.shape, dtype=np.float32)
        np.clip(x, 0.0, 1.0, out=out[start:start + n])
    return out


def cifar(train_samples: int, test_samples: int, seed: int) -> Dataset:
    templates_rng, train_rng, test_rng = _streams(seed, train_samples, test_samples)
    templates = cifar_templates(templates_rng)
    splits = []
    for rng, n in ((train_rng, train_samples), (test_rng, test_samples)):
        y = _balanced_labels(rng, n, NUM_CLASSES_CIFAR)
        splits += [cifar_images(rng, templates, y), y]
    return Dataset(*splits, {"num_classes": NUM_CLASSES_CIFAR,
                             "source": {"generator": "dlrosetta.data.synthetic.cifar",
                                        "generator_version": GENERATOR_VERSION, "seed": seed}})


def imdb_word_ranks(rng: np.random.Generator, labels: np.ndarray, sentiment: np.ndarray,
                    vocab_size: int) -> list[np.ndarray]:
    """One array of word ranks (1-based) per review; sentiment[c] lists class c's words."""
    lengths = np.clip(np.rint(rng.lognormal(np.log(LENGTH_MEDIAN), LENGTH_SIGMA, len(labels))),
                      *LENGTH_RANGE).astype(np.int64)
    total = int(lengths.sum())
    ranks = np.arange(1, 2 * vocab_size + 1)
    zipf = (ranks + ZIPF_OFFSET) ** -ZIPF_EXPONENT
    words = rng.choice(ranks, total, p=zipf / zipf.sum())
    word_class = np.repeat(labels, lengths)
    is_sentiment = rng.random(total) < SENTIMENT_RATE
    k = int(is_sentiment.sum())
    flip = rng.random(k) >= SENTIMENT_AGREES
    words[is_sentiment] = sentiment[word_class[is_sentiment] ^ flip, rng.integers(0, sentiment.shape[1], k)]
    return np.split(words, np.cumsum(lengths)[:-1])


def imdb(train_samples: int, test_samples: int, vocab_size: int, maxlen: int, seed: int) -> Dataset:
    # Sentiment words must be in the vocabulary: ranks up to SENTIMENT_RANKS[1].
    require_int("vocab_size", vocab_size, MIN_VOCAB)
    check_token_config(vocab_size, maxlen)
    words_rng, train_rng, test_rng = _streams(seed, train_samples, test_samples)
    sentiment = words_rng.choice(np.arange(*SENTIMENT_RANKS), (NUM_CLASSES_IMDB, SENTIMENT_WORDS),
                                 replace=False)
    splits = []
    for rng, n in ((train_rng, train_samples), (test_rng, test_samples)):
        y = _balanced_labels(rng, n, NUM_CLASSES_IMDB)
        reviews = imdb_word_ranks(rng, y, sentiment, vocab_size)
        splits += [pad_sequences((ranks_to_tokens(r, vocab_size) for r in reviews), maxlen), y]
    return Dataset(*splits, {"num_classes": NUM_CLASSES_IMDB, **token_meta(vocab_size, maxlen),
                             "source": {"generator": "dlrosetta.data.synthetic.imdb",
                                        "generator_version": GENERATOR_VERSION, "seed": seed}})
