"""Biometric error rates from comparison scores (ISO/IEC 19795-1 vocabulary) and
presentation-attack detection rates (ISO/IEC 30107-3). Pure functions, no I/O.

Convention: a higher score means more similar (verification) or more bona fide (attack
detection); a comparison is a match, a presentation is accepted as bona fide, when its
score is >= the threshold. So at threshold t:

- FMR(t)  = impostor scores >= t / impostor comparisons   (false match rate)
- FNMR(t) = genuine scores < t / genuine comparisons        (false non-match rate)
- APCER(t) per attack species = attack scores >= t / attacks of that species
- BPCER(t) = bona fide scores < t / bona fide presentations

Every threshold sweep sorts each score set once and counts with `searchsorted` and one
cumulative sum, so the full DET curve of 1e7 scores costs little more than a sort. Counts
are returned beside rates, so the exact (Clopper-Pearson) bounds of harness.stats can be
taken on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def _scores(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{what}: a flat list of scores is expected")
    if array.size == 0:
        raise ValueError(f"{what}: no scores")
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ValueError(f"{what}: score {bad} is not a finite number ({array[bad]})")
    return np.sort(array)


def _distinct(sorted_values: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array, in one linear pass."""
    keep = np.empty(sorted_values.size, dtype=bool)
    keep[:1] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=keep[1:])
    return sorted_values[keep]


def at_or_above(sorted_scores: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    """How many of the (sorted) scores are >= each threshold."""
    return sorted_scores.size - np.searchsorted(sorted_scores, thresholds, side="left")


@dataclass(frozen=True)
class ErrorCurve:
    """FMR and FNMR at every distinct score used as the threshold (ascending), with the
    counts behind them: a DET curve (FNMR against FMR) or, with 1 - FNMR, a ROC curve."""

    thresholds: np.ndarray
    false_matches: np.ndarray  # impostor scores >= threshold
    false_non_matches: np.ndarray  # genuine scores < threshold
    impostors: int
    genuines: int

    @property
    def fmr(self) -> np.ndarray:
        return self.false_matches / self.impostors

    @property
    def fnmr(self) -> np.ndarray:
        return self.false_non_matches / self.genuines


def error_curve(
    genuine: Sequence[float] | np.ndarray, impostor: Sequence[float] | np.ndarray
) -> ErrorCurve:
    """FMR and FNMR at every distinct score of either set taken as the threshold.

    Each set is sorted once. With few distinct scores (rounded ones), each set is searched
    for each of them; else the smaller set's elements find their places among the larger
    one's with one `searchsorted`, which lays out the merged order without a second sort;
    one cumulative count over it then gives, at the first occurrence of every distinct
    score, how many genuine and impostor scores lie below it."""
    gen = _scores(genuine, "genuine")
    imp = _scores(impostor, "impostor")
    total = gen.size + imp.size
    gen_distinct, imp_distinct = _distinct(gen), _distinct(imp)
    if gen_distinct.size + imp_distinct.size <= total // 8:
        # few distinct scores (rounded ones): count below each with searchsorted alone
        thresholds = _distinct(np.sort(np.concatenate([gen_distinct, imp_distinct])))
        return ErrorCurve(
            thresholds,
            at_or_above(imp, thresholds),
            gen.size - at_or_above(gen, thresholds),
            imp.size,
            gen.size,
        )
    small, large = (gen, imp) if gen.size <= imp.size else (imp, gen)
    places = np.searchsorted(large, small, side="left")
    places += np.arange(small.size, dtype=places.dtype)  # each one's index in the merge
    from_small = np.zeros(total, dtype=bool)
    from_small[places] = True
    merged = np.empty(total, dtype=np.float64)
    merged[places] = small
    merged[~from_small] = large
    first = np.empty(total, dtype=bool)  # the first occurrence of each distinct score
    first[:1] = True
    np.not_equal(merged[1:], merged[:-1], out=first[1:])
    starts = np.flatnonzero(first)  # = how many scores lie below each distinct score
    small_below = from_small.astype(np.int64)
    np.cumsum(small_below, out=small_below)
    small_below -= from_small  # small-set scores strictly before each position
    small_below = small_below[starts]
    large_below = starts - small_below
    gen_below, imp_below = (
        (small_below, large_below) if small is gen else (large_below, small_below)
    )
    return ErrorCurve(merged[starts], imp.size - imp_below, gen_below, imp.size, gen.size)


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    false_matches: int
    impostors: int
    false_non_matches: int
    genuines: int
    chosen: str  # how the threshold was set: "declared" or "chosen on the impostor scores..."

    @property
    def fmr(self) -> float:
        return self.false_matches / self.impostors

    @property
    def fnmr(self) -> float:
        return self.false_non_matches / self.genuines


def at_threshold(
    genuine: Sequence[float] | np.ndarray,
    impostor: Sequence[float] | np.ndarray,
    threshold: float,
    chosen: str = "declared by the submission",
) -> OperatingPoint:
    """The counts of false matches and false non-matches at a given threshold."""
    if not math.isfinite(threshold):
        raise ValueError("the threshold is not a finite number")
    gen = _scores(genuine, "genuine")
    imp = _scores(impostor, "impostor")
    return OperatingPoint(
        float(threshold),
        int(at_or_above(imp, threshold)),
        imp.size,
        int(gen.size - at_or_above(gen, threshold)),
        gen.size,
        chosen,
    )


def threshold_for_fmr(
    genuine: Sequence[float] | np.ndarray,
    impostor: Sequence[float] | np.ndarray,
    max_fmr: float,
) -> OperatingPoint:
    """The lowest threshold whose FMR is at most `max_fmr` (never the "nearest" one above
    it): at most floor(max_fmr x impostors) impostor scores may be >= it. Between tied
    impostor scores no threshold separates them, so the threshold is the next representable
    number above the highest impostor score that must be rejected."""
    if not 0.0 <= max_fmr < 1.0:
        raise ValueError("max_fmr must lie in [0, 1)")
    gen = _scores(genuine, "genuine")
    imp = _scores(impostor, "impostor")
    allowed = math.floor(max_fmr * imp.size + 1e-9)
    # the impostor scores that must fall below the threshold: all but the `allowed` highest
    rejected_top = imp[imp.size - allowed - 1]  # the highest score that must be rejected
    threshold = float(np.nextafter(rejected_top, np.inf))
    # ties: every impostor equal to rejected_top is now rejected too; count what remains
    point = at_threshold(gen, imp, threshold)
    assert point.false_matches <= allowed
    return OperatingPoint(
        threshold,
        point.false_matches,
        point.impostors,
        point.false_non_matches,
        point.genuines,
        f"chosen on the impostor scores: the lowest threshold with FMR <= {max_fmr:g} "
        f"(at most {allowed} of {imp.size} impostor comparisons at or above it)",
    )


@dataclass(frozen=True)
class AttackRates:
    threshold: float
    apcer: dict[str, tuple[int, int]]  # species -> (attacks accepted, attacks)
    bpcer: tuple[int, int]  # (bona fide rejected, bona fide presentations)

    @property
    def worst_species(self) -> str:
        return max(self.apcer, key=lambda s: (self.apcer[s][0] / self.apcer[s][1], s))


def attack_rates(
    bona_fide: Sequence[float] | np.ndarray,
    attacks: Mapping[str, Sequence[float] | np.ndarray],
    threshold: float,
) -> AttackRates:
    """APCER per attack-instrument species and BPCER at a threshold (accept: >= it)."""
    if not attacks:
        raise ValueError("no attack species")
    live = _scores(bona_fide, "bona fide")
    apcer: dict[str, tuple[int, int]] = {}
    for species, scores in sorted(attacks.items()):
        sorted_attacks = _scores(scores, f"attack species {species!r}")
        apcer[species] = (int(at_or_above(sorted_attacks, threshold)), sorted_attacks.size)
    rejected = int(live.size - at_or_above(live, threshold))
    return AttackRates(float(threshold), apcer, (rejected, live.size))


def bpcer_at_apcer(
    bona_fide: Sequence[float] | np.ndarray,
    attacks: Mapping[str, Sequence[float] | np.ndarray],
    max_apcer: float = 0.05,
) -> AttackRates:
    """BPCER at the lowest threshold where every species' APCER is at most `max_apcer`
    (BPCER20 for 5 %, ISO/IEC 30107-3), with the rates there."""
    if not attacks:
        raise ValueError("no attack species")
    threshold = -math.inf
    for scores in attacks.values():
        point = threshold_for_fmr([0.0], scores, max_apcer)  # the same rule per species
        threshold = max(threshold, point.threshold)
    return attack_rates(bona_fide, attacks, threshold)
