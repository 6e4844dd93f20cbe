"""What an NVML record says about one timed window, as pure functions of the record.

`harness.power.window_energy` calls `prepare(record, window)` for an NVML record before it
computes energy and coverage. It returns the record as scoring should see it, and the
problems that make the NVML figure unfit to decide a verdict:

* the energy counter's readings, each distinct value stamped when it was first read (a
  counter that updates every P seconds answers the same value until its next update), must
  rise monotonically; a counter that went down is dropped (the power samples are integrated
  instead) and the drop is a problem. That the readings bracket the window is checked by
  `window_energy` (a failed read at the window's start or end loses the counter's figure);
  coverage is not asked of a cumulative counter;
* power from `nvmlDeviceGetPowerUsage` where it is a 1 s trailing average (Ampere, except
  GA100, and newer) is shifted back by half a second (`extra["power_lag_s"]`): a trailing
  average read at t describes the second before t, centred on t - 0.5 s;
* a window shorter than `MIN_UPDATE_PERIODS` updates of the counter (its update period is
  inferred from the tight reads the instrument took at enter, `counter_update_period`)
  cannot be resolved by it;
* the counter's energy over the window is compared with the integral of the power samples
  over the same window; a disagreement above `CROSS_CHECK_TOLERANCE` means one of NVML's
  two sources is wrong (Zeus has seen 187 J against 327 J).
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

from harness.power import COUNTER_SCALE_J, Window, integrate_power

MIN_UPDATE_PERIODS = 4.0  # a window must span this many counter updates
CROSS_CHECK_TOLERANCE = 0.25  # |counter - integrated| / the larger of the two
CROSS_CHECK_MIN_SAMPLES = 3  # power samples inside the window needed to cross-check


def first_seen(readings: list[list[float]]) -> list[list[float]]:
    """Counter readings sorted by time, each run of equal values kept at its first read."""
    out: list[list[float]] = []
    for t, raw in sorted((float(t), float(raw)) for t, raw in readings):
        if not out or raw != out[-1][1]:
            out.append([t, raw])
    return out


def counter_update_period(record: dict[str, Any]) -> float | None:
    """The counter's update period: the median interval between the changes of value seen
    in the tight reads at enter (`extra["counter_update_probe"]`, [start, end] on the
    monotonic clock). None when there is no probe or it saw fewer than three changes."""
    span = (record.get("extra") or {}).get("counter_update_probe")
    counter = record.get("energy_counter")
    if not span or not counter:
        return None
    start, end = float(span[0]), float(span[1])
    probe = [r for r in counter.get("readings", []) if start <= float(r[0]) <= end]
    changes = [t for t, _ in first_seen(probe)[1:]]
    intervals = [b - a for a, b in itertools.pairwise(changes)]
    return statistics.median(intervals) if len(intervals) >= 2 else None


def _value_at(points: list[list[float]], t: float) -> float | None:
    """The counter interpolated linearly at t; None outside the readings."""
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t0 <= t <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return None


def _cross_check(
    counter: dict[str, Any], samples: list[list[float]], period_s: float, window: Window
) -> str:
    """A problem when the counter's energy and the integrated power disagree ("" when they
    agree, or when either cannot give a figure over the whole window)."""
    points = counter["readings"]
    start, end = _value_at(points, window.start_s), _value_at(points, window.end_s)
    inside = [s for s in samples if window.start_s <= s[0] <= window.end_s]
    if start is None or end is None or len(inside) < CROSS_CHECK_MIN_SAMPLES:
        return ""
    times = sorted(s[0] for s in samples)
    if times[0] > window.start_s + period_s or times[-1] < window.end_s - period_s:
        return ""  # the samples do not reach the window's edges: nothing to compare
    counter_j = (end - start) * COUNTER_SCALE_J[counter["unit"]]
    integrated_j = integrate_power([(t, w) for t, w in sorted(samples)], window)
    larger = max(abs(counter_j), abs(integrated_j))
    if larger > 0 and abs(counter_j - integrated_j) > CROSS_CHECK_TOLERANCE * larger:
        return (
            f"the energy counter gives {counter_j:.3f} J over the window and the integrated "
            f"power samples {integrated_j:.3f} J: they differ by "
            f"{abs(counter_j - integrated_j) / larger:.0%} of the larger (more than "
            f"{CROSS_CHECK_TOLERANCE:.0%}), so one of NVML's sources is wrong"
        )
    return ""


def prepare(record: dict[str, Any], window: Window) -> tuple[dict[str, Any], list[str]]:
    """The record as scoring sees it over `window`, and the problems NVML's own rules find."""
    extra = record.get("extra") or {}
    problems: list[str] = []
    out = dict(record)
    lag = float(extra.get("power_lag_s") or 0.0)
    samples = [[float(t) - lag, float(w)] for t, w in record.get("power_samples", [])]
    out["power_samples"] = samples
    # shifted once: preparing the prepared record again leaves the samples where they are
    out["extra"] = {**extra, "power_lag_s": 0.0, "power_lag_applied_s": lag}
    counter = record.get("energy_counter")
    if counter:
        readings = first_seen(counter.get("readings", []))
        drops = [(a, b) for a, b in itertools.pairwise(readings) if b[1] < a[1]]
        if drops:
            (_, before), (t, after) = drops[0]
            problems.append(
                f"the energy counter went down from {before:.0f} to {after:.0f} "
                f"{counter['unit']} at t={t:.3f} ({len(drops)} drop(s)): not a cumulative "
                "count, so it is not used"
            )
            out["energy_counter"] = None
            counter = None
        else:
            counter = {**counter, "readings": readings}
            out["energy_counter"] = counter
    if counter:
        period = counter_update_period(record)
        if period is not None and window.duration_s < MIN_UPDATE_PERIODS * period:
            problems.append(
                f"the window lasts {window.duration_s:.3f} s, fewer than "
                f"{MIN_UPDATE_PERIODS:g} updates of the energy counter (it updates every "
                f"{period:.3f} s): too short for the counter to resolve"
            )
        scope = extra.get("power_scope", "gpu")
        if (scope == "module") == (record.get("domain") == "module"):
            mismatch = _cross_check(counter, samples, float(record["sample_period_s"]), window)
            if mismatch:
                problems.append(mismatch)
    return out, problems
