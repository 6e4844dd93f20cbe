"""The scenario's figures from the task's performance runs: throughput and QPS as the median
over the repeats with order-statistic bounds, latency bounded by LoadGen's early stopping."""

from __future__ import annotations

import statistics
from typing import Any

from harness.probes.loadgen.args import LoadgenArgs
from harness.probes.loadgen.logs import (
    Run,
    failed_text,
    invalid_reason,
    ns_to_ms,
    squash,
    trial_passed,
)
from harness.probes.loadgen.mlperf import mlperf_note
from harness.schema import Interval, Measurement, Unmeasured
from harness.stats import median_bounds

EARLY_STOPPING_CONFIDENCE = 0.99  # LoadGen's early-stopping estimates (results.cc)
SCENARIO_METRICS = ("latency_p90", "latency_p99", "server_qps", "throughput")
TOKEN_METRICS = ("ttft_p99", "tpot_p99", "tokens_per_s")
TOKEN_UNIT = "tokens/s"
_SEED_KEYS = ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed")


def run_reason(run: Run) -> str:
    """Why one performance run cannot count ("" when it can): LoadGen's INVALID reasons,
    failed samples."""
    parts = [invalid_reason(run.log)]
    if run.stats["failed"]:
        parts.append(failed_text(run.stats))
    return "; ".join(p for p in parts if p)


def repeats_reason(perfs: list[Run], flags: list[str]) -> str:
    """Why the figure cannot decide ("" when it can): any performance run that cannot count
    (the first in full, the others named), and the compliance checks' flags."""
    bad = [(run.run["name"], why) for run in perfs if (why := run_reason(run))]
    parts: list[str] = []
    if bad and len(perfs) == 1:
        parts.append(bad[0][1])
    elif bad:
        first, why = bad[0]
        also = f" (also {', '.join(name for name, _ in bad[1:])})" if len(bad) > 1 else ""
        parts.append(
            f"{len(bad)} of {len(perfs)} performance runs cannot count{also}; {first}: {why}"
        )
    return "; ".join([*parts, *flags])


def _median_interval(values: list[float], confidence: float) -> tuple[float, Interval]:
    bounds = median_bounds(values, confidence)
    need = ""
    if bounds.low is None:
        need = (
            f"need at least {bounds.min_n} LoadGen performance runs for a {confidence:.0%} "
            f"bound (have {len(values)})"
        )
    return bounds.median, Interval(
        low=bounds.low,
        high=bounds.high,
        confidence=confidence,
        method=f"distribution-free one-sided order-statistic bounds on the median of "
        f"{len(values)} LoadGen performance runs, each with its own schedule seeds",
        need=need,
    )


def _per_run(run: Run, value: float, **extra: Any) -> dict[str, Any]:
    log = run.log
    return {
        "run": run.dir,
        "validity": log.get("result_validity"),
        "value": value,
        "query_count": int(log.get("result_query_count") or 0),
        "mean_latency_ms": ns_to_ms(log.get("result_mean_latency_ns", 0)),
        # what LoadGen was handed (MLPerf mode: mlperf.conf's seeds, never in `settings`)
        "seeds": {
            k: run.run.get("applied_settings", run.run["settings"]).get(k) for k in _SEED_KEYS
        },
        "invalid_reason": run_reason(run),
        **extra,
    }


def scenario_measurements(
    args: LoadgenArgs,
    perfs: list[Run],
    flags: list[str],
    confidence: float,
    unmeasured: list[Unmeasured],
    wanted: set[str],
    mlperf: dict[str, Any] | None = None,
) -> list[Measurement]:
    """The scenario's figures over the performance runs that have a LoadGen result (the
    others, and the compliance flags, make each figure unable to decide)."""
    done = [run for run in perfs if "result_validity" in run.log.values]
    if not done:
        reason = "LoadGen wrote no result for any performance run"
        unmeasured += [Unmeasured(id=m, reason=reason) for m in SCENARIO_METRICS if m in wanted]
        return []
    invalid = repeats_reason(perfs, flags)
    queries = sum(int(run.log.get("result_query_count") or 0) for run in done)
    runs = len(done)
    common = {
        "validity": "VALID" if all(run.log.valid for run in done) else "INVALID",
        "performance_runs": runs,
        "loadgen_logs": [f"{run.dir}/mlperf_log_summary.txt" for run in done],
        "settings": done[0].run["settings"],
        "mlperf": mlperf,
        # workers 0: each query is answered on LoadGen's issue thread, one at a time
        "serial_sut": args.workers == 0,
    }
    note = mlperf_note(mlperf) if mlperf else ""
    extra: list[Measurement] = []
    if args.use_token_latencies:
        extra = token_measurements(args, done, common, invalid, confidence, note, wanted)
    if args.scenario in ("SingleStream", "MultiStream"):
        return [_stream_latency(args, done, common, queries, invalid, note), *extra]
    if args.scenario == "Server":
        return [*_server(args, done, common, queries, invalid, confidence, note), *extra]
    values = [float(run.log.get("result_samples_per_second") or 0.0) for run in done]
    value, ci = _median_interval(values, confidence)
    return [
        Measurement(
            id="throughput",
            value=value,
            unit="samples/s",
            n=sum(int(run.log.get("effective_min_sample_count") or 0) for run in done),
            repeats=runs,
            ci=ci,
            method=f"MLPerf LoadGen Offline: samples per second, all samples issued at once; "
            f"the median of {runs} performance runs; LoadGen's validity rules (minimum "
            f"duration and samples) gate every run{note}",
            details={
                **common,
                "expected_qps": done[0].run["settings"]["offline_expected_qps"],
                "per_run": [_per_run(run, v) for run, v in zip(done, values, strict=True)],
            },
            invalid_reason=invalid,
        ),
        *extra,
    ]


def _stream_latency(
    args: LoadgenArgs,
    done: list[Run],
    common: dict[str, Any],
    queries: int,
    invalid: str,
    note: str = "",
) -> Measurement:
    """SingleStream p90 / MultiStream p99 as MLPerf reports it: LoadGen's early-stopping
    estimate of the percentile (a 99% upper bound over the run's queries), the median of
    the runs' estimates, bounded by the largest of them. The raw percentiles stay in the
    details. A run whose early stopping was not met has no estimate: its raw percentile
    stands in, and that run is INVALID by LoadGen's rules, so the figure cannot decide."""
    single = args.scenario == "SingleStream"
    key = (
        "result_90.00_percentile_latency_ns"
        if single
        else "result_99.00_percentile_per_query_latency_ns"
    )
    es_key = "early_stopping_latency_ss" if single else "early_stopping_latency_ms"
    pct = "p90" if single else "p99"
    raw = [ns_to_ms(run.log.get(key)) for run in done]
    estimates = [
        ns_to_ms(run.log.get(es_key))
        if run.log.get("early_stopping_met") is True and run.log.get(es_key)
        else None
        for run in done
    ]
    values = [r if e is None else e for r, e in zip(raw, estimates, strict=True)]
    unmet = [run for run, e in zip(done, estimates, strict=True) if e is None]
    high = max(e for e in estimates if e is not None) if not unmet else None
    need = ""
    if unmet:
        need = (
            f"LoadGen's early stopping was not met in {unmet[0].run['name']}: "
            f"{squash(unmet[0].log.get('early_stopping_result', ''))}"
        )
    per_run = [
        _per_run(run, v, early_stopping_estimate_ms=e, raw_percentile_ms=r)
        for run, v, e, r in zip(done, values, estimates, raw, strict=True)
    ]
    return Measurement(
        id=f"latency_{pct}",
        value=statistics.median(values),
        unit="ms",
        n=queries,
        repeats=len(done),
        ci=Interval(
            low=None,
            high=high,
            confidence=EARLY_STOPPING_CONFIDENCE,
            method=f"the largest of the {len(done)} performance runs' LoadGen early-stopping "
            f"estimates of the {pct} (each one-sided, 99%, tolerance 0)",
            need=need,
        ),
        method=f"MLPerf LoadGen {args.scenario}: LoadGen's early-stopping estimate of the "
        f"{pct} "
        + ("sample latency" if single else "per-query latency")
        + f" (the figure MLPerf reports; the raw {pct} is in the details), the median over "
        f"{len(done)} performance runs"
        + ("" if single else f", {args.samples_per_query} samples per query")
        + (f"; {len(unmet)} runs without an estimate give their raw {pct}" if unmet else "")
        + note,
        details={
            **common,
            f"raw_{pct}_ms": statistics.median(raw),
            "per_run": per_run,
        },
        invalid_reason=invalid,
    )


def _server(
    args: LoadgenArgs,
    done: list[Run],
    common: dict[str, Any],
    queries: int,
    invalid: str,
    confidence: float,
    note: str = "",
) -> list[Measurement]:
    bound = args.latency_bound_ms
    if bound is None:  # MLPerf mode: the model's bound, as LoadGen applied it
        bound = ns_to_ms(done[0].log.get("effective_target_latency_ns") or 0) or None
    completed = [float(run.log.get("result_completed_samples_per_sec") or 0.0) for run in done]
    p99 = [ns_to_ms(run.log.get("result_99.00_percentile_latency_ns")) for run in done]
    per_run = [
        _per_run(
            run,
            c,
            scheduled_samples_per_s=float(run.log.get("result_scheduled_samples_per_sec") or 0),
            p99_ms=p,
            overlatency_queries=run.log.get("result_overlatency_query_count"),
            early_stopping=squash(run.log.get("early_stopping_result", "")),
        )
        for run, c, p in zip(done, completed, p99, strict=True)
    ]
    details = {
        **common,
        "target_qps": done[0].run["settings"].get("server_target_qps"),
        "latency_bound_ms": bound,
        "per_run": per_run,
    }
    value, ci = _median_interval(completed, confidence)
    unmet = [
        run
        for run in done
        if not (
            run.log.get("early_stopping_met") is True
            and run.log.get("result_perf_constraints_met") is True
        )
    ]
    need = ""
    if unmet:
        need = (
            f"LoadGen's early stopping or latency constraint was not met in "
            f"{unmet[0].run['name']}: {squash(unmet[0].log.get('early_stopping_result', ''))}"
        )
    runs = len(done)
    bound_text = (
        f"p99 latency bound {bound:g} ms"
        if bound
        else f"TTFT bound {args.ttft_bound_ms or 0:g} ms, TPOT bound {args.tpot_bound_ms or 0:g} ms"
        if args.use_token_latencies and not args.mlperf_model
        else "LoadGen's TTFT and TPOT bounds"
    )
    serial = (
        "; SERIAL SUT (workers 0): each query is answered on LoadGen's issue thread, so a "
        "query waits for the one before it"
        if args.workers == 0
        else f"; {args.workers} worker threads answer queries concurrently"
    )
    return [
        Measurement(
            id="server_qps",
            value=value,
            unit="queries/s",
            n=queries,
            repeats=runs,
            ci=ci,
            method="MLPerf LoadGen Server: completed queries per second (one sample each) "
            f"under Poisson arrivals at the target QPS, {bound_text}; the "
            f"median of {runs} performance runs; LoadGen's validity rules (latency bound, "
            f"minimum duration and queries, early stopping) gate every run{serial}{note}",
            details=details,
            invalid_reason=invalid,
        ),
        Measurement(
            id="latency_p99",
            value=statistics.median(p99),
            unit="ms",
            n=queries,
            repeats=runs,
            ci=Interval(
                low=None,
                high=bound if bound and not unmet else None,
                confidence=EARLY_STOPPING_CONFIDENCE,
                method="LoadGen's Server early stopping: with 99% confidence the p99 "
                f"latency is within the bound when a run is successful (all {runs} were)",
                need=need,
            ),
            method="MLPerf LoadGen Server: p99 sample latency at the target QPS, the median "
            f"over {runs} performance runs{note}",
            details=details,
            invalid_reason=invalid,
        ),
    ]


def search_measurement(
    args: LoadgenArgs,
    runs: dict[str, Run],
    perfs: list[Run],
    invalid: str,
    confidence: float,
    unmeasured: list[Unmeasured],
) -> list[Measurement]:
    """The highest Server target QPS whose search trial met the latency bound, confirmed by
    the performance runs at that target: its lower bound is the order-statistic bound on
    their median completed QPS (never above the target itself)."""
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
    best = float(max(passing))
    done = [run for run in perfs if "result_validity" in run.log.values]
    if not done:
        unmeasured.append(
            Unmeasured(
                id="server_max_valid_qps",
                reason=f"LoadGen wrote no result for any confirmation run at {best:.4g} QPS",
            )
        )
        return []
    completed = [float(run.log.get("result_completed_samples_per_sec") or 0.0) for run in done]
    _, ci = _median_interval(completed, confidence)
    low = None if ci.low is None else min(ci.low, best)
    confirm = done[0].run["settings"].get("server_target_qps")
    return [
        Measurement(
            id="server_max_valid_qps",
            value=best,
            unit="queries/s",
            n=len(trials),
            repeats=len(done),
            ci=ci.model_copy(
                update={
                    "low": low,
                    "high": None,
                    "method": f"{ci.method} at the found target (completed QPS), capped at "
                    "the target",
                }
            ),
            method=f"bracketing then bisection over the Server target QPS with "
            f"{args.search_trial_s:g} s trials judged on LoadGen's latency constraint; the "
            f"highest passing target, confirmed by {len(done)} full performance runs at "
            f"{confirm:.4g} QPS (their LoadGen validity decides this figure's)",
            details={
                "trials": trials,
                "confirmation_runs": [run.dir for run in done],
                "confirmation_completed_qps": completed,
            },
            invalid_reason=invalid,
        )
    ]


def token_measurements(
    args: LoadgenArgs,
    done: list[Run],
    common: dict[str, Any],
    invalid: str,
    confidence: float,
    note: str,
    wanted: set[str],
) -> list[Measurement]:
    """LLM serving (use_token_latencies): LoadGen's time to first token and time per
    output token (p99, the median over the runs) and its tokens per second."""
    out: list[Measurement] = []
    queries = sum(int(run.log.get("result_query_count") or 0) for run in done)
    for metric, key, what in (
        ("ttft_p99", "result_first_token_99.00_percentile_latency_ns", "time to first token"),
        (
            "tpot_p99",
            "result_time_per_output_token_99.00_percentile_ns",
            "time per output token after the first",
        ),
    ):
        if metric not in wanted:
            continue
        values = [ns_to_ms(run.log.get(key) or 0) for run in done]
        out.append(
            Measurement(
                id=metric,
                value=statistics.median(values),
                unit="ms",
                n=queries,
                repeats=len(done),
                method=f"MLPerf LoadGen {args.scenario} with token latencies: p99 {what} "
                f"(the SUT reports its first token through FirstTokenComplete), the median "
                f"over {len(done)} performance runs{note}",
                details={
                    **common,
                    "per_run": [_per_run(r, v) for r, v in zip(done, values, strict=True)],
                },
                invalid_reason=invalid,
            )
        )
    key = (
        "result_tokens_per_second"
        if args.scenario == "Offline"
        else "result_completed_tokens_per_second"
    )
    rates = [float(run.log.get(key) or 0.0) for run in done]
    value, ci = _median_interval(rates, confidence)
    out.append(
        Measurement(
            id="tokens_per_s",
            value=value,
            unit=TOKEN_UNIT,
            n=queries,
            repeats=len(done),
            ci=ci,
            method=f"MLPerf LoadGen {args.scenario} with token latencies: output tokens per "
            f"second ({key}), the median of {len(done)} performance runs{note}",
            details={
                **common,
                "per_run": [_per_run(r, v) for r, v in zip(done, rates, strict=True)],
            },
            invalid_reason=invalid,
        )
    )
    return out
