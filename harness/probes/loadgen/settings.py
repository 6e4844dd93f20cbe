"""LoadGen's TestSettings: what a run is told to expect, and the settings per scenario."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from harness.probes.loadgen.args import LoadgenArgs, Scenario

MAX_GENERATED_QUERIES = 2_000_000  # cap on what an expected latency makes LoadGen pre-generate
# cap on an Offline expected QPS taken from the warm-up: the warm-up times session.run
# alone, so for a near-instant SUT it is far above what LoadGen itself can complete, and
# LoadGen would build an Offline query of that many samples per second of min_duration
WARMUP_MAX_OFFLINE_QPS = 2_000_000.0


def loadgen_settings(scenario: Scenario, mode: str, **extra: Any) -> dict[str, Any]:
    return {"scenario": scenario, "mode": mode, **extra}


def apply_settings(lg: Any, values: dict[str, Any]) -> Any:
    settings = lg.TestSettings()
    for key, value in values.items():
        if key == "scenario":
            settings.scenario = getattr(lg.TestScenario, value)
        elif key == "mode":
            settings.mode = getattr(lg.TestMode, value)
        else:
            setattr(settings, key, value)
    return settings


@dataclass
class Plan:
    """What LoadGen is told to expect (from the args, else from the warm-up)."""

    expected_latency_ns: int
    target_qps: float
    seeds: dict[str, int]  # the TEST04, search and accuracy runs, and performance run 1
    same_index: int
    # LoadGen's seeds for each performance run, in order (the first is `seeds`)
    performance_seeds: list[dict[str, int]]


def scenario_settings(
    args: LoadgenArgs, plan: Plan, target_qps: float, min_duration_s: float
) -> dict[str, Any]:
    values: dict[str, Any] = {"min_duration_ms": round(min_duration_s * 1000), **plan.seeds}
    if args.min_query_count is not None:
        values["min_query_count"] = args.min_query_count
    if args.max_duration_s is not None:
        values["max_duration_ms"] = round(args.max_duration_s * 1000)
    if args.scenario == "SingleStream":
        values["single_stream_expected_latency_ns"] = plan.expected_latency_ns
    elif args.scenario == "MultiStream":
        values["multi_stream_samples_per_query"] = args.samples_per_query
        values["multi_stream_expected_latency_ns"] = plan.expected_latency_ns
    elif args.scenario == "Server":
        assert args.latency_bound_ms is not None
        values["server_target_qps"] = target_qps
        values["server_target_latency_ns"] = round(args.latency_bound_ms * 1e6)
    else:
        values["offline_expected_qps"] = target_qps
    return loadgen_settings(args.scenario, "PerformanceOnly", **values)


def _seeds(rng: random.Random) -> dict[str, int]:
    return {
        "qsl_rng_seed": rng.getrandbits(63),
        "sample_index_rng_seed": rng.getrandbits(63),
        "schedule_rng_seed": rng.getrandbits(63),
    }


def make_plan(
    args: LoadgenArgs, pilot: dict[str, Any], seed: int, fresh: int, performance_runs: int = 1
) -> Plan:
    latencies = sorted(pilot["single_latency_s"])
    single = latencies[len(latencies) // 2] if latencies else 1e-3
    floor_s = max(1e-6, args.min_duration_s * 2 / MAX_GENERATED_QUERIES)
    if args.expected_latency_ms is not None:
        expected_ns = round(args.expected_latency_ms * 1e6)
    else:
        per_query = single
        if args.scenario == "MultiStream" and pilot["batch_s"]:
            per_query = min(pilot["batch_s"])
        # under-estimating only makes LoadGen pre-generate more queries; over-estimating
        # makes it run out before the minimum duration (an INVALID run)
        expected_ns = round(max(per_query / 2, floor_s) * 1e9)
    if args.target_qps is not None:
        qps = args.target_qps
    elif args.scenario == "Offline" and pilot["batch_s"]:
        # over-estimating only lengthens the run; under-estimating ends it too soon
        qps = 2.0 * pilot["batch_size"] / max(min(pilot["batch_s"]), 1e-9)
        qps = min(qps, WARMUP_MAX_OFFLINE_QPS)
    else:
        qps = 0.5 / max(single, 1e-9)
    rng = random.Random(f"inference.loadgen:{seed}")
    seeds = _seeds(rng)
    same_index = rng.randrange(max(1, fresh))
    # each repeat its own sample order and arrival schedule, all from the run's seed
    repeats = [seeds] + [
        _seeds(random.Random(f"inference.loadgen:{seed}:performance-{k}"))
        for k in range(2, performance_runs + 1)
    ]
    return Plan(expected_ns, qps, seeds, same_index, repeats)
