"""1:N identification error rates from candidate lists (ISO/IEC 19795-1 and NIST FRVT 1:N
vocabulary). Pure functions, no I/O.

A *mated* search has its subject enrolled in the gallery, a *non-mated* one does not. Each
search returns at most R candidates, best first, each with a score (higher = more similar).
At threshold t:

- FNIR(t) = mated searches whose mate (a gallery entry of their subject) is not among the
  returned candidates with score >= t / mated searches;
- FPIR(t) = non-mated searches returning any candidate with score >= t / non-mated
  searches;
- the rank-k identification rate = mated searches whose mate is at rank <= k / mated
  searches (a mate tied in score with a non-mate ranks behind it: ties count against).

A search the system failed is reduced to two numbers before any rate is taken:

- mated: the score of its mate (NaN when the mate was not returned, the search failed to
  acquire or the answer was malformed: a miss at every threshold) and its rank (0: none);
- non-mated: its top score (NaN when no candidate was returned or the search failed to
  acquire: never a false positive, as ISO/IEC 19795-1 and FRVT count it; +inf for a
  malformed answer: a false positive at every threshold, counted against the system).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Outcome = Literal["answered", "failure_to_acquire", "failed"]


@dataclass(frozen=True)
class Search:
    """One search's outcome: `is_mate[i]` says whether candidate i (best first) is a gallery
    entry of the search's subject, `scores[i]` its score (a non-increasing sequence)."""

    mated: bool
    outcome: Outcome
    is_mate: tuple[bool, ...] = ()
    scores: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.is_mate) != len(self.scores):
            raise ValueError("is_mate and scores differ in length")
        if self.outcome != "answered" and self.scores:
            raise ValueError("a failed search has no candidates")
        if not all(math.isfinite(s) for s in self.scores):
            raise ValueError("candidate scores must be finite")
        if any(b > a for a, b in zip(self.scores, self.scores[1:], strict=False)):
            raise ValueError("candidates must be ordered best first (non-increasing scores)")


def mate_rank(search: Search) -> tuple[int, float]:
    """(rank, score) of the best-scoring mate among the candidates, ties counted against:
    the rank is 1 + the non-mate candidates scoring at least as high. (0, NaN) when no mate
    was returned."""
    pairs = list(zip(search.is_mate, search.scores, strict=True))
    for mate, score in pairs:
        if mate:
            return 1 + sum(1 for m, s in pairs if not m and s >= score), score
    return 0, math.nan


@dataclass(frozen=True)
class Reduced:
    """The searches as arrays: mated ones by (rank, mate score), non-mated by top score."""

    mate_ranks: np.ndarray  # int, 0 = the mate was not returned
    mate_scores: np.ndarray  # float, NaN = the mate was not returned
    nonmated_top: np.ndarray  # float, NaN = no candidate, +inf = a malformed answer
    mated_failed: int  # mated searches that failed to acquire or were malformed
    nonmated_fta: int  # non-mated searches that failed to acquire
    nonmated_failed: int  # non-mated searches with a malformed answer

    @property
    def mated(self) -> int:
        return int(self.mate_scores.size)

    @property
    def nonmated(self) -> int:
        return int(self.nonmated_top.size)


def reduce(searches: Sequence[Search]) -> Reduced:
    ranks: list[int] = []
    mate_scores: list[float] = []
    tops: list[float] = []
    mated_failed = nonmated_fta = nonmated_failed = 0
    for s in searches:
        if s.mated:
            rank, score = mate_rank(s)
            ranks.append(rank)
            mate_scores.append(score)
            mated_failed += s.outcome != "answered"
        elif s.outcome == "failed":
            tops.append(math.inf)
            nonmated_failed += 1
        else:
            tops.append(s.scores[0] if s.scores else math.nan)
            nonmated_fta += s.outcome == "failure_to_acquire"
    return Reduced(
        np.asarray(ranks, dtype=np.int64),
        np.asarray(mate_scores, dtype=np.float64),
        np.asarray(tops, dtype=np.float64),
        mated_failed,
        nonmated_fta,
        nonmated_failed,
    )


def rank_hits(reduced: Reduced, max_rank: int) -> list[int]:
    """For k = 1..max_rank: the mated searches whose mate is at rank <= k (a CMC curve's
    counts)."""
    ranks = reduced.mate_ranks[reduced.mate_ranks > 0]
    return [int((ranks <= k).sum()) for k in range(1, max_rank + 1)]


@dataclass(frozen=True)
class IdentificationPoint:
    """The counts at one threshold. `threshold` -inf: every returned candidate counts; +inf:
    none does."""

    threshold: float
    false_positives: int  # non-mated searches with a candidate >= threshold
    nonmated: int
    misses: int  # mated searches whose mate is not returned >= threshold
    mated: int
    chosen: str

    @property
    def fpir(self) -> float:
        return self.false_positives / self.nonmated

    @property
    def fnir(self) -> float:
        return self.misses / self.mated


def _count_at_or_above(values: np.ndarray, threshold: float) -> int:
    """Entries >= threshold (NaN never is)."""
    with np.errstate(invalid="ignore"):
        return int((values >= threshold).sum())


def at_threshold(
    reduced: Reduced, threshold: float, chosen: str = "declared by the submission"
) -> IdentificationPoint:
    if math.isnan(threshold):
        raise ValueError("the threshold is not a number")
    return IdentificationPoint(
        float(threshold),
        _count_at_or_above(reduced.nonmated_top, threshold),
        reduced.nonmated,
        reduced.mated - _count_at_or_above(reduced.mate_scores, threshold),
        reduced.mated,
        chosen,
    )


def threshold_for_fpir(reduced: Reduced, max_fpir: float) -> IdentificationPoint:
    """The lowest threshold whose FPIR is at most `max_fpir` (never the "nearest"): at most
    floor(max_fpir x non-mated searches) of them may return a candidate >= it. Tied top
    scores are rejected together (the threshold is the next representable number above the
    highest top score that must be rejected), the rule of
    `harness.scoring.biometrics.threshold_for_fmr` applied to the non-mated top scores. When
    the malformed non-mated answers alone exceed the allowance no threshold reaches it
    (+inf: nothing is accepted, every mated search is a miss)."""
    if not 0.0 <= max_fpir < 1.0:
        raise ValueError("max_fpir must lie in [0, 1)")
    n = reduced.nonmated
    if n == 0:
        raise ValueError("no non-mated searches")
    if reduced.mated == 0:
        raise ValueError("no mated searches")
    allowed = math.floor(max_fpir * n + 1e-9)
    tops = reduced.nonmated_top
    always = int(np.isposinf(tops).sum())
    finite = np.sort(tops[np.isfinite(tops)])
    rule = (
        f"the lowest threshold with FPIR <= {max_fpir:g} (at most {allowed} of {n} "
        "non-mated searches with a candidate at or above it)"
    )
    if always > allowed:
        threshold = math.inf
        chosen = (
            f"no threshold reaches FPIR <= {max_fpir:g}: {always} malformed answers to "
            f"non-mated searches count as false positives at every threshold (at most "
            f"{allowed} allowed); no candidate is accepted"
        )
    elif allowed - always >= finite.size:
        threshold = -math.inf
        chosen = f"{rule}: every returned candidate (no threshold is needed)"
    else:
        rejected_top = finite[finite.size - (allowed - always) - 1]
        threshold = float(np.nextafter(rejected_top, np.inf))
        chosen = f"chosen on the non-mated searches' top scores: {rule}"
    point = at_threshold(reduced, threshold, chosen)
    assert threshold == math.inf or point.false_positives <= allowed
    return point


@dataclass(frozen=True)
class IdentificationCurve:
    """FPIR and FNIR counts at every distinct finite score taken as the threshold
    (ascending): the identification DET curve."""

    thresholds: np.ndarray
    false_positives: np.ndarray
    misses: np.ndarray
    nonmated: int
    mated: int


def identification_curve(reduced: Reduced) -> IdentificationCurve:
    mates = np.sort(reduced.mate_scores[np.isfinite(reduced.mate_scores)])
    tops_all = reduced.nonmated_top
    tops = np.sort(tops_all[np.isfinite(tops_all)])
    always = int(np.isposinf(tops_all).sum())
    thresholds = np.unique(np.concatenate([mates, tops]))
    fp = always + tops.size - np.searchsorted(tops, thresholds, side="left")
    hits = mates.size - np.searchsorted(mates, thresholds, side="left")
    return IdentificationCurve(
        thresholds, fp.astype(np.int64), reduced.mated - hits, reduced.nonmated, reduced.mated
    )


def thin(curve: IdentificationCurve, points: int) -> list[dict[str, float | int]]:
    """At most `points` entries of the curve (evenly spaced by index, both ends kept)."""
    size = curve.thresholds.size
    if size == 0:
        return []
    keep = np.unique(np.linspace(0, size - 1, num=min(points, size)).round().astype(np.int64))
    return [
        {
            "threshold": float(curve.thresholds[k]),
            "false_positives": int(curve.false_positives[k]),
            "misses": int(curve.misses[k]),
        }
        for k in keep
    ]


__all__ = [
    "IdentificationCurve",
    "IdentificationPoint",
    "Reduced",
    "Search",
    "at_threshold",
    "identification_curve",
    "mate_rank",
    "rank_hits",
    "reduce",
    "thin",
    "threshold_for_fpir",
]
