"""harness.scoring.identification against hand counts and a numpy brute force, and its
threshold rule against harness.scoring.biometrics.threshold_for_fmr."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.scoring.biometrics import threshold_for_fmr
from harness.scoring.identification import (
    Search,
    at_threshold,
    identification_curve,
    mate_rank,
    rank_hits,
    reduce,
    threshold_for_fpir,
)


def test_mate_rank_counts_ties_against_the_system() -> None:
    assert mate_rank(Search(True, "answered", (True, False), (0.9, 0.5))) == (1, 0.9)
    assert mate_rank(Search(True, "answered", (False, True), (0.9, 0.5))) == (2, 0.5)
    # a non-mate with the mate's score ranks ahead of it, wherever it is listed
    assert mate_rank(Search(True, "answered", (True, False), (0.7, 0.7))) == (2, 0.7)
    rank, score = mate_rank(Search(True, "answered", (False, False), (0.7, 0.6)))
    assert rank == 0 and math.isnan(score)


def test_a_search_refuses_unsorted_or_non_finite_candidates() -> None:
    with pytest.raises(ValueError, match="best first"):
        Search(True, "answered", (True, False), (0.5, 0.9))
    with pytest.raises(ValueError, match="finite"):
        Search(False, "answered", (False,), (math.nan,))
    with pytest.raises(ValueError, match="no candidates"):
        Search(False, "failed", (False,), (0.5,))


# hand-made: 4 mated searches, 3 non-mated
#   m1 mate at rank 1 (0.9); m2 mate at rank 2 (0.6, a non-mate 0.8 above it);
#   m3 failed to acquire; m4 mate not returned
#   n1 top 0.7; n2 returned nothing; n3 malformed (a false positive at every threshold)
SEARCHES = [
    Search(True, "answered", (True, False), (0.9, 0.4)),
    Search(True, "answered", (False, True), (0.8, 0.6)),
    Search(True, "failure_to_acquire"),
    Search(True, "answered", (False,), (0.95,)),
    Search(False, "answered", (False, False), (0.7, 0.3)),
    Search(False, "answered"),
    Search(False, "failed"),
]


def test_hand_counts() -> None:
    r = reduce(SEARCHES)
    assert (r.mated, r.nonmated, r.mated_failed, r.nonmated_fta, r.nonmated_failed) == (
        4,
        3,
        1,
        0,
        1,
    )
    assert rank_hits(r, 3) == [1, 2, 2]
    p = at_threshold(r, 0.65)
    # mates >= 0.65: only m1 -> 3 misses; non-mated >= 0.65: n1 and the malformed n3
    assert (p.misses, p.mated, p.false_positives, p.nonmated) == (3, 4, 2, 3)
    p = at_threshold(r, 0.5)
    assert (p.misses, p.false_positives) == (2, 2)
    p = at_threshold(r, -math.inf)  # every returned candidate counts
    assert (p.misses, p.false_positives) == (2, 2)


def test_threshold_for_fpir_by_hand() -> None:
    r = reduce(SEARCHES)
    # FPIR <= 0.34 allows floor(1.02) = 1 false positive: the malformed one; n1 (0.7) must go
    p = threshold_for_fpir(r, 0.34)
    assert p.threshold == np.nextafter(0.7, np.inf) and p.false_positives == 1 and p.misses == 3
    # FPIR <= 0.7 allows 2: every returned candidate may count
    p = threshold_for_fpir(r, 0.7)
    assert p.threshold == -math.inf and p.false_positives == 2 and p.misses == 2
    # FPIR <= 0.1 allows none, yet the malformed answer is one: no threshold reaches it
    p = threshold_for_fpir(r, 0.1)
    assert p.threshold == math.inf and p.misses == 4 and "no threshold" in p.chosen


@pytest.mark.parametrize("seed", range(5))
def test_threshold_rule_matches_threshold_for_fmr_and_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # scores on a coarse grid, so ties are frequent
    tops = rng.integers(0, 30, size=200) / 10.0
    mates = rng.integers(0, 40, size=150) / 10.0
    searches = [Search(False, "answered", (False,), (float(t),)) for t in tops]
    searches += [Search(True, "answered", (True,), (float(m),)) for m in mates]
    r = reduce(searches)
    for x in (0.0, 0.005, 0.01, 0.05, 0.1, 0.5):
        ours = threshold_for_fpir(r, x)
        theirs = threshold_for_fmr(mates, tops, x)
        if ours.threshold != -math.inf:
            assert ours.threshold == theirs.threshold
            assert ours.false_positives == theirs.false_matches
            assert ours.misses == theirs.false_non_matches
        # brute force: the lowest candidate threshold (every distinct score, nudged) with
        # FPIR <= x; none lower exists
        allowed = math.floor(x * tops.size + 1e-9)
        candidates = sorted({-math.inf, *(float(np.nextafter(t, np.inf)) for t in tops)})
        best = next(t for t in candidates if int((tops >= t).sum()) <= allowed)
        assert ours.threshold == best
        assert ours.misses == int((mates < best).sum())


def test_curve_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    tops = rng.integers(0, 20, size=50) / 10.0
    mates = rng.integers(0, 20, size=40) / 10.0
    searches = [Search(False, "answered", (False,), (float(t),)) for t in tops]
    searches += [Search(True, "answered", (True,), (float(m),)) for m in mates]
    searches += [Search(False, "failed"), Search(True, "failed")]
    curve = identification_curve(reduce(searches))
    for t, fp, miss in zip(curve.thresholds, curve.false_positives, curve.misses, strict=True):
        assert fp == int((tops >= t).sum()) + 1  # the malformed non-mated answer
        assert miss == int((mates < t).sum()) + 1  # the failed mated search
    assert curve.nonmated == 51 and curve.mated == 41


def test_refusals() -> None:
    r = reduce(SEARCHES)
    with pytest.raises(ValueError):
        threshold_for_fpir(r, 1.0)
    with pytest.raises(ValueError, match="non-mated"):
        threshold_for_fpir(reduce(SEARCHES[:4]), 0.1)
    with pytest.raises(ValueError):
        at_threshold(r, math.nan)
