"""TEST01-like and TEST04-like checks, from the runs' logs."""

from __future__ import annotations

from typing import Any

from harness.evidence import EvidenceReader
from harness.probes.loadgen.args import LoadgenArgs
from harness.probes.loadgen.logs import (
    MAX_REASONS,
    Run,
    accuracy_entries,
    ns_to_ms,
    performance_repeats,
)
from harness.probes.loadgen.outputs import outputs_match
from harness.schema import Measurement, Unmeasured


def score_test01(
    reader: EvidenceReader, runs: dict[str, Run], args: LoadgenArgs
) -> Measurement | Unmeasured:
    perfs, acc = performance_repeats(runs), runs.get("accuracy")
    if not perfs or acc is None:
        return Unmeasured(
            id="test01_match", reason="the evidence lacks the performance or the accuracy run"
        )
    formats = reader.read_json(f"{acc.dir}/formats.json")
    expected = {int(e["qsl_idx"]): e["data"] for e in accuracy_entries(reader, acc.dir)}
    compared = matched = skipped = logged = 0
    mismatches: list[dict[str, Any]] = []
    per_run: dict[str, dict[str, int]] = {}
    for perf in perfs:
        sampled = accuracy_entries(reader, perf.dir)
        logged += len(sampled)
        run_compared = run_matched = 0
        for entry in sampled:
            idx = int(entry["qsl_idx"])
            desc = formats.get(str(idx))
            if idx not in expected or desc is None or desc["kind"] == "failed":
                skipped += 1
                continue
            run_compared += 1
            got, want = bytes.fromhex(entry["data"]), bytes.fromhex(expected[idx])
            if outputs_match(got, want, desc, args.test01_rtol, args.test01_atol):
                run_matched += 1
            elif len(mismatches) < MAX_REASONS:
                mismatches.append(
                    {"run": perf.run["name"], "qsl_idx": idx, "seq_id": entry.get("seq_id")}
                )
        per_run[perf.run["name"]] = {"compared": run_compared, "matched": run_matched}
        compared += run_compared
        matched += run_matched
    if not compared:
        return Unmeasured(
            id="test01_match",
            reason=f"LoadGen logged {logged} performance-mode outputs and none could "
            "be compared with an accuracy-mode output",
        )
    fraction = matched / compared
    flagged = fraction < args.test01_min_match
    flag = (
        f"TEST01-like check failed: {compared - matched} of {compared} performance-mode "
        f"outputs differ from the accuracy-mode outputs of the same samples"
    )
    return Measurement(
        id="test01_match",
        value=fraction,
        unit="ratio",
        n=compared,
        repeats=len(perfs),
        method="TEST01-like: LoadGen logged a seeded random subset of each performance run's "
        "outputs (accuracy_log_sampling_target); each is compared with the AccuracyOnly "
        f"run's output for the same sample (text exactly, arrays within rtol "
        f"{args.test01_rtol:g}, atol {args.test01_atol:g})",
        details={
            "compared": compared,
            "matched": matched,
            "not_comparable": skipped,
            "per_run": per_run,
            "first_mismatches": mismatches,
            "min_match": args.test01_min_match,
            "flagged": flagged,
            "flag": flag if flagged else "",
        },
    )


def score_test04(runs: dict[str, Run], args: LoadgenArgs) -> Measurement | Unmeasured:
    unique, same = runs.get("test04-unique"), runs.get("test04-same")
    if unique is None or same is None:
        return Unmeasured(id="test04_speedup", reason="the evidence lacks the TEST04-like runs")
    key = "result_50.00_percentile_latency_ns"
    median_unique, median_same = unique.log.get(key), same.log.get(key)
    if not median_unique or not median_same:
        return Unmeasured(
            id="test04_speedup", reason="LoadGen reported no latencies for the TEST04 runs"
        )
    ratio = float(median_unique) / float(median_same)
    saving_ms = ns_to_ms(median_unique) - ns_to_ms(median_same)
    flagged = ratio > args.test04_max_ratio and saving_ms >= args.test04_min_saving_ms
    flag = (
        f"TEST04-like check failed: the SUT answered one repeated sample {ratio:.2f}x faster "
        f"({saving_ms:.3g} ms less per sample) than distinct samples (limit "
        f"{args.test04_max_ratio:g}x): suspected result caching"
    )
    failed = unique.stats["failed"] + same.stats["failed"]
    return Measurement(
        id="test04_speedup",
        value=ratio,
        unit="ratio",
        n=int(unique.log.get("result_query_count") or 0)
        + int(same.log.get("result_query_count") or 0),
        repeats=1,
        method="TEST04-like: SingleStream median latency over samples no earlier step had "
        "touched, each issued once (performance_issue_unique), divided by the median latency "
        "of one of them issued as often (performance_issue_same); a SUT that remembers "
        f"answers is much faster on the repeat (flagged above {args.test04_max_ratio:g}x "
        f"when that saves at least {args.test04_min_saving_ms:g} ms per sample)",
        details={
            "median_unique_ms": ns_to_ms(median_unique),
            "median_same_ms": ns_to_ms(median_same),
            "mean_unique_ms": ns_to_ms(unique.log.get("result_mean_latency_ns") or 0),
            "mean_same_ms": ns_to_ms(same.log.get("result_mean_latency_ns") or 0),
            "max_ratio": args.test04_max_ratio,
            "min_saving_ms": args.test04_min_saving_ms,
            "flagged": flagged,
            "flag": flag if flagged else "",
        },
        invalid_reason=f"{failed} samples failed in the TEST04 runs" if failed else "",
    )
