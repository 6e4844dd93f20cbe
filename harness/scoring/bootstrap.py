"""Seeded bootstrap over items (utterances, sentences, subjects) for corpus-level ratios.

A corpus rate is sum(numerators) / sum(denominators) (edits over reference words, for
WER); the bootstrap resamples items with replacement and recomputes that ratio, never a
mean of per-item rates. The paired test resamples the same items for two systems and
reports the interval of the difference and the share of resamples in which the sign
flips. Pure functions of their inputs and the seed: the same call gives the same numbers
on every machine (numpy's PCG64 stream).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000


@dataclass(frozen=True)
class BootstrapInterval:
    value: float  # the statistic on the whole set
    low: float  # one-sided lower bound at `confidence` (the 1 - confidence quantile)
    high: float  # one-sided upper bound at `confidence`
    confidence: float
    resamples: int
    seed: int
    items: int

    @property
    def method(self) -> str:
        return (
            f"bootstrap over {self.items} items, {self.resamples} resamples, seed {self.seed}, "
            "percentile bounds"
        )


@dataclass(frozen=True)
class PairedBootstrap:
    difference: float  # a - b on the whole set
    low: float  # one-sided lower bound of a - b
    high: float  # one-sided upper bound of a - b
    p_value: float  # two-sided: share of resampled differences on the other side of 0, x2
    significant: bool  # the interval [low, high] excludes 0
    confidence: float
    resamples: int
    seed: int
    items: int


_BLOCK_ITEMS = 1_000_000  # resampled indices drawn at once (4 MB of int32)


def _resampled_ratios(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], resamples: int, seed: int
) -> list[np.ndarray]:
    """For each (numerators, denominators) pair, the ratio of sums in every resample; the
    same items are drawn for every pair (paired), in blocks of resamples so memory stays
    small whatever the set's size."""
    items = len(pairs[0][0])
    if items <= 0:
        raise ValueError("no items to resample")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    rng = np.random.Generator(np.random.PCG64(seed))
    block = max(1, _BLOCK_ITEMS // items)
    out: list[list[np.ndarray]] = [[] for _ in pairs]
    done = 0
    while done < resamples:
        rows = min(block, resamples - done)
        idx = rng.integers(0, items, size=(rows, items), dtype=np.int32)
        for k, (num, den) in enumerate(pairs):
            numer = np.take(num, idx).sum(axis=1, dtype=np.float64)
            denom = np.take(den, idx).sum(axis=1, dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[k].append(np.where(denom > 0, numer / np.where(denom > 0, denom, 1), np.nan))
        done += rows
    return [np.concatenate(parts) for parts in out]


def _as_arrays(
    numerators: Sequence[float], denominators: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    # integer counts (edits, words) stay integers: gathering 4-byte items is faster
    num, den = np.asarray(numerators), np.asarray(denominators)
    if (
        num.dtype.kind in "iub"
        and den.dtype.kind in "iub"
        and max(
            int(np.abs(num).sum()) if num.size else 0, int(np.abs(den).sum()) if den.size else 0
        )
        < 2**31
    ):
        num, den = num.astype(np.int32), den.astype(np.int32)
    else:
        num, den = num.astype(np.float64), den.astype(np.float64)
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError("numerators and denominators differ in length")
    if not (np.isfinite(num).all() and np.isfinite(den).all()):
        raise ValueError("non-finite numerator or denominator")
    if den.sum() <= 0:
        raise ValueError("the denominators sum to zero")
    return num, den


def ratio_interval(
    numerators: Sequence[float],
    denominators: Sequence[float],
    confidence: float,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> BootstrapInterval:
    """sum(numerators) / sum(denominators) with one-sided percentile bounds from a seeded
    bootstrap over items (resamples whose denominators sum to zero are dropped)."""
    num, den = _as_arrays(numerators, denominators)
    (stats,) = _resampled_ratios([(num, den)], resamples, seed)
    stats = stats[np.isfinite(stats)]
    value = float(num.sum() / den.sum())
    low = float(np.quantile(stats, 1.0 - confidence)) if stats.size else value
    high = float(np.quantile(stats, confidence)) if stats.size else value
    return BootstrapInterval(value, low, high, confidence, resamples, seed, len(num))


def paired_ratio_test(
    numerators_a: Sequence[float],
    numerators_b: Sequence[float],
    denominators: Sequence[float],
    confidence: float,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    denominators_b: Sequence[float] | None = None,
) -> PairedBootstrap:
    """Paired bootstrap of the difference of two corpus ratios on the same items: each
    resample draws the same items for both systems (`denominators_b` where B's differ, as
    for a noised copy of a test set). The difference is significant when its two-sided
    interval at `confidence` excludes zero."""
    num_a, den_a = _as_arrays(numerators_a, denominators)
    num_b, den_b = _as_arrays(
        numerators_b, denominators if denominators_b is None else denominators_b
    )
    if num_a.shape != num_b.shape:
        raise ValueError("the two systems answered different numbers of items")
    ratios_a, ratios_b = _resampled_ratios([(num_a, den_a), (num_b, den_b)], resamples, seed)
    diffs = ratios_a - ratios_b
    diffs = diffs[np.isfinite(diffs)]
    value = float(num_a.sum() / den_a.sum() - num_b.sum() / den_b.sum())
    if not diffs.size:
        return PairedBootstrap(
            value, value, value, 1.0, False, confidence, resamples, seed, len(num_a)
        )
    tail = (1.0 - confidence) / 2.0
    low = float(np.quantile(diffs, tail))
    high = float(np.quantile(diffs, 1.0 - tail))
    other_side = float(np.mean(diffs <= 0)) if value > 0 else float(np.mean(diffs >= 0))
    p_value = min(1.0, 2.0 * other_side)
    return PairedBootstrap(
        value, low, high, p_value, low > 0 or high < 0, confidence, resamples, seed, len(num_a)
    )
