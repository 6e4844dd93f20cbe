"""Verdict rules, on numbers worked out by hand."""

from __future__ import annotations

import operator
from typing import Any

from harness.judge import judge
from harness.schema import Declared, Indicator, Interval, Measurement, Unmeasured


def _indicator(op: str = ">=", target: float = 32.0, pending: str | None = None) -> Indicator:
    return Indicator(
        id="fp32_tflops",
        title="FP32",
        metric="gemm.fp32.throughput",
        op=op,  # type: ignore[arg-type]
        target=target,
        unit="TFLOPS",
        source="test",
        pending=pending,
    )


def _measure(
    value: float, low: float | None, high: float | None, unit: str = "TFLOPS"
) -> Measurement:
    ci = Interval(
        low=low,
        high=high,
        confidence=0.95,
        method="m",
        need="" if low else "need at least 5 timed repeats",
    )
    return Measurement(
        id="gemm.fp32.throughput", value=value, unit=unit, n=50, repeats=5, ci=ci, method="m"
    )


def test_pass_needs_the_lower_bound_to_clear_the_target() -> None:
    v = judge(_indicator(), _measure(40, 33, 45), None, None)
    assert (v.status, v.bound) == ("PASS", 33)


def test_median_above_but_bound_below_is_inconclusive() -> None:
    v = judge(_indicator(), _measure(40, 30, 45), None, None)
    assert v.status == "INCONCLUSIVE"
    assert "30" in v.reason


def test_too_few_repeats_says_how_many_are_needed() -> None:
    v = judge(_indicator(), _measure(40, None, None), None, None)
    assert v.status == "INCONCLUSIVE"
    assert "need at least 5" in v.reason


def test_point_estimate_below_target_fails() -> None:
    assert judge(_indicator(), _measure(31, 30, 33), None, None).status == "FAIL"


def test_units_are_converted_to_the_indicators() -> None:
    # 40,000 GFLOPS = 40 TFLOPS, bound 33,000 GFLOPS = 33 TFLOPS
    v = judge(_indicator(), _measure(40_000, 33_000, 45_000, unit="GFLOPS"), None, None)
    assert (v.status, v.value, v.bound) == ("PASS", 40.0, 33.0)


def test_upper_targets_use_the_upper_bound() -> None:
    ind = Indicator(id="power", title="P", metric="p", op="<=", target=400, unit="W", source="t")
    m = Measurement(
        id="p",
        value=380,
        unit="W",
        n=100,
        repeats=10,
        method="m",
        ci=Interval(low=370, high=410, confidence=0.95, method="m"),
    )
    v = judge(ind, m, None, None)
    assert (v.status, v.bound) == ("INCONCLUSIVE", 410)
    strict = Indicator(id="eff", title="E", metric="e", op=">", target=2, unit="TOPS/W", source="t")
    exact = Measurement(id="e", value=2, unit="TOPS/W", n=1, repeats=1, method="m")
    assert judge(strict, exact, None, None).status == "FAIL"  # 2 is not > 2


def test_exact_counts_need_no_interval() -> None:
    ind = Indicator(
        id="precisions", title="P", metric="c", op=">=", target=3, unit="count", source="t"
    )
    m = Measurement(id="c", value=3, unit="count", n=3, repeats=1, method="m")
    assert judge(ind, m, None, None).status == "PASS"


def test_not_measured_carries_the_reason() -> None:
    v = judge(
        _indicator(), None, Unmeasured(id="gemm.fp32.throughput", reason="no TF32 unit"), None
    )
    assert (v.status, v.reason) == ("NOT_MEASURED", "no TF32 unit")
    pending = judge(_indicator(pending="arrives later"), None, None, None)
    assert (pending.status, pending.reason) == ("NOT_MEASURED", "arrives later")


def test_declared_targets_are_judged_and_weak_ones_flagged() -> None:
    weak = judge(_indicator(), _measure(40, 33, 45), None, Declared(target=20))
    assert weak.declared_target == 20 and weak.declared_status == "PASS"
    assert weak.flags and "weaker" in weak.flags[0]
    strong = judge(_indicator(), _measure(40, 33, 45), None, Declared(target=64))
    assert strong.declared_status == "FAIL" and not strong.flags


def test_an_invalid_figure_is_inconclusive_even_when_it_misses() -> None:
    ind = Indicator(id="power", title="P", metric="p", op="<=", target=400, unit="W", source="t")
    m = Measurement(
        id="p",
        value=900,
        unit="W",
        n=10,
        repeats=1,
        method="m",
        invalid_reason="meter connection lost after 3 samples",
    )
    v = judge(ind, m, None, None)
    assert v.status == "INCONCLUSIVE"
    assert "connection lost" in v.reason


def test_failures_counted_against_a_figure_cannot_turn_its_fail_into_inconclusive() -> None:
    """A SUT that crashes on one utterance makes the figure invalid; when the failures are
    already counted against it (as errors) and it still misses the target, it FAILs; when
    it clears the target it stays INCONCLUSIVE (the failures decide nothing in its favour)."""
    ind = Indicator(id="zh", title="Z", metric="a", op=">=", target=98, unit="%", source="t")

    def figure(value: float) -> Measurement:
        return Measurement(
            id="a", value=value, unit="%", n=10, repeats=1, method="m",
            invalid_reason="1 of 10 utterances failed (counted as deletions)",
            failures_count_against=True,
        )  # fmt: skip

    missed = judge(ind, figure(40.0), None, None)
    assert missed.status == "FAIL" and "counted against it" in missed.reason
    cleared = judge(ind, figure(99.0), None, None)
    assert cleared.status == "INCONCLUSIVE" and "cannot decide" in cleared.reason


def test_one_whole_run_figure_without_an_interval_cannot_pass() -> None:
    """A single LoadGen Offline run (or one power window's throughput) has no spread: even
    far above the target it is INCONCLUSIVE, and the reason says what is needed."""
    ind = Indicator(
        id="qps", title="Q", metric="t", op=">=", target=100, unit="samples/s", source="t"
    )
    once = Measurement(id="t", value=1.7e5, unit="samples/s", n=1000, repeats=1, method="m")
    v = judge(ind, once, None, None)
    assert v.status == "INCONCLUSIVE"
    assert "no repeats" in v.reason and ">= 5 runs" in v.reason
    assert judge(ind, once.model_copy(update={"value": 50.0}), None, None).status == "FAIL"


def test_a_figure_marked_exact_needs_no_interval() -> None:
    ind = Indicator(id="cr", title="C", metric="c", op=">=", target=3, unit="ratio", source="t")
    m = Measurement(
        id="c", value=3.9, unit="ratio", n=1, repeats=1, method="m", exact="a ratio of file sizes"
    )
    v = judge(ind, m, None, None)
    assert v.status == "PASS"
    assert "a ratio of file sizes" in v.reason


# ------------------------------------------------------------------ proportions: how many samples


def _bound_pct(rate: float, side: str, trials: int) -> float:
    """scipy's one-sided 95% Clopper-Pearson bound at `trials` samples, the count rounded
    against the verdict (never a better rate than observed); independent of harness.stats."""
    import math

    from scipy.stats import beta

    k = math.floor(rate * trials + 1e-9) if side == "lower" else math.ceil(rate * trials - 1e-9)
    if side == "lower":
        return 100 * (0.0 if k == 0 else beta.ppf(0.05, k, trials - k + 1))
    return 100 * (1.0 if k == trials else beta.ppf(0.95, k + 1, trials - k))


def _enough_and_not_much_more(n: int, rate: float, side: str, clears: Any, target: float) -> None:
    """n samples clear the target; 10% fewer do not."""
    assert clears(_bound_pct(rate, side, n), target), n
    assert not clears(_bound_pct(rate, side, int(n * 0.9)), target), n


def _accuracy_indicator(op: str, target: float, unit: str) -> Indicator:
    return Indicator(
        id="acc",
        title="accuracy",
        metric="t.acc",
        op=op,  # type: ignore[arg-type]
        target=target,
        unit=unit,
        source="test",
    )


def test_a_too_wide_accuracy_bound_says_how_many_samples() -> None:
    import re

    import numpy as np

    from harness.scoring.accuracy import accuracy_percent

    # 38 of 40 right: 95 %, the 95% lower bound about 85.1 % misses >= 90 %
    m = accuracy_percent("t.acc", 38, 40, 0.95, "m", {})
    v = judge(_accuracy_indicator(">=", 90.0, "%"), m, None, None)
    assert v.status == "INCONCLUSIVE"
    assert "steadier" not in v.reason
    found = re.search(r"about (\d+) at the observed rate \(38 of 40\), have 40", v.reason)
    assert found, v.reason
    _enough_and_not_much_more(int(found.group(1)), 0.95, "lower", operator.ge, 90.0)

    # a drop of 3 lost, 0 gained in 40 (7.5 pp) against <= 10 pp: the upper bound ~18 pp
    from harness.scoring.accuracy import paired_drop_pp

    ref = np.ones(40, dtype=bool)
    got = ref.copy()
    got[:3] = False
    drop = paired_drop_pp("t.acc", ref, got, 0.95, "m")
    v = judge(_accuracy_indicator("<=", 10.0, "pp"), drop, None, None)
    found = re.search(r"about (\d+) at the observed rate \(3 of 40\)", v.reason)
    assert v.status == "INCONCLUSIVE" and found, v.reason
    _enough_and_not_much_more(int(found.group(1)), 3 / 40, "upper", operator.le, 10.0)


def test_when_more_samples_cannot_decide_it_says_so() -> None:
    import numpy as np

    from harness.scoring.accuracy import paired_drop_pp

    # 6 lost and 4 gained in 40: the drop is 5 pp, but the bound rests on the 15 % lost,
    # which no number of samples brings under 10 pp
    ref = np.zeros(40, dtype=bool)
    ref[:6] = True
    got = np.zeros(40, dtype=bool)
    got[6:10] = True
    drop = paired_drop_pp("t.acc", ref, got, 0.95, "m")
    assert drop.value == 5.0
    v = judge(_accuracy_indicator("<=", 10.0, "pp"), drop, None, None)
    assert v.status == "INCONCLUSIVE"
    assert "no number of samples would bring the bound past 10" in v.reason


def test_a_timing_bound_still_asks_for_repeats() -> None:
    v = judge(_indicator(), _measure(40, 30, 45), None, None)
    assert v.status == "INCONCLUSIVE" and "more repeats or a steadier system" in v.reason
