"""LoadGen's TestSettings: what a run is told to expect, and the settings per scenario."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.probes.loadgen.args import LoadgenArgs, Scenario
from harness.probes.loadgen.fromconfig import from_config_record, settings_from_record

MAX_GENERATED_QUERIES = 2_000_000  # cap on what an expected latency makes LoadGen pre-generate
# cap on an Offline expected QPS taken from the warm-up: the warm-up times session.run
# alone, so for a near-instant SUT it is far above what LoadGen itself can complete, and
# LoadGen would build an Offline query of that many samples per second of min_duration
WARMUP_MAX_OFFLINE_QPS = 2_000_000.0


def loadgen_settings(scenario: Scenario, mode: str, **extra: Any) -> dict[str, Any]:
    return {"scenario": scenario, "mode": mode, **extra}


MLPERF_FILE = "mlperf.json"  # MLPerf mode: the model, the user.conf, LoadGen's settings

# the user.conf key that sets each scenario's expectation, and the TestSettings field it
# lands in (LoadGen's test_settings_internal.cc): the harness sizes these from the warm-up
# only where the submitter's user.conf leaves them alone
_EXPECTATION = {
    "SingleStream": ("target_latency", "single_stream_expected_latency_ns"),
    "MultiStream": ("target_latency", "multi_stream_expected_latency_ns"),
    "Server": ("target_qps", "server_target_qps"),
    "Offline": ("target_qps", "offline_expected_qps"),
}


@dataclass(frozen=True)
class MlperfMode:
    """MLPerf mode: the settings come from LoadGen's `TestSettings.FromConfig` for this
    model and scenario (its built-in mlperf.conf, then the user.conf when given)."""

    model: str
    scenario: Scenario
    user_conf: Path | None
    user_conf_text: str
    user_keys: frozenset[str]  # the keys user.conf sets for this model and scenario
    quick: bool  # --quick: the task's short durations replace the official ones
    official: dict[str, Any]  # FromConfig with mlperf.conf alone: every TestSettings field
    configured: dict[str, Any]  # ... and with the user.conf: what every run starts from

    def record(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "scenario": self.scenario,
            "user_conf": None
            if self.user_conf is None
            else {
                "path": str(self.user_conf),
                "sha256": hashlib.sha256(self.user_conf_text.encode("utf-8")).hexdigest(),
                "text": self.user_conf_text,
                "keys": sorted(self.user_keys),
            },
            "quick_overrides": self.quick,
            "mlperf_conf": self.official,
            "with_user_conf": self.configured,
        }


def user_conf_keys(text: str, model: str, scenario: str) -> frozenset[str]:
    """The keys a user.conf (`model.scenario.key = value` lines, `*` a wildcard, `#`
    comments) sets for this model and scenario."""
    keys = set()
    for line in text.splitlines():
        body = line.split("#", 1)[0].strip()
        name, sep, _ = body.partition("=")
        parts = name.strip().split(".")
        if sep and len(parts) == 3 and parts[0] in (model, "*") and parts[1] in (scenario, "*"):
            keys.add(parts[2].strip())
    return frozenset(keys)


def mlperf_mode(args: LoadgenArgs, base_dir: Path | None, quick: bool) -> MlperfMode | None:
    """The MLPerf mode of these args (None without `mlperf_model`), with LoadGen's settings
    for them; OSError or ValueError when the user.conf cannot be read or LoadGen refuses
    it."""
    if args.mlperf_model is None:
        return None
    path: Path | None = None
    text = ""
    if args.user_conf is not None:
        path = Path(args.user_conf)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        text = path.read_text(encoding="utf-8")
    keys = user_conf_keys(text, args.mlperf_model, args.scenario)
    official = from_config_record(args.mlperf_model, args.scenario, None)
    configured = (
        official if path is None else from_config_record(args.mlperf_model, args.scenario, path)
    )
    return MlperfMode(
        args.mlperf_model, args.scenario, path, text, keys, quick, official, configured
    )


def settings_record(settings: Any) -> dict[str, Any]:
    """Every field of a TestSettings as JSON (enums by name): what LoadGen was given."""
    record: dict[str, Any] = {}
    for name in dir(settings):
        if name.startswith("_") or name == "FromConfig":
            continue
        value = getattr(settings, name)
        if isinstance(value, bool | int | float | str):
            record[name] = value
        elif isinstance(getattr(value, "name", None), str):  # a LoadGen enum
            record[name] = value.name
    return record


def apply_settings(lg: Any, values: dict[str, Any], mlperf: MlperfMode | None = None) -> Any:
    """The TestSettings of one run: `values` set on LoadGen's defaults, or in MLPerf mode on
    what FromConfig gave."""
    if mlperf is not None:
        settings = settings_from_record(lg, mlperf.configured)
    else:
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


def mlperf_settings(
    args: LoadgenArgs, plan: Plan, target_qps: float, mode: MlperfMode
) -> dict[str, Any]:
    """MLPerf mode: what the harness sets on top of FromConfig: the expectation sized from
    the warm-up (unless the user.conf sets it) and, under --quick only, the task's short
    durations (such a run is not MLPerf-compliant, and the report says so)."""
    values: dict[str, Any] = {}
    conf_key, field = _EXPECTATION[args.scenario]
    if conf_key not in mode.user_keys:
        values[field] = target_qps if field.endswith("qps") else plan.expected_latency_ns
    if args.scenario == "MultiStream" and "samples_per_query" in mode.user_keys:
        values.pop(field, None)
    if mode.quick:
        values["min_duration_ms"] = round(args.min_duration_s * 1000)
        if args.min_query_count is not None:
            values["min_query_count"] = args.min_query_count
        if args.max_duration_s is not None:
            values["max_duration_ms"] = round(args.max_duration_s * 1000)
    if args.use_token_latencies:
        values["use_token_latencies"] = True
    return loadgen_settings(args.scenario, "PerformanceOnly", **values)


def scenario_settings(
    args: LoadgenArgs,
    plan: Plan,
    target_qps: float,
    min_duration_s: float,
    mlperf: MlperfMode | None = None,
) -> dict[str, Any]:
    if mlperf is not None:
        return mlperf_settings(args, plan, target_qps, mlperf)
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
        values["server_target_qps"] = target_qps
        if args.use_token_latencies:
            # LoadGen judges TTFT and TPOT; its per-sample bound is then 0 (as mlperf.conf
            # sets for the LLMs)
            assert args.ttft_bound_ms is not None and args.tpot_bound_ms is not None
            values["server_target_latency_ns"] = 0
            values["ttft_latency"] = round(args.ttft_bound_ms * 1e6)
            values["tpot_latency"] = round(args.tpot_bound_ms * 1e6)
        else:
            assert args.latency_bound_ms is not None
            values["server_target_latency_ns"] = round(args.latency_bound_ms * 1e6)
    else:
        values["offline_expected_qps"] = target_qps
    if args.use_token_latencies:
        values["use_token_latencies"] = True
    return loadgen_settings(args.scenario, "PerformanceOnly", **values)


def _seeds(rng: random.Random) -> dict[str, int]:
    return {
        "qsl_rng_seed": rng.getrandbits(63),
        "sample_index_rng_seed": rng.getrandbits(63),
        "schedule_rng_seed": rng.getrandbits(63),
    }


def make_plan(
    args: LoadgenArgs,
    pilot: dict[str, Any],
    seed: int,
    fresh: int,
    performance_runs: int = 1,
    min_duration_s: float | None = None,
) -> Plan:
    """`min_duration_s`: the runs' minimum duration when it is not the args' (MLPerf
    mode: mlperf.conf's or the user.conf's)."""
    latencies = sorted(pilot["single_latency_s"])
    single = latencies[len(latencies) // 2] if latencies else 1e-3
    duration_s = args.min_duration_s if min_duration_s is None else min_duration_s
    floor_s = max(1e-6, duration_s * 2 / MAX_GENERATED_QUERIES)
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
