"""Energy and power over a timed window, as pure functions of instrument records.

Energy comes from a cumulative energy counter where the instrument has one (NVML total
energy, RAPL energy_uj), interpolated linearly to the window's edges; otherwise from the
trapezoid integral of instantaneous power samples over the window, with the power at the
edges interpolated between the neighbouring samples. Coverage says whether the samples
really span the window at the instrument's promised rate.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MIN_COVERAGE = 0.95  # fraction of the expected samples that must lie in the window
MAX_GAP_PERIODS = 2.0  # longest allowed gap between samples, in sample periods
FUTURE_TOLERANCE_S = 2.0  # see harness.instruments.meterlog

COUNTER_SCALE_J = {"mJ": 1e-3, "uJ": 1e-6, "J": 1.0}


@dataclass(frozen=True)
class Window:
    start_s: float  # monotonic seconds
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class WindowEnergy:
    instrument: str
    kind: str
    domain: str
    partial_domain: bool
    sample_period_s: float
    energy_j: float | None  # None when nothing usable was recorded (see `problem`)
    average_w: float | None
    source: str  # "energy counter" or "integrated power samples"
    samples_in_window: int
    expected_samples: float
    coverage: float
    max_gap_s: float
    problem: str  # "" when the figure is sound, else why it cannot decide a verdict
    relative_uncertainty: float | None
    absolute_uncertainty_w: float | None
    uncertainty_source: str


def parse_utc(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone (expected UTC)")
    return value


def log_problem(record: dict[str, Any]) -> list[str]:
    """Why an imported meter log cannot be trusted for this run ([] when it can): rows
    stamped after the harness read the log (on the meter's clock: the read time plus the
    stated offset) were not recorded by a meter watching this run."""
    extra = record.get("extra", {})
    read = extra.get("read_clock")
    last = extra.get("last_row_utc")
    if read is None or last is None:
        return ["the meter-log record does not say when the log was read"]
    offset = float(extra.get("clock_offset_s", 0.0))
    ahead = (parse_utc(last) - parse_utc(read["utc"])).total_seconds() - offset
    if ahead > FUTURE_TOLERANCE_S:
        return [
            f"the meter log's last row ({last}) is {ahead:.1f} s later than the moment the "
            f"harness read it ({read['utc']}, meter clock offset {offset:g} s): a log written "
            "before the run, not by a meter watching it"
        ]
    return []


def power_samples(record: dict[str, Any]) -> list[tuple[float, float]]:
    """Instantaneous power samples on the monotonic clock, sorted by time.

    Meter logs carry UTC timestamps; they are mapped onto the monotonic clock through the
    record's clock mapping plus the log's stated clock offset.
    """
    samples = [(float(t), float(w)) for t, w in record.get("power_samples", [])]
    utc_samples = record.get("extra", {}).get("utc_samples")
    if utc_samples:
        clock = record["clock"]
        anchor_utc = parse_utc(clock["utc"])
        offset = float(record["extra"].get("clock_offset_s", 0.0))
        for stamp, watts in utc_samples:
            # clock_offset_s = meter clock - harness clock
            delta = (parse_utc(stamp) - anchor_utc).total_seconds() - offset
            samples.append((clock["monotonic_s"] + delta, float(watts)))
    return sorted(samples)


def unwrap_counter(readings: list[list[float]], max_raw: float | None) -> list[tuple[float, float]]:
    """Cumulative raw counter values with wrap-arounds undone (at most one per interval).

    A reading below its predecessor wrapped once: the counter ran from `prev` up to `max_raw`
    and on from 0 to `cur`, so the step is max_raw - prev + cur.
    """
    out: list[tuple[float, float]] = []
    offset = 0.0
    previous: float | None = None
    for t, raw in readings:
        if previous is not None and raw < previous:
            if max_raw is None:
                raise ValueError(
                    f"energy counter went down from {previous} to {raw} at t={t} and no "
                    "wrap-around range is known"
                )
            offset += max_raw
        previous = raw
        out.append((float(t), float(raw) + offset))
    return out


def _interpolate(points: list[tuple[float, float]], t: float) -> float:
    times = [p[0] for p in points]
    i = bisect.bisect_left(times, t)
    if i < len(points) and times[i] == t:
        return points[i][1]
    if i == 0 or i == len(points):
        raise ValueError(f"t={t:.6f} lies outside the readings [{times[0]:.6f}, {times[-1]:.6f}]")
    (t0, v0), (t1, v1) = points[i - 1], points[i]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def _power_at(samples: list[tuple[float, float]], t: float) -> float:
    """Power at t: interpolated between samples, held from the nearest one beyond them."""
    if t <= samples[0][0]:
        return samples[0][1]
    if t >= samples[-1][0]:
        return samples[-1][1]
    return _interpolate(samples, t)


def integrate_power(samples: list[tuple[float, float]], window: Window) -> float:
    """Trapezoid integral of power over the window (joules). The power at the window's edges
    is interpolated between the neighbouring samples, or held from the nearest sample where
    the window starts before the first or ends after the last (a sampled meter's readings sit
    inside the intervals they average; coverage checks bound how far that may reach)."""
    inside = [(t, w) for t, w in samples if window.start_s < t < window.end_s]
    points = [
        (window.start_s, _power_at(samples, window.start_s)),
        *inside,
        (window.end_s, _power_at(samples, window.end_s)),
    ]
    return sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in itertools.pairwise(points))


def _coverage(times: list[float], window: Window, period_s: float) -> tuple[int, float, float]:
    inside = [t for t in times if window.start_s <= t <= window.end_s]
    expected = window.duration_s / period_s if period_s > 0 else float(len(inside))
    edges = [window.start_s, *inside, window.end_s]
    gap = max(b - a for a, b in itertools.pairwise(edges))
    return len(inside), expected, gap


def window_energy(record: dict[str, Any], window: Window) -> WindowEnergy:
    """Energy and average power of one instrument over the window, with coverage."""
    period = float(record["sample_period_s"])
    uncertainty = record.get("uncertainty") or {}
    base = {
        "instrument": record["name"],
        "kind": record["kind"],
        "domain": record["domain"],
        "partial_domain": bool(record["partial_domain"]),
        "sample_period_s": float(record["sample_period_s"]),
        "relative_uncertainty": uncertainty.get("relative"),
        "absolute_uncertainty_w": uncertainty.get("absolute_w"),
        "uncertainty_source": uncertainty.get("source", "not stated"),
    }
    problems: list[str] = []
    if record["kind"] == "nvml":  # NVML's own rules (harness.instruments.nvml_window)
        from harness.instruments.nvml_window import prepare

        record, nvml_problems = prepare(record, window)
        problems += nvml_problems
    if record["kind"] == "meter-log":
        problems += log_problem(record)
    if record.get("status") == "lost":
        problems.append(f"instrument lost during the window: {record.get('reason', '')}")
    counter = record.get("energy_counter")
    energy: float | None = None
    times: list[float] = []
    if counter and len(counter.get("readings", [])) >= 2:
        points = unwrap_counter(counter["readings"], counter.get("max"))
        times = [t for t, _ in points]
        try:
            raw = _interpolate(points, window.end_s) - _interpolate(points, window.start_s)
            energy = raw * COUNTER_SCALE_J[counter["unit"]]
            source = f"energy counter ({counter['unit']})"
        except ValueError as error:
            problems.append(f"energy counter does not span the window: {error}")
    measured = window
    if energy is None:
        samples = power_samples(record)
        times = [t for t, _ in samples]
        source = "integrated power samples"
        if len(samples) >= 2:
            # samples may sit up to one period inside the window's edges
            reach = period
            measured = Window(
                window.start_s if times[0] <= window.start_s + reach else times[0],
                window.end_s if times[-1] >= window.end_s - reach else times[-1],
            )
        if len(samples) < 2 or measured.duration_s <= 0:
            problems.append(f"{len(samples)} power samples cannot cover the window")
        else:
            if measured != window:
                problems.append(
                    f"samples cover only [{measured.start_s:.3f}, {measured.end_s:.3f}] of the "
                    f"window [{window.start_s:.3f}, {window.end_s:.3f}]"
                )
            energy = integrate_power(samples, measured)
    count, expected, gap = _coverage(times, window, period)
    coverage = count / expected if expected > 0 else 0.0
    # NVML's 64-bit mJ counter does not wrap: readings that bracket the window (checked
    # above) are enough, however sparse; RAPL's wrapping counter and power samples need
    # coverage
    counter_brackets = record["kind"] == "nvml" and source.startswith("energy counter")
    if coverage < MIN_COVERAGE and not counter_brackets:
        problems.append(
            f"coverage {coverage:.1%}: {count} samples in {window.duration_s:.3f} s where "
            f"{expected:.1f} were expected at {period:g} s (need >= {MIN_COVERAGE:.0%})"
        )
    if gap > MAX_GAP_PERIODS * period and not counter_brackets:
        problems.append(
            f"longest gap {gap:.3f} s exceeds {MAX_GAP_PERIODS:g} sample periods ({period:g} s)"
        )
    return WindowEnergy(
        **base,
        energy_j=energy,
        average_w=None if energy is None else energy / measured.duration_s,
        source=source,
        samples_in_window=count,
        expected_samples=expected,
        coverage=coverage,
        max_gap_s=gap,
        problem="; ".join(problems),
    )


def _power_spread(value_w: float, energy: WindowEnergy) -> float | None:
    """The worst-case spread of an average power from the instrument's stated uncertainty
    (|P| x relative + absolute); None when it states none."""
    rel, absolute = energy.relative_uncertainty, energy.absolute_uncertainty_w
    if rel is None and absolute is None:
        return None
    return abs(value_w) * (rel or 0.0) + (absolute or 0.0)


def uncertainty_bounds(value_w: float, energy: WindowEnergy) -> tuple[float, float] | None:
    """[low, high] of an average power from the instrument's stated uncertainty; None when it
    states none."""
    spread = _power_spread(value_w, energy)
    if spread is None:
        return None
    return value_w - spread, value_w + spread


def energy_bounds(
    energy_j: float, duration_s: float, energy: WindowEnergy
) -> tuple[float, float] | None:
    """[low, high] of an energy over a window of `duration_s`: an absolute power uncertainty
    of A watts held for t seconds is A x t joules, so the spread is E x relative + A x t (not
    A: 10 W +/- 1 W over 30 s is 300 +/- 30 J). None when the instrument states none."""
    rel, absolute = energy.relative_uncertainty, energy.absolute_uncertainty_w
    if rel is None and absolute is None:
        return None
    spread = abs(energy_j) * (rel or 0.0) + (absolute or 0.0) * duration_s
    return energy_j - spread, energy_j + spread


def net_bounds(
    load_w: float, idle_w: float, load: WindowEnergy, idle: WindowEnergy
) -> tuple[float, float] | None:
    """[low, high] of load minus idle power: the worst case of both errors, the load's spread
    plus the idle's (they may err in opposite directions). None when either states none."""
    load_spread, idle_spread = _power_spread(load_w, load), _power_spread(idle_w, idle)
    if load_spread is None or idle_spread is None:
        return None
    net = load_w - idle_w
    return net - load_spread - idle_spread, net + load_spread + idle_spread
