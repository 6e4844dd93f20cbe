"""Accuracy figures with exact binomial bounds, shared by every probe that scores answers."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.schema import Interval, Measurement, ProportionBound
from harness.stats import clopper_pearson

PAIRED_DROP_METHOD = (
    "paired: drop <= P(reference right, variant wrong) and >= -P(reference wrong, variant "
    "right), each by an exact one-sided Clopper-Pearson bound"
)


def accuracy_percent(
    metric_id: str,
    right: int,
    n: int,
    confidence: float,
    method: str,
    details: dict[str, Any],
    counted: str = "answered right",
    noun: str = "",
) -> Measurement:
    """right / n in %, with one-sided Clopper-Pearson bounds on the proportion; `counted`
    says what `right` counts (a miss rate passes "missed"); `noun` what n counts, for the
    verdict's "need N more <noun>"."""
    bounds = clopper_pearson(right, n, confidence)
    return Measurement(
        id=metric_id,
        value=100.0 * right / n,
        unit="%",
        n=n,
        repeats=1,
        ci=Interval(
            low=100.0 * bounds.lower,
            high=100.0 * bounds.upper,
            confidence=confidence,
            method=f"exact one-sided Clopper-Pearson bounds on the proportion {counted}",
            proportion={
                "low": ProportionBound(count=right, n=n, side="lower", noun=noun),
                "high": ProportionBound(count=right, n=n, side="upper", noun=noun),
            },
        ),
        method=method,
        details=details,
    )


def paired_drop_pp(
    metric_id: str,
    reference_right: np.ndarray,
    variant_right: np.ndarray,
    confidence: float,
    method: str,
) -> Measurement:
    """Accuracy of the reference minus the variant's on the same samples, in percentage
    points, bounded from the two kinds of disagreement."""
    n = len(variant_right)
    lost = int((reference_right & ~variant_right).sum())  # reference right, variant wrong
    gained = int((~reference_right & variant_right).sum())  # reference wrong, variant right
    return Measurement(
        id=metric_id,
        value=100.0 * (lost - gained) / n,
        unit="pp",
        n=n,
        repeats=1,
        ci=Interval(
            low=-100.0 * clopper_pearson(gained, n, confidence).upper,
            high=100.0 * clopper_pearson(lost, n, confidence).upper,
            confidence=confidence,
            method=PAIRED_DROP_METHOD,
            proportion={
                "low": ProportionBound(count=gained, n=n, side="upper", negate=True),
                "high": ProportionBound(count=lost, n=n, side="upper"),
            },
        ),
        method=method,
        details={"fp32_right_variant_wrong": lost, "fp32_wrong_variant_right": gained},
    )
