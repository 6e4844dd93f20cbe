"""The highest rate a system sustains, found by trials: bracket (double while a trial
passes, halve while it fails, at most 8 times), then bisect until the bracket is within a
relative tolerance or the steps run out. Pure: `passes(rate)` runs one trial."""

from __future__ import annotations

from collections.abc import Callable

BRACKET_TRIALS = 8


def highest_passing_rate(
    start: float, passes: Callable[[float], bool], steps: int, tolerance: float
) -> float | None:
    """The highest rate a trial passed at (None when none did)."""
    lo: float | None = None
    hi: float | None = None
    rate = start
    for _ in range(BRACKET_TRIALS):
        if passes(rate):
            lo = rate
            if hi is not None:
                break
            rate *= 2
        else:
            hi = rate
            if lo is not None:
                break
            rate /= 2
    for _ in range(steps):
        if lo is None or hi is None or hi / lo - 1 <= tolerance:
            break
        mid = (lo + hi) / 2
        if passes(mid):
            lo = mid
        else:
            hi = mid
    return lo
