"""Membership-inference figures: ROC AUC and TPR at a fixed FPR of a membership score, and
their seeded bootstrap bounds over records.

A method scores every candidate record (higher: more likely a member of the target's
training set); the truth splits the scores into members and non-members.

- AUC is the Mann-Whitney probability that a member outscores a non-member, a tie counting
  one half (what `sklearn.metrics.roc_auc_score` gives).
- TPR at FPR f is the largest true-positive rate among the ROC curve's operating points
  (every distinct score a threshold, "member" when score >= threshold, as
  `sklearn.metrics.roc_curve(..., drop_intermediate=False)` lists them, with the point
  (0, 0)) whose false-positive rate is <= f. With k = floor(f x non-members) false
  positives allowed, it is the share of members scoring strictly above the (k + 1)-th
  highest non-member score (1 when k >= non-members).
- Two methods whose scores rank the candidates alike on every target (Spearman's rank
  correlation >= a threshold, 0.99 by default, on each) are one method under two names:
  `same_methods` says which earlier method each one repeats.
- Over several targets a method's figure is the mean of its per-target figures (each
  target weighs the same). The bootstrap resamples records with replacement, members and
  non-members apart within each target (stratified: every resample keeps each target's
  counts), recomputes the mean, and reports percentile one-sided bounds (numpy's PCG64
  stream from the seed: the same call gives the same numbers on every machine).

Pure functions of their inputs; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from harness.scoring.bootstrap import DEFAULT_RESAMPLES, BootstrapInterval

Group = tuple[npt.ArrayLike, npt.ArrayLike]  # (member scores, non-member scores)
_BLOCK_CELLS = 4_000_000  # resample-by-record cells handled at once per array


def _arrays(members: npt.ArrayLike, nonmembers: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(members, dtype=np.float64).ravel()
    n = np.asarray(nonmembers, dtype=np.float64).ravel()
    if m.size == 0 or n.size == 0:
        raise ValueError("need at least one member and one non-member score")
    if not (np.isfinite(m).all() and np.isfinite(n).all()):
        raise ValueError("scores must be finite")
    return m, n


def auc(members: npt.ArrayLike, nonmembers: npt.ArrayLike) -> float:
    """P(member score > non-member score) + P(tie) / 2."""
    m, n = _arrays(members, nonmembers)
    ordered = np.sort(n)
    below = np.searchsorted(ordered, m, side="left").astype(np.int64)
    upto = np.searchsorted(ordered, m, side="right").astype(np.int64)
    # twice the count, as integers: exact however many records
    twice = int(2 * below.sum() + (upto - below).sum())
    return twice / (2.0 * m.size * n.size)


def allowed_false_positives(fpr: float, nonmembers: int) -> int:
    """The most false positives a threshold may give at FPR <= fpr among `nonmembers`."""
    if not 0.0 <= fpr <= 1.0:
        raise ValueError("fpr must lie in [0, 1]")
    # fpr x n computed as a float may fall a hair under an integer it equals (0.001 x 3000)
    return min(nonmembers, math.floor(fpr * nonmembers * (1.0 + 1e-12) + 1e-12))


def tpr_at_fpr(members: npt.ArrayLike, nonmembers: npt.ArrayLike, fpr: float) -> float:
    """The largest TPR of the ROC curve at FPR <= fpr (see the module docstring)."""
    m, n = _arrays(members, nonmembers)
    k = allowed_false_positives(fpr, n.size)
    if k >= n.size:
        return 1.0
    cut = np.sort(n)[::-1][k]  # the (k + 1)-th highest non-member score
    return float(np.count_nonzero(m > cut)) / m.size


def nonmembers_needed(fpr: float) -> int:
    """The fewest non-members for which FPR <= fpr allows one false positive (1000 at
    0.1 %): with fewer, TPR at that FPR is TPR at zero false positives."""
    if not 0.0 < fpr <= 1.0:
        raise ValueError("fpr must lie in (0, 1]")
    return max(1, math.ceil(1.0 / fpr - 1e-9))


def _counts(rng: np.random.Generator, rows: int, size: int) -> np.ndarray:
    """rows x size: how often each record is drawn in each of `rows` resamples of `size`."""
    idx = rng.integers(0, size, size=(rows, size), dtype=np.int64)
    idx += (np.arange(rows, dtype=np.int64) * size)[:, None]
    return np.bincount(idx.ravel(), minlength=rows * size).reshape(rows, size)


def _auc_rows(m: np.ndarray, n: np.ndarray, w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """AUC of each resample: w (rows x members) and v (rows x non-members, in the order of
    `n`) are the draw counts."""
    order = np.argsort(n, kind="stable")
    ordered = n[order]
    cum = np.zeros((v.shape[0], n.size + 1), dtype=np.int64)
    np.cumsum(v[:, order], axis=1, out=cum[:, 1:])
    below = cum[:, np.searchsorted(ordered, m, side="left")]
    upto = cum[:, np.searchsorted(ordered, m, side="right")]
    twice = (w * (2 * below + (upto - below))).sum(axis=1)
    return np.asarray(twice / (2.0 * m.size * n.size), dtype=np.float64)


def _tpr_rows(m: np.ndarray, n: np.ndarray, w: np.ndarray, v: np.ndarray, fpr: float) -> np.ndarray:
    k = allowed_false_positives(fpr, n.size)
    if k >= n.size:
        return np.ones(v.shape[0])
    order = np.argsort(-n, kind="stable")  # highest first
    cum = np.cumsum(v[:, order], axis=1)
    cut = n[order][np.argmax(cum >= k + 1, axis=1)]  # each resample's (k + 1)-th highest
    m_order = np.argsort(m, kind="stable")
    m_sorted = m[m_order]
    cum_w = np.zeros((w.shape[0], m.size + 1), dtype=np.int64)
    np.cumsum(w[:, m_order], axis=1, out=cum_w[:, 1:])
    at_most = cum_w[np.arange(w.shape[0]), np.searchsorted(m_sorted, cut, side="right")]
    return np.asarray((m.size - at_most) / m.size, dtype=np.float64)


def _mean_interval(
    groups: Sequence[Group],
    statistic: str,
    fpr: float,
    confidence: float,
    resamples: int,
    seed: int,
) -> BootstrapInterval:
    if not groups:
        raise ValueError("no targets")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    arrays = [_arrays(m, n) for m, n in groups]

    def one(m: np.ndarray, n: np.ndarray) -> float:
        return auc(m, n) if statistic == "auc" else tpr_at_fpr(m, n, fpr)

    value = float(np.mean([one(m, n) for m, n in arrays]))
    rng = np.random.Generator(np.random.PCG64(seed))
    widest = max(m.size + n.size for m, n in arrays)
    block = max(1, _BLOCK_CELLS // widest)
    stats: list[np.ndarray] = []
    done = 0
    while done < resamples:
        rows = min(block, resamples - done)
        total = np.zeros(rows)
        for m, n in arrays:
            w = _counts(rng, rows, m.size)
            v = _counts(rng, rows, n.size)
            total += _auc_rows(m, n, w, v) if statistic == "auc" else _tpr_rows(m, n, w, v, fpr)
        stats.append(total / len(arrays))
        done += rows
    drawn = np.concatenate(stats)
    low = float(np.quantile(drawn, 1.0 - confidence))
    high = float(np.quantile(drawn, confidence))
    items = sum(m.size + n.size for m, n in arrays)
    return BootstrapInterval(value, low, high, confidence, resamples, seed, items)


def mean_auc_interval(
    groups: Sequence[Group],
    confidence: float,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> BootstrapInterval:
    """The mean over targets of the AUC, with stratified bootstrap bounds over records."""
    return _mean_interval(groups, "auc", 0.0, confidence, resamples, seed)


def mean_tpr_interval(
    groups: Sequence[Group],
    fpr: float,
    confidence: float,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> BootstrapInterval:
    """The mean over targets of TPR at FPR <= fpr, with stratified bootstrap bounds."""
    return _mean_interval(groups, "tpr", fpr, confidence, resamples, seed)


def rank_correlation(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Spearman's rank correlation of two score vectors over the same records (ties take
    their mean rank); 0 when either is constant."""
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError("the score vectors differ in length")
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    sx, sy = float(rx.std()), float(ry.std())
    if sx == 0.0 or sy == 0.0:
        return 0.0
    return float(np.mean((rx - rx.mean()) * (ry - ry.mean())) / (sx * sy))


def same_methods(
    scores: Mapping[str, Sequence[npt.ArrayLike]], threshold: float = 0.99
) -> dict[str, str | None]:
    """For each method (in the order given; its score vector per target, the targets in
    one order for all), the first earlier method it repeats (rank correlation >=
    `threshold` on every target), or None when it is a method of its own."""
    out: dict[str, str | None] = {}
    own: list[str] = []
    for name, vectors in scores.items():
        out[name] = next(
            (
                other
                for other in own
                if all(
                    rank_correlation(a, b) >= threshold
                    for a, b in zip(vectors, scores[other], strict=True)
                )
            ),
            None,
        )
        if out[name] is None:
            own.append(name)
    return out
