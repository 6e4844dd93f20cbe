"""Statistics against exact references: hand-worked binomial tails and scipy's exact test."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest

from harness.stats import (
    clopper_pearson,
    median_bounds,
    min_samples_for_median_bound,
    trials_needed_zero_errors,
)


def test_five_repeats_bound_the_median_by_min_and_max() -> None:
    # P(all 5 above the median) = 1/32, so min is a 1 - 1/32 = 96.9% lower bound.
    b = median_bounds([3.0, 1.0, 5.0, 2.0, 4.0], 0.95)
    assert (b.median, b.low, b.high) == (3.0, 1.0, 5.0)


def test_ten_repeats_use_the_second_order_statistic() -> None:
    # P(Bin(10, 1/2) >= 2) = 1 - 11/1024 = 0.989 >= 0.95; P(>= 3) = 1 - 56/1024 = 0.945 < 0.95.
    xs = [float(i) for i in range(1, 11)]
    b = median_bounds(xs, 0.95)
    assert (b.low, b.high, b.median) == (2.0, 9.0, 5.5)


def test_four_repeats_cannot_give_a_95_percent_bound() -> None:
    b = median_bounds([1.0, 2.0, 3.0, 4.0], 0.95)
    assert b.low is None and b.high is None
    assert b.min_n == 5 == min_samples_for_median_bound(0.95)
    assert min_samples_for_median_bound(0.99) == 7  # 1 - 1/128 = 0.992; 1 - 1/64 = 0.984


@pytest.mark.parametrize(("errors", "trials"), [(0, 10), (3, 100), (17, 1000), (50, 50)])
def test_clopper_pearson_matches_scipy_exact_interval(errors: int, trials: int) -> None:
    # A one-sided 95% bound is one end of the two-sided 90% exact interval.
    ci = binomtest(errors, trials).proportion_ci(confidence_level=0.90, method="exact")
    got = clopper_pearson(errors, trials, 0.95)
    assert got.upper == pytest.approx(ci.high, rel=1e-9)
    assert got.lower == pytest.approx(ci.low, rel=1e-9, abs=1e-15)


def test_zero_error_sample_sizes_from_the_design_document() -> None:
    assert trials_needed_zero_errors(1e-6, 0.95) == 2_995_731  # FAR 1e-6: ~3.0 million
    assert trials_needed_zero_errors(1e-3, 0.95) == 2_995  # APCER 0.1%
    assert trials_needed_zero_errors(0.03, 0.95) == 99  # label accuracy > 97%
    # the rule of three, as a cross-check
    assert math.isclose(3 / 2_995_731, 1e-6, rel_tol=2e-3)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        median_bounds([], 0.95)
    with pytest.raises(ValueError):
        clopper_pearson(5, 4, 0.95)


@pytest.mark.parametrize(("events", "hours"), [(0, 72.0), (0, 10.0), (3, 24.0), (12, 500.0)])
def test_poisson_bounds_are_exact_against_the_poisson_cdf(events: int, hours: float) -> None:
    from scipy.stats import poisson

    from harness.stats import poisson_rate_bounds

    b = poisson_rate_bounds(events, hours / 24.0, 0.95)  # rate per 24 h
    # the upper bound is the mean at which seeing <= events has probability 5 %
    assert poisson.cdf(events, b.upper * hours / 24.0) == pytest.approx(0.05, abs=1e-9)
    if events:
        # the lower bound: seeing >= events has probability 5 %
        assert poisson.sf(events - 1, b.lower * hours / 24.0) == pytest.approx(0.05, abs=1e-9)
    else:
        assert b.lower == 0.0
    assert b.rate == events / (hours / 24.0)


def test_seventy_two_hours_of_silence_for_one_false_wake_a_day() -> None:
    from harness.stats import exposure_needed, poisson_rate_bounds

    days = exposure_needed(0, 1.0, 0.95)
    assert days * 24 == pytest.approx(-math.log(0.05) * 24, rel=1e-12)  # 71.9 h
    assert 71.8 < days * 24 < 72.0
    assert poisson_rate_bounds(0, days, 0.95).upper == pytest.approx(1.0, rel=1e-12)
    with pytest.raises(ValueError):
        poisson_rate_bounds(0, 0.0, 0.95)
