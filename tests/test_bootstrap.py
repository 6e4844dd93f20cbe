"""The seeded bootstrap of corpus ratios: the point value is the ratio of sums (not a mean of
per-item ratios), the same seed gives the same bounds, and the paired test finds a real
difference and not a null one."""

from __future__ import annotations

import numpy as np
import pytest

from harness.scoring.bootstrap import paired_ratio_test, ratio_interval


def test_the_value_is_the_ratio_of_sums_not_the_mean_of_ratios() -> None:
    edits, words = [1, 0, 9], [2, 10, 10]
    b = ratio_interval(edits, words, 0.95, resamples=200, seed=3)
    assert b.value == pytest.approx(10 / 22)
    assert b.value != pytest.approx(np.mean([0.5, 0.0, 0.9]))
    assert b.low <= b.value <= b.high


def test_the_same_seed_gives_the_same_bounds_and_another_seed_others() -> None:
    rng = np.random.default_rng(7)
    edits, words = rng.integers(0, 4, 300), rng.integers(4, 20, 300)
    a = ratio_interval(edits, words, 0.95, resamples=500, seed=11)
    b = ratio_interval(edits, words, 0.95, resamples=500, seed=11)
    c = ratio_interval(edits, words, 0.95, resamples=500, seed=12)
    assert (a.low, a.high) == (b.low, b.high)
    assert (a.low, a.high) != (c.low, c.high)
    # integer and float inputs give the very same figures
    d = ratio_interval(edits.astype(float), words.astype(float), 0.95, resamples=500, seed=11)
    assert (a.low, a.high) == (d.low, d.high)


def test_bounds_cover_the_binomial_spread_of_a_simple_rate() -> None:
    # 1000 items, each one word, 10% wrong: the 95% one-sided bounds lie near
    # 0.10 -/+ 1.645 * sqrt(0.1 * 0.9 / 1000) = 0.0844 / 0.1156
    errors = np.array([1] * 100 + [0] * 900)
    b = ratio_interval(errors, np.ones(1000), 0.95, resamples=2000, seed=1)
    assert b.low == pytest.approx(0.0844, abs=0.004)
    assert b.high == pytest.approx(0.1156, abs=0.004)


def test_paired_test_separates_a_real_difference_from_none() -> None:
    rng = np.random.default_rng(5)
    words = rng.integers(5, 15, 400)
    a = rng.binomial(words, 0.10)
    worse = a + rng.binomial(words, 0.05)
    real = paired_ratio_test(worse, a, words, 0.95, resamples=1000, seed=2)
    assert real.significant and real.low > 0 and real.p_value < 0.01
    same = paired_ratio_test(a, a, words, 0.95, resamples=1000, seed=2)
    assert not same.significant and same.difference == 0.0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        ratio_interval([], [], 0.95)
    with pytest.raises(ValueError):
        ratio_interval([1, 2], [3], 0.95)
    with pytest.raises(ValueError):
        ratio_interval([1.0, float("nan")], [1, 1], 0.95)
    with pytest.raises(ValueError):
        ratio_interval([0, 0], [0, 0], 0.95)


def test_an_answer_larger_than_the_harness_keeps_fails_its_sample() -> None:
    """A 20 MB answer is not stored whole in the evidence: its sample fails, saying why."""
    from harness.adapters.protocol import SampleOutput
    from harness.probes.sessions import MAX_OUTPUT_BYTES, output_records

    huge = "x" * (MAX_OUTPUT_BYTES + 1)
    rows = output_records(["a", "b"], [SampleOutput(0, "fine", None, 0.1),
                                       SampleOutput(1, huge, None, 0.2)])  # fmt: skip
    assert rows[0]["output"] == "fine" and rows[0]["error"] is None
    assert rows[1]["output"] is None and "more than" in rows[1]["error"]
