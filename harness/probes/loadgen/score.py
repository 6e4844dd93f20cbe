"""`inference.loadgen`'s score: the measurements, from the evidence's LoadGen runs alone."""

from __future__ import annotations

from harness.adapters import precomputed
from harness.evidence import EvidenceReader
from harness.probes.base import ScoreContext, ScoreResult
from harness.probes.loadgen.accuracy_metric import accuracy_measurements
from harness.probes.loadgen.args import LoadgenArgs
from harness.probes.loadgen.compliance import (
    score_test01,
    score_test01_performance,
    score_test04,
)
from harness.probes.loadgen.figures import (
    EARLY_STOPPING_CONFIDENCE,
    TOKEN_UNIT,
    repeats_reason,
    scenario_measurements,
    search_measurement,
)
from harness.probes.loadgen.logs import (
    accuracy_entries,
    failed_text,
    performance_repeats,
    read_runs,
)
from harness.probes.loadgen.mlperf import mlperf_status
from harness.schema import Measurement, Unmeasured

__all__ = ["EARLY_STOPPING_CONFIDENCE", "metric_names", "score_evidence"]

# metrics score() measures whether or not the performance run is in the evidence
_SCORED_APART = frozenset(
    {
        "test01_match",
        "test01_performance",
        "test04_speedup",
        "failed_samples",
        "accuracy_outputs",
        "accuracy",
        "accuracy_errors",
    }
)
# what only a driven, timed system has: none of it is measured from pre-computed outputs
TIMED_METRICS = frozenset(
    {
        "latency_p90",
        "latency_p99",
        "server_qps",
        "server_max_valid_qps",
        "throughput",
        "test01_performance",
        "test04_speedup",
        "ttft_p99",
        "tpot_p99",
        "tokens_per_s",
    }
)


def precomputed_reason(adapter: str) -> str:
    return (
        f"pre-computed outputs (sut.adapter: {adapter}): the harness did not drive the "
        "system, so no latency or throughput is measured"
    )


def metric_names(args: LoadgenArgs) -> dict[str, str]:
    """Local metric id -> unit, for every metric the task may produce."""
    names: dict[str, str] = {}
    if args.scenario == "SingleStream":
        names["latency_p90"] = "ms"
    elif args.scenario == "MultiStream":
        names["latency_p99"] = "ms"
    elif args.scenario == "Server":
        names["server_qps"] = "queries/s"
        names["latency_p99"] = "ms"
        if args.server_search:
            names["server_max_valid_qps"] = "queries/s"
    else:
        names["throughput"] = "samples/s"
    if args.use_token_latencies:
        if args.scenario != "Offline":
            names["ttft_p99"] = "ms"
            names["tpot_p99"] = "ms"
        names["tokens_per_s"] = TOKEN_UNIT
    names["failed_samples"] = "count"
    if args.accuracy:
        names["accuracy_outputs"] = "count"
    if args.accuracy_metric is not None:
        names["accuracy"] = "%"
        names["accuracy_errors"] = "count"
    if args.compliance:
        names["test01_match"] = "ratio"
        names["test01_performance"] = "ratio"
        names["test04_speedup"] = "ratio"
    return names


def score_evidence(evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
    args = ctx.args
    assert isinstance(args, LoadgenArgs)
    runs = read_runs(evidence)
    measurements: list[Measurement] = []
    unmeasured: list[Unmeasured] = []
    wanted = metric_names(args)
    # the SUT only replayed what the applicant supplied: LoadGen timed a file lookup
    replayed = precomputed(ctx.sut)
    if replayed:
        reason = precomputed_reason(ctx.sut.adapter)
        unmeasured += [Unmeasured(id=m, reason=reason) for m in wanted if m in TIMED_METRICS]

    compliance_flags: list[str] = []
    if args.compliance:
        checks = [score_test01(evidence, runs, args)]
        if not replayed:
            checks += [score_test01_performance(runs, args), score_test04(runs, args)]
        for result in checks:
            if isinstance(result, Measurement):
                measurements.append(result)
                if result.details.get("flagged"):
                    compliance_flags.append(result.details["flag"])
            else:
                unmeasured.append(result)

    perfs = performance_repeats(runs)
    if not perfs and not replayed:
        reason = "the evidence holds no performance run (collect did not get that far)"
        for metric in wanted:
            if metric not in _SCORED_APART:
                unmeasured.append(Unmeasured(id=metric, reason=reason))
    elif not replayed:
        status = mlperf_status(evidence, perfs, ctx.quick)
        measurements += scenario_measurements(
            args, perfs, compliance_flags, ctx.confidence, unmeasured, set(wanted), status
        )
        if args.server_search:
            invalid = repeats_reason(perfs, compliance_flags)
            measurements += search_measurement(
                args, runs, perfs, invalid, ctx.confidence, unmeasured
            )

    failed = {name: run.stats["failed"] for name, run in runs.items()}
    answered = sum(run.stats["answered"] for run in runs.values())
    measurements.append(
        Measurement(
            id="failed_samples",
            value=float(sum(failed.values())),
            unit="count",
            n=answered,
            repeats=len(runs),
            method="samples the session reported as failed (SampleOutput.error), or "
            "answered out of order, or whose output could not be sent to LoadGen, "
            "over every LoadGen run of the task",
            details={
                "per_run": failed,
                "first_failures": {
                    name: run.stats["first_failures"]
                    for name, run in runs.items()
                    if run.stats["failed"]
                },
            },
        )
    )
    if args.accuracy:
        accuracy = runs.get("accuracy")
        if accuracy is None:
            unmeasured.append(
                Unmeasured(id="accuracy_outputs", reason="the evidence holds no accuracy run")
            )
        else:
            logged = accuracy_entries(evidence, accuracy.dir)
            good = len({int(e["qsl_idx"]) for e in logged if e["data"]})
            # AccuracyOnly issues every sample once: a second entry for a sample is LoadGen
            # told twice (only the first counts anywhere)
            seen: set[int] = set()
            duplicates = 0
            for entry in logged:
                idx = int(entry["qsl_idx"])
                duplicates += idx in seen
                seen.add(idx)
            why = [failed_text(accuracy.stats)] if accuracy.stats["failed"] else []
            if duplicates:
                why.append(
                    f"LoadGen's accuracy log holds {duplicates} duplicate entries "
                    "(samples answered more than once)"
                )
            measurements.append(
                Measurement(
                    id="accuracy_outputs",
                    value=float(good),
                    unit="count",
                    n=len(logged),
                    repeats=1,
                    method="samples answered with an output in LoadGen's AccuracyOnly "
                    "run; the outputs are kept in the evidence for a task's accuracy "
                    "script",
                    details={
                        "log": f"{accuracy.dir}/mlperf_log_accuracy.json",
                        "formats": f"{accuracy.dir}/formats.json",
                        "qsl_size": accuracy.run["qsl"]["total"],
                        "duplicate_entries": duplicates,
                    },
                    invalid_reason="; ".join(why),
                )
            )
    if args.accuracy_metric is not None:
        for result in accuracy_measurements(evidence, runs, args.accuracy_metric, ctx.confidence):
            if isinstance(result, Measurement):
                measurements.append(result)
            else:
                unmeasured.append(result)
    return ScoreResult(measurements, unmeasured)
