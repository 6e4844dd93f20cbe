"""Exact, distribution-free statistics used by every verdict."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scipy import stats as _sp


@dataclass(frozen=True)
class MedianBounds:
    median: float
    low: float | None  # one-sided lower bound at `confidence`, None if n is too small
    high: float | None  # one-sided upper bound at `confidence`
    confidence: float
    n: int
    min_n: int  # the fewest samples that give a bound at this confidence


def _binom_tail_ge(n: int, k: int) -> float:
    """P(Binomial(n, 1/2) >= k), exactly."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def min_samples_for_median_bound(confidence: float) -> int:
    """Smallest n for which min(x) is a one-sided lower bound of the median at `confidence`."""
    n = 1
    while 1.0 - 0.5**n < confidence:
        n += 1
    return n


def median_bounds(samples: Sequence[float], confidence: float) -> MedianBounds:
    """Median with one-sided order-statistic bounds.

    The k-th smallest of n samples lies below the population median with probability
    P(Binomial(n, 1/2) >= k); the largest k for which that is at least `confidence`
    gives the lower bound (symmetrically the upper one). No distribution is assumed.
    """
    if not samples:
        raise ValueError("no samples")
    xs = sorted(samples)
    n = len(xs)
    med = statistics.median(xs)
    k = 0
    for cand in range(1, n + 1):
        if _binom_tail_ge(n, cand) >= confidence:
            k = cand
        else:
            break
    min_n = min_samples_for_median_bound(confidence)
    if k == 0:
        return MedianBounds(med, None, None, confidence, n, min_n)
    return MedianBounds(med, xs[k - 1], xs[n - k], confidence, n, min_n)


@dataclass(frozen=True)
class RateBounds:
    errors: int
    trials: int
    rate: float
    upper: float  # one-sided Clopper-Pearson upper bound
    lower: float  # one-sided Clopper-Pearson lower bound
    confidence: float


def clopper_pearson(errors: int, trials: int, confidence: float) -> RateBounds:
    """Exact one-sided binomial bounds for an error rate."""
    if trials <= 0:
        raise ValueError("no trials")
    if not 0 <= errors <= trials:
        raise ValueError("errors must lie in [0, trials]")
    alpha = 1.0 - confidence
    upper = 1.0 if errors == trials else float(_sp.beta.ppf(1 - alpha, errors + 1, trials - errors))
    lower = 0.0 if errors == 0 else float(_sp.beta.ppf(alpha, errors, trials - errors + 1))
    return RateBounds(errors, trials, errors / trials, upper, lower, confidence)


def trials_needed_zero_errors(max_rate: float, confidence: float) -> int:
    """Trials with no error needed for the upper bound to fall below `max_rate`."""
    return math.ceil(math.log(1.0 - confidence) / math.log(1.0 - max_rate))


def samples_to_clear(
    count: int,
    n: int,
    side: str,
    target: float,
    confidence: float,
    clears: Callable[[float, float], bool],
    scale: float = 1.0,
    negate: bool = False,
    limit: int = 10_000_000,
) -> int | None:
    """About the fewest samples N >= n for which, at the observed rate count / n, the bound
    scale x (Clopper-Pearson `side` of round(rate x N) in N), negated when asked, clears
    `target` (`clears(bound, target)`); None when no N up to `limit` does (the observed rate
    itself does not clear it)."""
    rate = count / n

    def bound(trials: int) -> float:
        # the count at that many samples, rounded against the verdict: no better than seen
        scaled = rate * trials
        k = math.floor(scaled + 1e-9) if side == "lower" else math.ceil(scaled - 1e-9)
        k = min(trials, max(0, k))
        b = clopper_pearson(k, trials, confidence)
        value = scale * (b.lower if side == "lower" else b.upper)
        return -value if negate else value

    if clears(bound(n), target):
        return n
    high = n
    while not clears(bound(high), target):
        if high >= limit:
            return None
        high = min(limit, high * 2)
    low = high // 2 if high > n else n
    while low + 1 < high:  # the bound moves towards the rate as N grows
        mid = (low + high) // 2
        if clears(bound(mid), target):
            high = mid
        else:
            low = mid
    return high


@dataclass(frozen=True)
class PoissonBounds:
    events: int
    exposure: float  # in the unit the rate is per (hours, days...)
    rate: float
    upper: float  # one-sided exact (Garwood) upper bound of the rate
    lower: float  # one-sided exact lower bound of the rate
    confidence: float


def poisson_rate_bounds(events: int, exposure: float, confidence: float) -> PoissonBounds:
    """Exact one-sided bounds of a Poisson rate from `events` seen over `exposure` (Garwood:
    chi-square quantiles; zero events give the upper bound -ln(1 - confidence) / exposure)."""
    if not math.isfinite(exposure) or exposure <= 0:
        raise ValueError("no exposure")
    if events < 0:
        raise ValueError("events must be >= 0")
    upper = float(_sp.chi2.ppf(confidence, 2 * (events + 1))) / 2.0
    lower = 0.0 if events == 0 else float(_sp.chi2.ppf(1.0 - confidence, 2 * events)) / 2.0
    return PoissonBounds(
        events, exposure, events / exposure, upper / exposure, lower / exposure, confidence
    )


def exposure_needed(events: int, max_rate: float, confidence: float) -> float:
    """The exposure at which `events` events give an upper bound of the rate at `max_rate`
    (with zero events: -ln(1 - confidence) / max_rate, e.g. about 3.0 days for one a day)."""
    if max_rate <= 0:
        raise ValueError("max_rate must be > 0")
    return float(_sp.chi2.ppf(confidence, 2 * (events + 1))) / 2.0 / max_rate
