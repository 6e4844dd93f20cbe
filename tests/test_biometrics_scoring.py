"""Biometric error rates against independent references: sklearn's roc_curve on the same
scores, and counts worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from harness.scoring.biometrics import (
    at_threshold,
    attack_rates,
    bpcer_at_apcer,
    error_curve,
    threshold_for_fmr,
)


@pytest.mark.parametrize(
    ("decimals", "genuines", "impostors"),
    [
        (2, 400, 900),  # rounded: ties on purpose, few distinct scores (the searchsorted path)
        (None, 400, 900),  # every score distinct (the merge path), fewer genuine scores
        (None, 900, 400),  # ... fewer impostor scores
        (3, 700, 700),  # ties within and between the sets, many distinct scores
    ],
)
def test_the_curve_matches_sklearn_roc_curve_at_its_thresholds(
    decimals: int | None, genuines: int, impostors: int
) -> None:
    rng = np.random.default_rng(3)
    genuine = rng.normal(0.7, 0.1, genuines)
    impostor = rng.normal(0.4, 0.1, impostors)
    if decimals is not None:
        genuine, impostor = np.round(genuine, decimals), np.round(impostor, decimals)
    curve = error_curve(genuine, impostor)
    labels = np.r_[np.ones(genuine.size), np.zeros(impostor.size)]
    fpr, tpr, thresholds = roc_curve(labels, np.r_[genuine, impostor], drop_intermediate=False)
    for f, t, th in zip(fpr[1:], tpr[1:], thresholds[1:], strict=True):  # [0] is +inf
        k = int(np.searchsorted(curve.thresholds, th))
        assert curve.thresholds[k] == th
        assert curve.fmr[k] == pytest.approx(f, abs=1e-15)  # sklearn: score >= threshold
        assert 1 - curve.fnmr[k] == pytest.approx(t, abs=1e-15)
    # every distinct score is a threshold, once, ascending
    assert np.array_equal(curve.thresholds, np.unique(np.r_[genuine, impostor]))


def test_counts_at_a_threshold_by_hand() -> None:
    genuine = [0.9, 0.8, 0.5, 0.3]
    impostor = [0.1, 0.2, 0.5, 0.6, 0.05]
    point = at_threshold(genuine, impostor, 0.5)
    # accept >= 0.5: impostors 0.5 and 0.6 falsely match; genuine 0.3 is rejected
    assert (point.false_matches, point.impostors) == (2, 5)
    assert (point.false_non_matches, point.genuines) == (1, 4)


def test_the_threshold_for_an_fmr_is_at_most_never_nearest() -> None:
    impostor = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    genuine = [0.85, 0.9, 0.99]
    # FMR <= 10 %: one of ten impostors may be accepted (0.95); 0.9 must be rejected
    point = threshold_for_fmr(genuine, impostor, 0.10)
    assert point.false_matches == 1 and 0.9 < point.threshold <= 0.95
    assert point.false_non_matches == 2  # 0.85 and 0.9 fall below it
    # FMR <= 5 %: none may be accepted (0.05 x 10 = 0.5 -> 0): above 0.95
    strict = threshold_for_fmr(genuine, impostor, 0.05)
    assert strict.false_matches == 0 and strict.threshold > 0.95


def test_tied_impostor_scores_are_rejected_together() -> None:
    impostor = [0.2, 0.8, 0.8, 0.8]  # 25 % allowed: one, but the three 0.8s are inseparable
    point = threshold_for_fmr([0.9], impostor, 0.25)
    assert point.false_matches == 0 and point.threshold > 0.8
    assert point.fmr <= 0.25


def test_apcer_per_species_bpcer_and_bpcer20_by_hand() -> None:
    live = [0.9, 0.8, 0.7, 0.6, 0.2]
    attacks = {"print": [0.1, 0.2, 0.3, 0.65], "replay": [0.05, 0.1, 0.15, 0.2]}
    rates = attack_rates(live, attacks, 0.5)
    assert rates.apcer == {"print": (1, 4), "replay": (0, 4)}
    assert rates.bpcer == (1, 5)  # 0.2 rejected
    assert rates.worst_species == "print"
    # BPCER20: every species' APCER <= 5 % (none of 4 accepted): above 0.65
    b20 = bpcer_at_apcer(live, attacks, 0.05)
    assert b20.apcer["print"][0] == 0 and 0.65 < b20.threshold <= 0.7
    assert b20.bpcer == (2, 5)  # 0.6 and 0.2 rejected


@pytest.mark.parametrize("bad", [[float("nan")], [float("inf"), 0.1], []])
def test_bad_scores_are_refused(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="impostor"):
        error_curve([0.5], bad)
