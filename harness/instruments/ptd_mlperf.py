"""MLPerf Power's acceptance rules, applied to a recorded PTDaemon pass.

Pure functions of the records `harness.instruments.ptdaemon.PtdMeter` writes (and of the
ranging pass's record), so `score` decides them and `harness audit` re-derives them from
the evidence. `rejections` lists what would make MLPerf's checker reject a testing pass
(each makes the power verdict INCONCLUSIVE); `ranging_rejection` is the testing-vs-ranging
average rule; `unranged_rejection` refuses a pass on fixed ranges that no ranging pass on its
workload chose (ranges set by hand); `notes` lists where a pass is not run the way MLPerf
runs it (sample period, settle time, daemon version and analyzer model), which is reported
but decides nothing.
"""

from __future__ import annotations

from typing import Any

from harness.instruments.ptdaemon import (
    MLPERF_ANALYZERS,
    MLPERF_PERIOD_MS,
    MLPERF_PTD_VERSIONS,
    MLPERF_RANGING_TOLERANCE,
    MLPERF_SETTLE_S,
    MLPERF_UNCERTAINTY_LIMIT,
    identify_version,
    parse_uncertainty,
)

REJECT = "MLPerf would reject this run"


def fixed_ranges(record: dict[str, Any]) -> bool:
    """The pass ran with fixed voltage and current ranges (not auto-ranging)."""
    this_pass = record.get("extra", {}).get("ranges", {}).get("this_pass", {})
    values = (str(this_pass.get("voltage", "Auto")), str(this_pass.get("current", "Auto")))
    return all(v.lower() != "auto" for v in values)


def rejections(record: dict[str, Any], start_s: float, end_s: float) -> list[str]:
    """Why MLPerf would reject this testing pass over the window [start_s, end_s] ([] when
    it would not). A pass that did not complete is judged by its status elsewhere."""
    if record.get("status") != "ok":
        return []
    extra = record.get("extra", {})
    problems: list[str] = []
    if not fixed_ranges(record):
        problems.append(
            "the pass ran on auto ranges: MLPerf ranges first and measures on fixed ranges, "
            "where the analyzer states each sample's uncertainty"
        )
    else:
        reply = str(extra.get("uncertainty_reply", ""))
        fields = parse_uncertainty(reply)
        if fields is None or fields["average"] < 0 or fields["total"] <= 0:
            problems.append(
                f"uncertainty checking is not active (PTDaemon's Uncertainty reply {reply!r}); "
                "MLPerf requires it"
            )
        else:
            total = fields["total"]
            if fields["invalid"]:
                problems.append(
                    f"{fields['invalid']} of {total} samples over the analyzer's uncertainty limit"
                )
            if fields["unknown"]:
                problems.append(f"{fields['unknown']} of {total} samples of unknown uncertainty")
            if fields["max"] > MLPERF_UNCERTAINTY_LIMIT:
                problems.append(
                    f"maximum uncertainty {fields['max']:.2%} is above "
                    f"{MLPERF_UNCERTAINTY_LIMIT:.0%} (average {fields['average']:.2%})"
                )
    errors = [e for e in extra.get("error_samples", []) if start_s <= float(e[0]) <= end_s]
    if errors:
        codes = sorted({f"{float(code):g}" for _, code in errors})
        problems.append(
            f"{len(errors)} error sample(s) inside the window (PTDaemon codes {', '.join(codes)})"
        )
    summary = extra.get("meter_summary") or {}
    if "samples" in summary:
        got_errors = len(extra.get("error_samples", []))
        got = len(record.get("power_samples", [])) + got_errors
        if summary["samples"] != got or summary["errors"] != got_errors:
            problems.append(
                f"PTDaemon's Watts summary counts {summary['samples']} samples "
                f"({summary['errors']} errors); RL returned {got} ({got_errors} errors)"
            )
    return [f"{REJECT}: {p}" for p in problems]


def unranged_rejection(record: dict[str, Any], phase: str) -> str:
    """Why MLPerf would reject a testing pass that has no ranging record for its window
    ("" when it would not): MLPerf measures on the fixed ranges its ranging pass chose on the
    very workload, so fixed ranges set by hand (`ranging: false` with `voltage_range` and
    `current_range`) are not enough. A lab may still measure that way: the figure is
    reported, and this says why it cannot decide. A pass on auto ranges is refused by
    `rejections`; one that did not complete is judged by its status elsewhere."""
    if record.get("status") != "ok" or not fixed_ranges(record):
        return ""
    this_pass = record["extra"]["ranges"]["this_pass"]
    return (
        f"{REJECT}: no ranging pass on the workload: the {phase} window was measured on "
        f"fixed ranges (voltage {this_pass['voltage']}, current {this_pass['current']}) that "
        "no ranging pass in the evidence chose (ranges set by hand)"
    )


def ranging_rejection(testing_w: float, ranging_w: float | None, why: str = "") -> str:
    """MLPerf's rule: the testing pass's average power is at least the ranging pass's minus
    5 % (both over their workload windows); "" when it holds. A ranging pass with no
    average (`ranging_w` None, `why` says why) cannot show that it holds."""
    if ranging_w is None:
        return (
            f"{REJECT}: the ranging pass gives no average power over its workload window "
            f"({why or 'no reason recorded'}), so the testing-vs-ranging rule cannot be checked"
        )
    floor = ranging_w * (1 - MLPERF_RANGING_TOLERANCE)
    if testing_w >= floor:
        return ""
    return (
        f"{REJECT}: the testing average {testing_w:.4g} W is below the ranging average "
        f"{ranging_w:.4g} W minus {MLPERF_RANGING_TOLERANCE:.0%} ({floor:.4g} W)"
    )


def notes(record: dict[str, Any]) -> list[str]:
    """Where the pass differs from how MLPerf runs one; each starts "not MLPerf"."""
    extra = record.get("extra", {})
    out: list[str] = []
    go = str((extra.get("go") or {}).get("command", ""))
    parts = go.split(",")
    period_ms = parts[1] if len(parts) > 1 else "?"
    if period_ms != str(MLPERF_PERIOD_MS):
        out.append(f"not MLPerf: sample period {period_ms} ms (MLPerf: {MLPERF_PERIOD_MS} ms)")
    settle = extra.get("settle") or {}
    waits = [float(settle.get(k, 0.0)) for k in ("before_go_s", "before_stop_s")]
    if min(waits) < MLPERF_SETTLE_S:
        out.append(
            f"not MLPerf: settle {waits[0]:g} s before Go and {waits[1]:g} s before Stop "
            f"(MLPerf: {MLPERF_SETTLE_S:g} s)"
        )
    identify = extra.get("identify")
    if identify:
        version = identify_version(identify)
        model = str(identify.get("driver", ""))
        if version not in MLPERF_PTD_VERSIONS or model not in MLPERF_ANALYZERS:
            out.append(
                f"not MLPerf: PTDaemon {version or 'version unknown'} with analyzer {model!r} "
                f"(MLPerf's checker accepts PTDaemon {', '.join(MLPERF_PTD_VERSIONS)} with "
                f"{', '.join(MLPERF_ANALYZERS)})"
            )
    return out
