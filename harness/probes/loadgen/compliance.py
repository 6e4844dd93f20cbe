"""MLPerf's TEST01 and TEST04, from the runs' logs (compliance/TEST01, compliance/TEST04 of
mlcommons/inference).

Each compares its own run with performance-1 (the run with the same settings and seeds) on
the scenario's MLPerf score: SingleStream and MultiStream 1e9 over LoadGen's
early-stopping latency estimate (ns), Server completed samples per second, Offline
samples per second. The tolerance is 10%, 20% for short latencies (an early-stopping
estimate up to 200 us in SingleStream, 1.6 ms in MultiStream, as TEST01's
verify_performance.py has it). TEST01: its logged outputs match the accuracy run's, and
its score is within the tolerance either way. TEST04 (one sample issued throughout): its
score is not more than the tolerance above the normal run's.
"""

from __future__ import annotations

from typing import Any

from harness.evidence import EvidenceReader
from harness.probes.loadgen.args import LoadgenArgs
from harness.probes.loadgen.logs import (
    MAX_REASONS,
    Run,
    accuracy_entries,
    invalid_reason,
    performance_repeats,
)
from harness.probes.loadgen.outputs import outputs_match
from harness.schema import Measurement, Unmeasured

# the scenario's MLPerf score in a detail log (TEST01's verify_performance.py RESULT_FIELD)
SCORE_KEYS = {
    "SingleStream": "early_stopping_latency_ss",
    "MultiStream": "early_stopping_latency_ms",
    "Server": "result_completed_samples_per_sec",
    "Offline": "result_samples_per_second",
}
SHORT_LATENCY_NS = {"SingleStream": 200_000, "MultiStream": 1_600_000}


def mlperf_score(run: Run, scenario: str) -> float | None:
    """The run's MLPerf score (higher is better), None when LoadGen logged none."""
    value = run.log.get(SCORE_KEYS[scenario])
    if not isinstance(value, int | float) or value <= 0:
        return None
    return 1e9 / float(value) if scenario in SHORT_LATENCY_NS else float(value)


def tolerance(reference: Run, scenario: str) -> float:
    """MLPerf's 10%, or 20% when the reference's latency estimate is short."""
    limit = SHORT_LATENCY_NS.get(scenario)
    latency = reference.log.get(SCORE_KEYS[scenario])
    if limit is not None and isinstance(latency, int | float) and latency <= limit:
        return 0.20
    return 0.10


def _reference(runs: dict[str, Run], name: str, metric: str) -> tuple[Run, Run] | Unmeasured:
    perfs, test = performance_repeats(runs), runs.get(name)
    if not perfs or test is None:
        return Unmeasured(id=metric, reason=f"the evidence lacks performance-1 or the {name} run")
    return perfs[0], test


def _scores(
    reference: Run, test: Run, scenario: str, metric: str
) -> tuple[float, float] | Unmeasured:
    ref, got = mlperf_score(reference, scenario), mlperf_score(test, scenario)
    if ref is None or got is None:
        missing = reference if ref is None else test
        return Unmeasured(
            id=metric,
            reason=f"LoadGen logged no {SCORE_KEYS[scenario]} in {missing.run['name']} "
            f"({invalid_reason(missing.log) or 'no estimate'})",
        )
    return ref, got


def _validity(test: Run, name: str) -> str:
    parts = [invalid_reason(test.log)]
    if test.stats["failed"]:
        parts.append(f"{test.stats['failed']} samples failed in the {name} run")
    return "; ".join(p for p in parts if p)


def score_test01(
    reader: EvidenceReader, runs: dict[str, Run], args: LoadgenArgs
) -> Measurement | Unmeasured:
    """TEST01's accuracy half: the outputs LoadGen logged in the TEST01 run against the
    accuracy run's outputs of the same samples."""
    test, acc = runs.get("test01"), runs.get("accuracy")
    if test is None or acc is None:
        return Unmeasured(
            id="test01_match", reason="the evidence lacks the TEST01 or the accuracy run"
        )
    formats = reader.read_json(f"{acc.dir}/formats.json")
    expected = {int(e["qsl_idx"]): e["data"] for e in accuracy_entries(reader, acc.dir)}
    compared = matched = skipped = 0
    mismatches: list[dict[str, Any]] = []
    sampled = accuracy_entries(reader, test.dir)
    for entry in sampled:
        idx = int(entry["qsl_idx"])
        desc = formats.get(str(idx))
        if idx not in expected or desc is None or desc["kind"] == "failed":
            skipped += 1
            continue
        compared += 1
        got, want = bytes.fromhex(entry["data"]), bytes.fromhex(expected[idx])
        if outputs_match(got, want, desc, args.test01_rtol, args.test01_atol):
            matched += 1
        elif len(mismatches) < MAX_REASONS:
            mismatches.append({"qsl_idx": idx, "seq_id": entry.get("seq_id")})
    if not compared:
        return Unmeasured(
            id="test01_match",
            reason=f"LoadGen logged {len(sampled)} outputs in the TEST01 run and none could "
            "be compared with an accuracy-mode output",
        )
    fraction = matched / compared
    flagged = fraction < args.test01_min_match
    flag = (
        f"TEST01 failed: {compared - matched} of {compared} performance-mode outputs differ "
        "from the accuracy-mode outputs of the same samples"
    )
    settings = test.run.get("applied_settings", test.run["settings"])
    return Measurement(
        id="test01_match",
        value=fraction,
        unit="ratio",
        n=compared,
        repeats=1,
        method="MLPerf TEST01: a PerformanceOnly run of its own in which LoadGen logs a "
        f"seeded random sample of the outputs (accuracy_log_sampling_target "
        f"{settings.get('accuracy_log_sampling_target')}, accuracy_log_rng_seed "
        f"{settings.get('accuracy_log_rng_seed')}); each compared with the AccuracyOnly "
        f"run's output for the same sample (text exactly, arrays within rtol "
        f"{args.test01_rtol:g}, atol {args.test01_atol:g})",
        details={
            "run": test.dir,
            "logged": len(sampled),
            "compared": compared,
            "matched": matched,
            "not_comparable": skipped,
            "first_mismatches": mismatches,
            "min_match": args.test01_min_match,
            "flagged": flagged,
            "flag": flag if flagged else "",
        },
        invalid_reason=f"{test.stats['failed']} samples failed in the TEST01 run"
        if test.stats["failed"]
        else "",
    )


def score_test01_performance(runs: dict[str, Run], args: LoadgenArgs) -> Measurement | Unmeasured:
    """TEST01's performance half: its score within the tolerance of performance-1's."""
    metric = "test01_performance"
    pair = _reference(runs, "test01", metric)
    if isinstance(pair, Unmeasured):
        return pair
    reference, test = pair
    scores = _scores(reference, test, args.scenario, metric)
    if isinstance(scores, Unmeasured):
        return scores
    ref, got = scores
    ratio = got / ref
    limit = tolerance(reference, args.scenario)
    flagged = not (1 - limit <= ratio <= 1 + limit)
    flag = (
        f"TEST01 failed: with output logging its {SCORE_KEYS[args.scenario]} score is "
        f"{ratio:.3f}x performance-1's (allowed {1 - limit:g}-{1 + limit:g}x)"
    )
    return Measurement(
        id=metric,
        value=ratio,
        unit="ratio",
        n=int(test.log.get("result_query_count") or 0),
        repeats=1,
        method="MLPerf TEST01 performance check: the TEST01 run's MLPerf score over "
        f"performance-1's (same settings and seeds), within +/-{limit:.0%}",
        details=_details(reference, test, ref, got, limit, flagged, flag),
        invalid_reason=_validity(test, "TEST01"),
    )


def score_test04(runs: dict[str, Run], args: LoadgenArgs) -> Measurement | Unmeasured:
    """TEST04: one sample issued throughout may not score more than the tolerance better
    than the normal run (a SUT that caches answers does)."""
    metric = "test04_speedup"
    pair = _reference(runs, "test04", metric)
    if isinstance(pair, Unmeasured):
        return pair
    reference, test = pair
    scores = _scores(reference, test, args.scenario, metric)
    if isinstance(scores, Unmeasured):
        return scores
    ref, got = scores
    ratio = got / ref
    limit = tolerance(reference, args.scenario)
    flagged = not got < ref * (1 + limit)
    flag = (
        f"TEST04 failed: issuing one sample throughout scores {ratio:.2f}x the normal run "
        f"(limit {1 + limit:g}x): suspected result caching"
    )
    settings = test.run.get("applied_settings", test.run["settings"])
    return Measurement(
        id=metric,
        value=ratio,
        unit="ratio",
        n=int(test.log.get("result_query_count") or 0),
        repeats=1,
        method=f"MLPerf TEST04: the {args.scenario} run with performance_issue_same "
        f"(sample index {settings.get('performance_issue_same_index')}) for the whole "
        f"duration, its MLPerf score over performance-1's; flagged from {1 + limit:g}x",
        details=_details(reference, test, ref, got, limit, flagged, flag),
        invalid_reason=_validity(test, "TEST04"),
    )


def _details(
    reference: Run, test: Run, ref: float, got: float, limit: float, flagged: bool, flag: str
) -> dict[str, Any]:
    return {
        "run": test.dir,
        "reference_run": reference.dir,
        "reference_score": ref,
        "test_score": got,
        "tolerance": limit,
        "test_validity": test.log.get("result_validity"),
        "flagged": flagged,
        "flag": flag if flagged else "",
    }
