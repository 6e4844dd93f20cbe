"""`framework.precisions` timing: per repeat, every precision's single-sample and batched
calls, interleaved with the order rotated (collect); latency, throughput and paired speed-ups
with order-statistic bounds on the median repeat (score)."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from harness.probes.base import CollectContext
from harness.probes.framework.args import PrecisionsArgs
from harness.probes.framework.reference import Reference
from harness.probes.framework.sessions import batch_capacity
from harness.schema import Interval, Measurement
from harness.stats import median_bounds


def _batch(session: Any, wanted: int, n: int) -> int:
    capacity = batch_capacity(session)
    return max(1, min(wanted, n, capacity or wanted))


def _time_interleaved(
    ctx: CollectContext, args: PrecisionsArgs, sessions: dict[str, Any], ref: Reference
) -> dict[str, dict[str, Any]]:
    """Per repeat, every precision's single-sample then batched timing, order rotated."""
    order = [p for p in args.precisions if p in sessions]
    if not order:
        return {}
    x = ref.x_test
    plans: dict[str, dict[str, Any]] = {}
    for p in order:
        session = sessions[p]
        name = session.get_inputs()[0].name
        batch = _batch(session, args.batch_size, len(x))
        singles = [{name: x[i : i + 1]} for i in range(len(x))]
        batches = [{name: x[i : i + batch]} for i in range(0, len(x) - batch + 1, batch)]
        per_call = _warm(session, singles, args.warmup_calls)
        per_batch = _warm(session, batches, max(2, args.warmup_calls // 4))
        plans[p] = {
            "session": session,
            "singles": singles,
            "batches": batches,
            "calls": max(1, math.ceil(args.min_repeat_s / max(per_call, 1e-9))),
            "batch_calls": max(1, math.ceil(args.min_repeat_s / max(per_batch, 1e-9))),
            "batch_size": batch,
            "single_s": [],
            "batch_s": [],
        }
    for r in range(args.repeats):
        ctx.progress(f"timing repeat {r + 1}/{args.repeats}")
        rotated = order[r % len(order) :] + order[: r % len(order)]
        for kind in ("single", "batch"):
            for p in rotated:
                plan = plans[p]
                feeds = plan["singles"] if kind == "single" else plan["batches"]
                count = plan["calls"] if kind == "single" else plan["batch_calls"]
                plan[f"{kind}_s"].append(_timed(plan["session"], feeds, count))
    return {
        p: {
            "single": {"calls": plan["calls"], "batch_size": 1, "repeat_s": plan["single_s"]},
            "batch": {
                "calls": plan["batch_calls"],
                "batch_size": plan["batch_size"],
                "repeat_s": plan["batch_s"],
            },
        }
        for p, plan in plans.items()
    }


def _warm(session: Any, feeds: list[dict[str, Any]], calls: int) -> float:
    """Run `calls` warm-up calls; the seconds per call of the last half."""
    _timed(session, feeds, max(1, calls // 2))
    half = max(1, calls - calls // 2)
    return _timed(session, feeds, half) / half


def _timed(session: Any, feeds: list[dict[str, Any]], count: int) -> float:
    run = session.run
    k = len(feeds)
    t0 = time.perf_counter()
    for i in range(count):
        run(None, feeds[i % k])
    return time.perf_counter() - t0


def _per_call(record: dict[str, Any], kind: str) -> list[float]:
    t = record["timing"][kind]
    return [s / t["calls"] for s in t["repeat_s"]]


def _rates(record: dict[str, Any]) -> list[float]:
    t = record["timing"]["batch"]
    return [t["calls"] * t["batch_size"] / s for s in t["repeat_s"]]


def _bounded(
    mid: str,
    samples: list[float],
    unit: str,
    scale: float,
    confidence: float,
    n: int,
    method: str,
    details: dict[str, Any],
) -> Measurement:
    b = median_bounds(samples, confidence)
    return Measurement(
        id=mid,
        value=b.median * scale,
        unit=unit,
        n=n,
        repeats=len(samples),
        ci=Interval(
            low=None if b.low is None else b.low * scale,
            high=None if b.high is None else b.high * scale,
            confidence=confidence,
            method="one-sided distribution-free order-statistic bounds on the median repeat",
            need=""
            if b.low is not None
            else f"need at least {b.min_n} repeats for a {confidence:.0%} bound",
        ),
        method=method,
        details=details,
    )


def _timing_measurements(p: str, record: dict[str, Any], confidence: float) -> list[Measurement]:
    single = record["timing"]["single"]
    batch = record["timing"]["batch"]
    repeats = len(single["repeat_s"])
    lat = _bounded(
        f"{p}.latency",
        _per_call(record, "single"),
        "ms",
        1e3,
        confidence,
        single["calls"] * repeats,
        f"single-sample latency: median over {repeats} repeats of {single['calls']} "
        "back-to-back session.run calls (held-out samples in turn), precisions interleaved",
        {"min_ms": min(_per_call(record, "single")) * 1e3},
    )
    thr = _bounded(
        f"{p}.throughput",
        _rates(record),
        "samples/s",
        1.0,
        confidence,
        batch["calls"] * batch["batch_size"] * repeats,
        f"batched throughput: median over {repeats} repeats of {batch['calls']} calls of "
        f"batch {batch['batch_size']}",
        {"batch_size": batch["batch_size"]},
    )
    return [lat, thr]


def _speedups(
    p: str, fp32: dict[str, Any], record: dict[str, Any], confidence: float
) -> list[Measurement]:
    ref_lat, lat = _per_call(fp32, "single"), _per_call(record, "single")
    ref_thr, thr = _rates(fp32), _rates(record)
    pairs = min(len(ref_lat), len(lat))
    latency_ratio = [ref_lat[i] / lat[i] for i in range(pairs)]
    throughput_ratio = [thr[i] / ref_thr[i] for i in range(pairs)]
    return [
        _bounded(
            f"{p}.speedup",
            latency_ratio,
            "ratio",
            1.0,
            confidence,
            pairs,
            f"FP32 / {p.upper()} single-sample latency, per repeat (the two were timed in the "
            "same repeat); median of the paired ratios",
            {"fp32_median_ms": statistics.median(ref_lat) * 1e3},
        ),
        _bounded(
            f"{p}.throughput_speedup",
            throughput_ratio,
            "ratio",
            1.0,
            confidence,
            pairs,
            f"{p.upper()} / FP32 batched throughput, per repeat; median of the paired ratios",
            {"fp32_median_samples_per_s": statistics.median(ref_thr)},
        ),
    ]
