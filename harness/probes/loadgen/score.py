"""`inference.loadgen`'s score: the measurements, from the evidence's LoadGen runs alone."""

from __future__ import annotations

from harness.evidence import EvidenceReader
from harness.models import Interval, Measurement, Unmeasured
from harness.probes.base import ScoreContext, ScoreResult
from harness.probes.loadgen.accuracy_metric import accuracy_measurements
from harness.probes.loadgen.args import LoadgenArgs
from harness.probes.loadgen.compliance import score_test01, score_test04
from harness.probes.loadgen.logs import (
    Run,
    accuracy_entries,
    failed_text,
    invalid_reason,
    ns_to_ms,
    read_runs,
    squash,
    trial_passed,
)

EARLY_STOPPING_CONFIDENCE = 0.99  # LoadGen's early-stopping estimates (results.cc)


# metrics score() measures whether or not the performance run is in the evidence
_SCORED_APART = frozenset(
    {
        "test01_match",
        "test04_speedup",
        "failed_samples",
        "accuracy_outputs",
        "accuracy",
        "accuracy_errors",
    }
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
    names["failed_samples"] = "count"
    if args.accuracy:
        names["accuracy_outputs"] = "count"
    if args.accuracy_metric is not None:
        names["accuracy"] = "%"
        names["accuracy_errors"] = "count"
    if args.compliance:
        names["test01_match"] = "ratio"
        names["test04_speedup"] = "ratio"
    return names


def score_evidence(evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
    args = ctx.args
    assert isinstance(args, LoadgenArgs)
    runs = read_runs(evidence)
    measurements: list[Measurement] = []
    unmeasured: list[Unmeasured] = []
    wanted = metric_names(args)

    compliance_flags: list[str] = []
    if args.compliance:
        t04 = score_test04(runs, args)
        t01 = score_test01(evidence, runs, args)
        for result in (t01, t04):
            if isinstance(result, Measurement):
                measurements.append(result)
                if result.details.get("flagged"):
                    compliance_flags.append(result.details["flag"])
            else:
                unmeasured.append(result)

    main = runs.get("performance")
    if main is None:
        reason = "the evidence holds no performance run (collect did not get that far)"
        for metric in wanted:
            if metric not in _SCORED_APART:
                unmeasured.append(Unmeasured(id=metric, reason=reason))
    else:
        reasons = [invalid_reason(main.log)]
        if main.stats["failed"]:
            reasons.append(failed_text(main.stats))
        reasons += compliance_flags
        invalid = "; ".join(r for r in reasons if r)
        measurements += _scenario_measurements(args, main, invalid, unmeasured)
        if args.server_search:
            measurements += _search_measurement(args, runs, main, invalid, unmeasured)

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
            good = sum(1 for e in logged if e["data"])
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
                    },
                    invalid_reason=failed_text(accuracy.stats) if accuracy.stats["failed"] else "",
                )
            )
    if args.accuracy_metric is not None:
        for result in accuracy_measurements(evidence, runs, args.accuracy_metric, ctx.confidence):
            if isinstance(result, Measurement):
                measurements.append(result)
            else:
                unmeasured.append(result)
    return ScoreResult(measurements, unmeasured)


def _scenario_measurements(
    args: LoadgenArgs, main: Run, invalid: str, unmeasured: list[Unmeasured]
) -> list[Measurement]:
    log = main.log
    if "result_validity" not in log.values:
        reason = "LoadGen wrote no result for the performance run"
        for metric in ("latency_p90", "latency_p99", "server_qps", "throughput"):
            if metric in metric_names(args):
                unmeasured.append(Unmeasured(id=metric, reason=reason))
        return []
    queries = int(log.get("result_query_count") or 0)
    common = {
        "validity": log.get("result_validity"),
        "loadgen_log": f"{main.dir}/mlperf_log_summary.txt",
        "query_count": queries,
        "mean_latency_ms": ns_to_ms(log.get("result_mean_latency_ns", 0)),
        "settings": main.run["settings"],
    }
    met = log.get("early_stopping_met") is True
    out: list[Measurement] = []
    if args.scenario in ("SingleStream", "MultiStream"):
        single = args.scenario == "SingleStream"
        key = (
            "result_90.00_percentile_latency_ns"
            if single
            else "result_99.00_percentile_per_query_latency_ns"
        )
        es_key = "early_stopping_latency_ss" if single else "early_stopping_latency_ms"
        estimate = log.get(es_key)
        pct = "p90" if single else "p99"
        high = ns_to_ms(estimate) if met and estimate else None
        out.append(
            Measurement(
                id=f"latency_{pct}",
                value=ns_to_ms(log.get(key)),
                unit="ms",
                n=queries,
                repeats=1,
                ci=Interval(
                    low=None,
                    high=high,
                    confidence=EARLY_STOPPING_CONFIDENCE,
                    method=f"LoadGen's early-stopping estimate of the {pct} "
                    "(one-sided, 99%, tolerance 0), the figure MLPerf reports",
                    need=""
                    if high is not None
                    else f"LoadGen's early stopping was not met: "
                    f"{squash(log.get('early_stopping_result', ''))}",
                ),
                method=f"MLPerf LoadGen {args.scenario}: {pct} "
                + ("sample latency" if single else "per-query latency")
                + " over the performance run"
                + ("" if single else f", {args.samples_per_query} samples per query"),
                details={**common, "early_stopping_estimate_ms": ns_to_ms(estimate or 0)},
                invalid_reason=invalid,
            )
        )
    elif args.scenario == "Server":
        bound = args.latency_bound_ms
        completed = float(log.get("result_completed_samples_per_sec") or 0.0)
        details = {
            **common,
            "scheduled_samples_per_s": float(log.get("result_scheduled_samples_per_sec") or 0),
            "target_qps": main.run["settings"].get("server_target_qps"),
            "latency_bound_ms": bound,
            "overlatency_queries": log.get("result_overlatency_query_count"),
            "early_stopping": squash(log.get("early_stopping_result", "")),
        }
        out.append(
            Measurement(
                id="server_qps",
                value=completed,
                unit="queries/s",
                n=queries,
                repeats=1,
                method="MLPerf LoadGen Server: completed queries per second (one sample each) "
                f"under Poisson arrivals at the target QPS, p99 latency bound {bound:g} ms; "
                "LoadGen's validity rules (latency bound, minimum duration and queries, "
                "early stopping) gate the figure",
                details=details,
                invalid_reason=invalid,
            )
        )
        constraint = log.get("result_perf_constraints_met") is True
        out.append(
            Measurement(
                id="latency_p99",
                value=ns_to_ms(log.get("result_99.00_percentile_latency_ns")),
                unit="ms",
                n=queries,
                repeats=1,
                ci=Interval(
                    low=None,
                    high=bound if met and constraint else None,
                    confidence=EARLY_STOPPING_CONFIDENCE,
                    method="LoadGen's Server early stopping: with 99% confidence the p99 "
                    "latency is within the bound when the run is successful",
                    need=""
                    if met and constraint
                    else "LoadGen's early stopping or latency constraint was not met: "
                    f"{squash(log.get('early_stopping_result', ''))}",
                ),
                method="MLPerf LoadGen Server: p99 sample latency at the target QPS",
                details=details,
                invalid_reason=invalid,
            )
        )
    else:
        out.append(
            Measurement(
                id="throughput",
                value=float(log.get("result_samples_per_second") or 0.0),
                unit="samples/s",
                n=int(log.get("effective_min_sample_count") or 0),
                repeats=1,
                method="MLPerf LoadGen Offline: samples per second, all samples issued at "
                "once; LoadGen's validity rules (minimum duration and samples) gate the "
                "figure",
                details={**common, "expected_qps": main.run["settings"]["offline_expected_qps"]},
                invalid_reason=invalid,
            )
        )
    return out


def _search_measurement(
    args: LoadgenArgs,
    runs: dict[str, Run],
    main: Run,
    invalid: str,
    unmeasured: list[Unmeasured],
) -> list[Measurement]:
    trials = []
    for name, run in runs.items():
        if not name.startswith("search-"):
            continue
        passed, why = trial_passed(run.log, run.stats["failed"])
        trials.append(
            {
                "trial": name,
                "target_qps": run.run["settings"]["server_target_qps"],
                "passed": passed,
                "why": why,
                "p99_ms": ns_to_ms(run.log.get("result_99.00_percentile_latency_ns", 0)),
                "completed_qps": run.log.get("result_completed_samples_per_sec"),
                "validity": run.log.get("result_validity"),
            }
        )
    passing = [t["target_qps"] for t in trials if t["passed"]]
    if not passing:
        tried = ", ".join(f"{t['target_qps']:.4g}" for t in trials) or "none"
        unmeasured.append(
            Unmeasured(
                id="server_max_valid_qps",
                reason=f"no Server trial met the {args.latency_bound_ms:g} ms p99 bound "
                f"(target QPS tried: {tried})",
            )
        )
        return []
    best = max(passing)
    confirm = main.run["settings"].get("server_target_qps")
    return [
        Measurement(
            id="server_max_valid_qps",
            value=float(best),
            unit="queries/s",
            n=len(trials),
            repeats=1,
            method=f"bracketing then bisection over the Server target QPS with "
            f"{args.search_trial_s:g} s trials judged on LoadGen's latency constraint; the "
            f"highest passing target, confirmed by the full performance run at "
            f"{confirm:.4g} QPS (its LoadGen validity decides this figure's)",
            details={"trials": trials, "confirmation_run": main.dir},
            invalid_reason=invalid,
        )
    ]
