"""When each request is sent, as `vllm bench serve` schedules them.

The first request goes at 0; each next one follows a gap drawn from a gamma distribution of
shape `burstiness` and scale 1 / (rate x burstiness): mean gap 1 / rate, coefficient of
variation 1 / sqrt(burstiness). Burstiness 1 is a Poisson process; below 1 the arrivals
bunch, above 1 they even out. Without a rate every request is due at 0 (only a concurrency
cap, if any, then spaces them). The gaps come from numpy's PCG64 generator seeded with the
run's seed, so a schedule is reproducible from the evidence's seed.
"""

from __future__ import annotations

import numpy as np


def arrival_offsets(
    count: int, request_rate: float | None, burstiness: float, seed: int
) -> list[float]:
    """The planned send time of each of `count` requests, in seconds from the run's start."""
    if count <= 0:
        return []
    if request_rate is None:
        return [0.0] * count
    if request_rate <= 0 or burstiness <= 0:
        raise ValueError("request_rate and burstiness must be > 0")
    rng = np.random.default_rng(seed)
    gaps = rng.gamma(shape=burstiness, scale=1.0 / (request_rate * burstiness), size=count - 1)
    offsets = np.concatenate(([0.0], np.cumsum(gaps)))
    return [float(t) for t in offsets]


def describe(request_rate: float | None, burstiness: float, max_concurrency: int | None) -> str:
    cap = f"at most {max_concurrency} in flight" if max_concurrency else "no concurrency cap"
    if request_rate is None:
        return f"all requests due at once, {cap}"
    kind = "Poisson" if burstiness == 1 else f"gamma (burstiness {burstiness:g})"
    return f"{kind} arrivals at {request_rate:g} requests/s, {cap}"
