"""Statistics of repeated runs, computed once, here (docs/statistics.md).

A measured quantity (steady epoch seconds, say) comes as one sample per steady epoch of
each repeat, and each repeat is a fresh process. Epochs of one process share its
placement, allocator state and compiled code, so they are not independent draws: the
interval comes from a two-level (hierarchical) bootstrap that resamples repeats, then
epochs within each drawn repeat, and takes the median of the pooled draw. With one
repeat it reduces to resampling that run's epochs, which shows run-to-run spread not at
all: the report says how many repeats each figure rests on.

Every bootstrap is seeded from what it describes, so a summary is reproducible.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95
#: A coefficient of variation above this marks a figure as noisy.
NOISY_CV = 0.10
#: A GEMM rate that moves by more than this over a study marks the machine as drifting.
DRIFT_LIMIT = 0.10
#: Consecutive probes summarised by their median when drift is judged (two per run, so
#: five runs): a sustained change is drift, a one-probe blip of a shared machine is not.
DRIFT_WINDOW = 10


@dataclass(frozen=True)
class Estimate:
    """Median of every sample with its bootstrap interval and spread."""
    median: float
    ci_low: float
    ci_high: float
    cv: float            # sample standard deviation over mean, all samples pooled
    min: float
    max: float
    repeats: int
    samples: int
    draws: np.ndarray    # the bootstrap medians, for ratios

    def overlaps(self, other: "Estimate") -> bool:
        """Whether the two intervals share a value: the two cannot be told apart."""
        return self.ci_low <= other.ci_high and other.ci_low <= self.ci_high


def seed_of(*key: object) -> int:
    return zlib.crc32("/".join(map(str, key)).encode())


def estimate(repeats: Sequence[Sequence[float]], seed: int,
             n_boot: int = BOOTSTRAP_SAMPLES) -> Estimate | None:
    """`repeats` holds each repeat's samples (repeats without samples are left out);
    None when there is no sample at all."""
    groups = [np.asarray(g, dtype=float) for g in repeats if len(g)]
    if not groups:
        return None
    pooled = np.concatenate(groups)
    lengths = np.array([len(g) for g in groups])
    padded = np.full((len(groups), lengths.max()), np.nan)
    for i, g in enumerate(groups):
        padded[i, : len(g)] = g
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(groups), size=(n_boot, len(groups)))
    picked_len = lengths[picked][..., None]
    within = np.floor(rng.random((n_boot, len(groups), lengths.max())) * picked_len).astype(int)
    draws = padded[picked[..., None], within]
    # A drawn repeat contributes as many samples as it has: positions past its length are NaN.
    draws[np.arange(lengths.max()) >= picked_len] = np.nan
    medians = np.nanmedian(draws.reshape(n_boot, -1), axis=1)
    low, high = np.quantile(medians, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    mean = pooled.mean()
    cv = float(pooled.std(ddof=1) / mean) if len(pooled) > 1 and mean else float("nan")
    return Estimate(median=float(np.median(pooled)), ci_low=float(low), ci_high=float(high), cv=cv,
                    min=float(pooled.min()), max=float(pooled.max()), repeats=len(groups),
                    samples=len(pooled), draws=medians)


def ratio(a: Estimate, b: Estimate) -> tuple[float, float, float]:
    """a's median over b's, with the percentile interval of the ratio of their
    (independent) bootstrap medians."""
    draws = a.draws / b.draws
    low, high = np.quantile(draws, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return a.median / b.median, float(low), float(high)


def change(rates: Sequence[float]) -> float:
    """(max - min) / max of some readings of a rate."""
    rates = np.asarray(rates, dtype=float)
    return float((rates.max() - rates.min()) / rates.max()) if len(rates) else float("nan")


def windows(rates: Sequence[float], size: int = DRIFT_WINDOW) -> list[tuple[int, int, float]]:
    """Consecutive windows of about `size` readings (time order) as (first index, end
    index, median); at least two where there are two readings, so that a start and an
    end exist."""
    n = len(rates)
    if n < 2:
        return [(0, n, float(np.median(rates)))] if n else []
    bounds = np.cumsum([0] + [len(c) for c in np.array_split(np.arange(n), max(2, n // size))])
    return [(int(a), int(b), float(np.median(rates[a:b]))) for a, b in zip(bounds[:-1], bounds[1:])]
