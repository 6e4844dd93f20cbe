"""Verdicts: an indicator's target against a measurement and its confidence bound.

PASS only when the bound on the side that matters clears the target; FAIL when the
point estimate misses it; INCONCLUSIVE otherwise; NOT_MEASURED when nothing measured it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Literal

from harness.schema import (
    Declared,
    Indicator,
    Interval,
    Measurement,
    Op,
    Status,
    Unmeasured,
    Verdict,
)
from harness.stats import samples_to_clear
from harness.units import convert

COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


def stricter_or_equal(op: Op, declared: float, guide: float) -> bool:
    """True when a declared target asks at least as much as the guide's."""
    return declared >= guide if op in (">=", ">") else declared <= guide


def judge_value(
    op: Op,
    target: float,
    value: float,
    bound: float | None,
    exact: bool,
    exact_kind: str = "an exact count",
) -> tuple[Status, str]:
    meets = COMPARE[op]
    if not meets(value, target):
        return "FAIL", f"measured {value:.4g} does not meet {op} {target:g}"
    if exact:
        return "PASS", f"measured {value:.4g} {op} {target:g} (no interval: {exact_kind})"
    if bound is None:
        return (
            "INCONCLUSIVE",
            f"measured {value:.4g} meets {op} {target:g}, but there is no confidence bound",
        )
    if meets(bound, target):
        return "PASS", f"confidence bound {bound:.4g} {op} {target:g}"
    return (
        "INCONCLUSIVE",
        f"measured {value:.4g} meets {op} {target:g} but the confidence bound {bound:.4g} "
        f"does not; {BOUND_NEED}",
    )


BOUND_NEED = "more repeats or a steadier system are needed"


def samples_need(op: Op, target: float, ci: Interval, unit: str, indicator_unit: str) -> str:
    """For a bound made from a proportion: how many samples would let it clear the target
    at the observed rate ("" when the bound is not a proportion's)."""
    side: Literal["low", "high"] = "low" if op in (">=", ">") else "high"
    form = ci.proportion.get(side)
    if form is None:
        return ""
    target_in_unit = convert(target, indicator_unit, unit)
    needed = samples_to_clear(
        form.count,
        form.n,
        form.side,
        target_in_unit,
        ci.confidence,
        COMPARE[op],
        scale=form.scale,
        negate=form.negate,
    )
    if needed is None:
        return (
            f"at the observed rate ({form.count} of {form.n}) no number of samples would "
            f"bring the bound past {target:g}"
        )
    if form.noun:
        return (
            f"need {needed - form.n} more {form.noun}: about {needed} in all at the observed "
            f"rate ({form.count} of {form.n}), have {form.n}"
        )
    return (
        f"more samples are needed: about {needed} at the observed rate ({form.count} of "
        f"{form.n}), have {form.n}"
    )


WHOLE_RUN_NEED = (
    "it is one whole-run figure with no repeats: repeat the measurement (>= 5 runs at 95%) "
    "for a bound on the median"
)


def exact_reason(measurement: Measurement) -> str:
    """Why a figure needs no interval ("" when it does): counts, and what the probe marked
    deterministic (a file size, a ratio of sizes)."""
    if measurement.exact:
        return measurement.exact
    return "an exact count" if measurement.unit == "count" else ""


def judge(
    indicator: Indicator,
    measurement: Measurement | None,
    unmeasured: Unmeasured | None,
    declared: Declared | None,
    suite_sha256: str = "",
) -> Verdict:
    declared_target = declared.target if declared else None
    flags: list[str] = []
    if declared_target is not None and not stricter_or_equal(
        indicator.op, declared_target, indicator.target
    ):
        flags.append(
            f"declared target {indicator.op} {declared_target:g} is weaker than the guide's "
            f"{indicator.op} {indicator.target:g}"
        )

    def verdict(
        status: Status,
        value: float | None,
        bound: float | None,
        declared_status: Status | None,
        reason: str,
    ) -> Verdict:
        return Verdict(
            indicator=indicator.id,
            title=indicator.title,
            status=status,
            value=value,
            unit=indicator.unit,
            op=indicator.op,
            target=indicator.target,
            declared_target=declared_target,
            declared_status=declared_status,
            bound=bound,
            reason=reason,
            flags=flags,
            suite_sha256=suite_sha256,
        )

    if measurement is None:
        if indicator.pending:
            reason = indicator.pending
        elif unmeasured is not None:
            reason = unmeasured.reason
        else:
            reason = f"no measurement of {indicator.metric} in this run"
        return verdict("NOT_MEASURED", None, None, None, reason)
    value = convert(measurement.value, measurement.unit, indicator.unit)
    if measurement.invalid_reason:
        if measurement.failures_count_against and not COMPARE[indicator.op](
            value, indicator.target
        ):
            reason = (
                f"measured {value:.4g} misses the target with its failures counted against "
                f"it, which can only make it worse ({measurement.invalid_reason})"
            )
            return verdict("FAIL", value, None, None, reason)
        reason = f"measured {value:.4g} cannot decide: {measurement.invalid_reason}"
        return verdict("INCONCLUSIVE", value, None, None, reason)
    ci = measurement.ci
    exact_kind = exact_reason(measurement)
    exact = ci is None and bool(exact_kind)
    bound: float | None = None
    if ci is not None:
        raw = ci.low if indicator.op in (">=", ">") else ci.high
        bound = None if raw is None else convert(raw, measurement.unit, indicator.unit)
    status, reason = judge_value(indicator.op, indicator.target, value, bound, exact, exact_kind)
    if status == "INCONCLUSIVE" and ci is not None and bound is not None:
        need = samples_need(indicator.op, indicator.target, ci, measurement.unit, indicator.unit)
        need = need or ci.need  # a probe that knows what it takes says so in ci.need
        if need:
            reason = reason.replace(BOUND_NEED, need)
    if status == "INCONCLUSIVE" and ci is not None and ci.need and ci.need not in reason:
        reason = f"{reason}; {ci.need}"
    elif status == "INCONCLUSIVE" and ci is None:
        reason = f"{reason}; {WHOLE_RUN_NEED}"
    if ci is not None and bound is not None:
        reason += (
            f" ({ci.confidence:.0%} one-sided, n={measurement.n}, repeats={measurement.repeats})"
        )
    declared_status: Status | None = None
    if declared_target is not None:
        declared_status, _ = judge_value(indicator.op, declared_target, value, bound, exact)
    return verdict(status, value, bound, declared_status, reason)
