"""Data sets -> shards: the real CIFAR-10 and IMDB archives and their synthetic stand-ins.

Data is prepared once, by the orchestrator, in Python (dlrosetta.data.prepare); every
stack then reads the same npy shards (docs/shards.md).

Twins: none; the other languages only read the result (r/R/shards.R, julia/src/shards.jl).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


class DataError(Exception):
    """A data set cannot be prepared: missing or corrupt archive, or a bad config."""


def require_int(key: str, value: Any, minimum: int, maximum: Optional[int] = None) -> int:
    """A config value that must be an integer in [minimum, maximum], or a DataError naming it."""
    if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
            or (maximum is not None and value > maximum)):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise DataError(f"{key} must be an integer {bound}, got {value!r}")
    return value


@dataclass(frozen=True)
class Dataset:
    """The four arrays of a data set plus the meta keys its source contributes
    (num_classes, source, and for tokens vocab_size/maxlen/start_token/...)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
