"""The figures of one task, from its measurements in the signed statement and, where the
numbers lie only in evidence files, from those files (digest-checked, see `evidence`).

What is drawn, found by the shape of the data rather than by probe name:

- GEMM throughput per precision (`<p>.throughput` with a size sweep in its details): bars
  with the interval, the nominal peak from `<p>.percent_of_peak`; and the pilot sweep.
- power (`gross_w` naming its instrument, with `window.json`): the instrument's samples
  from `idle/` and `load/` with both windows shaded and the judged averages as bands.
- LoadGen latency (`latency_pNN` naming LoadGen logs): every run's percentiles from its
  `mlperf_log_summary.txt`, the judged figure with its interval.
- latency samples (`latencies_s` in the details): a histogram with p50, p90, p99.
- DET and ROC (`fmr` carrying `det_roc` points, with `fnmr`): both curves, the operating
  point with the two intervals.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from harness.power import COUNTER_SCALE_J, power_samples, unwrap_counter
from harness.rendering import plots
from harness.rendering.document import Figure
from harness.rendering.evidence import SignedEvidence, Unavailable
from harness.rendering.fmt import as_dict, as_list, is_number, num, pct

Measurements = Mapping[str, Mapping[str, Any]]
FigureIds = Iterator[str]

_SUMMARY_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?) percentile latency \(ns\)\s*:\s*(\d+)", re.M)
_LATENCY_ID = re.compile(r"latency_p(\d+(?:\.\d+)?)$")
MS_PER = {"s": 1000.0, "ms": 1.0, "us": 1e-3}


def _ci(m: Mapping[str, Any]) -> tuple[float | None, float | None]:
    ci = as_dict(m.get("ci"))
    low, high = ci.get("low"), ci.get("high")
    return (low if is_number(low) else None, high if is_number(high) else None)


def _confidence(ms: Sequence[Mapping[str, Any]]) -> str:
    levels = sorted({pct(as_dict(m.get("ci")).get("confidence")) for m in ms if m.get("ci")})
    return " / ".join(levels) if levels else "-"


# ---------------------------------------------------------------- GEMM


def _gemm_precisions(task: str, ms: Measurements) -> list[str]:
    out = []
    for mid, m in ms.items():
        rest = mid[len(task) + 1 :]
        details = as_dict(m.get("details"))
        if rest.endswith(".throughput") and rest.count(".") == 1 and "median_by_size" in details:
            out.append(rest.split(".")[0])
    return out


def _peak(task: str, precision: str, value: float, ms: Measurements) -> float | None:
    ratio = ms.get(f"{task}.{precision}.percent_of_peak")
    if ratio is None:
        return None
    peak = as_dict(ratio.get("details")).get("nominal_peak")
    if is_number(peak) and peak > 0:
        return float(peak)
    percent = ratio.get("value")
    return value * 100.0 / percent if is_number(percent) and percent > 0 else None


def gemm_figures(task: str, ms: Measurements, ids: FigureIds) -> list[Figure]:
    precisions = _gemm_precisions(task, ms)
    if not precisions:
        return []
    throughputs = [ms[f"{task}.{p}.throughput"] for p in precisions]
    units = sorted({str(m.get("unit")) for m in throughputs})
    bars = []
    for p, m in zip(precisions, throughputs, strict=True):
        value = float(m["value"])
        low, high = _ci(m)
        label = str(as_dict(m.get("details")).get("label") or p)
        unit = f" ({m.get('unit')})" if len(units) > 1 else ""
        bars.append(plots.Bar(label + unit, value, low, high, _peak(task, p, value, ms)))
    no_peak = [b.label for b in bars if b.peak is None]
    caption = (
        f"{task}: GEMM throughput per precision, the median of the fresh timed repeats with "
        f"its interval at {_confidence(throughputs)} (error bar) and the nominal dense peak of "
        "the system description (red mark)"
        + (f"; no nominal peak for {', '.join(no_peak)}" if no_peak else "")
    )
    figures = [Figure(caption, plots.throughput_bars(bars, " or ".join(units), next(ids)))]
    series, skipped = [], []
    for p, m in zip(precisions, throughputs, strict=True):
        label = str(as_dict(m.get("details")).get("label") or p)
        points = []
        for size, v in as_dict(as_dict(m.get("details")).get("median_by_size")).items():
            if is_number(v) and str(size).isdecimal():
                points.append((int(size), float(v)))
            else:
                skipped.append(f"{label} {size}")
        if points:
            series.append((label, sorted(points)))
    if series:
        note = f"skipped sizes: {', '.join(skipped)} (see the tables below)" if skipped else ""
        figures.append(
            Figure(
                f"{task}: median pilot throughput by size (the pilot repeats chose the size; "
                "the figure above comes from fresh repeats of it)",
                plots.size_sweep(series, " or ".join(units), next(ids)),
                note,
            )
        )
    return figures


# ---------------------------------------------------------------- power


def _record_samples(record: Mapping[str, Any]) -> list[tuple[float, float]]:
    samples = power_samples(dict(record))
    if samples:
        return samples
    counter = as_dict(record.get("energy_counter"))
    readings = as_list(counter.get("readings"))
    scale = COUNTER_SCALE_J.get(str(counter.get("unit")))
    if len(readings) < 2 or scale is None:
        return []
    points = unwrap_counter(readings, counter.get("max"))
    return [
        ((t0 + t1) / 2, (e1 - e0) * scale / (t1 - t0))
        for (t0, e0), (t1, e1) in itertools.pairwise(points)
        if t1 > t0
    ]


def power_figures(
    task: str, ms: Measurements, evidence: SignedEvidence, ids: FigureIds
) -> list[Figure]:
    gross = ms.get(f"{task}.gross_w")
    base = f"evidence/tasks/{task}"
    if gross is None or not evidence.listed(f"{base}/window.json"):
        return []
    details = as_dict(gross.get("details"))
    instrument = str(details.get("instrument") or "")
    caption = (
        f"{task}: power from {instrument} ({details.get('domain')}) around the idle window and "
        "the timed load window (shaded); the lines are the average power over each window, "
        "the bands their intervals from the instrument's stated uncertainty"
    )
    try:
        window = as_dict(evidence.read_json(f"{base}/window.json"))
        idle, load = as_list(window.get("idle")), as_list(window.get("load"))
        if len(idle) != 2 or len(load) != 2:
            raise Unavailable(f"{base}/window.json: no idle and load windows")
        samples: dict[float, float] = {}
        for phase in ("idle", "load"):
            name = f"{base}/{phase}/{instrument}.json"
            if evidence.listed(name):
                samples.update(_record_samples(as_dict(evidence.read_json(name))))
    except (Unavailable, KeyError, TypeError, ValueError) as error:
        why = error if isinstance(error, Unavailable) else f"unreadable record ({error!r})"
        return [Figure(caption, note=f"not drawn: {why}")]
    start, end = float(idle[0]) - 1.0, float(load[1]) + 1.0
    shown = sorted((t, w) for t, w in samples.items() if start <= t <= end)
    levels = []
    for metric, (t0, t1) in (("gross_w", load), ("idle_w", idle)):
        m = ms.get(f"{task}.{metric}")
        if m is not None and is_number(m.get("value")):
            low, high = _ci(m)
            label = f"{metric} {num(m['value'])} W"
            band = f"{metric} interval at {pct(as_dict(m.get('ci')).get('confidence'))}"
            levels.append(
                plots.Level(label, float(t0), float(t1), float(m["value"]), low, high, band)
            )
    windows = [
        ("idle window", float(idle[0]), float(idle[1])),
        ("timed load window", float(load[0]), float(load[1])),
    ]
    note = "" if shown else "the instrument recorded no samples in these windows"
    return [Figure(caption, plots.power_trace(shown, windows, levels, next(ids)), note)]


# ---------------------------------------------------------------- latency


def _summary_percentiles(text: str) -> list[tuple[float, float]]:
    return [(float(p), int(ns) / 1e6) for p, ns in _SUMMARY_PERCENTILE.findall(text)]


def loadgen_latency_figures(
    task: str, ms: Measurements, evidence: SignedEvidence, ids: FigureIds
) -> list[Figure]:
    groups: dict[tuple[str, tuple[str, ...]], list[tuple[str, Mapping[str, Any]]]] = {}
    for mid, m in ms.items():
        named = as_list(as_dict(m.get("details")).get("loadgen_logs"))
        prefix, _, metric = mid.rpartition(".")
        if _LATENCY_ID.search(metric) and named and m.get("unit") == "ms":
            groups.setdefault((prefix, tuple(str(x) for x in named)), []).append((metric, m))
    figures = []
    for (prefix, logs), members in groups.items():
        where = "/".join(prefix.split("."))
        caption = (
            f"{prefix}: latency percentiles of each LoadGen performance run (its "
            "mlperf_log_summary.txt), the judged figures as diamonds with their intervals"
        )
        try:
            runs = []
            for log in logs:
                text = evidence.read_text(f"evidence/tasks/{where}/{log}")
                runs.append((log.split("/")[-2] if "/" in log else log, _summary_percentiles(text)))
        except Unavailable as error:
            figures.append(Figure(caption, note=f"not drawn: {error}"))
            continue
        judged = []
        for metric, m in members:
            match = _LATENCY_ID.search(metric)
            assert match is not None
            low, high = _ci(m)
            judged.append(plots.Judged(float(match.group(1)), float(m["value"]), low, high, metric))
        figures.append(Figure(caption, plots.latency_percentiles(runs, judged, next(ids))))
    return figures


def _nearest_rank(ordered: Sequence[float], percentile: float) -> float:
    k = max(1, math.ceil(percentile / 100.0 * len(ordered)))
    return ordered[k - 1]


def latency_sample_figures(task: str, ms: Measurements, ids: FigureIds) -> list[Figure]:
    figures = []
    for mid, m in ms.items():
        samples = as_list(as_dict(m.get("details")).get("latencies_s"))
        scale = MS_PER.get(str(m.get("unit")))
        if len(samples) < 2 or not all(is_number(x) for x in samples) or scale is None:
            continue
        ordered = sorted(float(x) * 1000.0 for x in samples)
        marks = [(f"p{p:g}", _nearest_rank(ordered, p)) for p in (50.0, 90.0, 99.0)]
        low, high = _ci(m)
        band = None
        if low is not None and high is not None:
            band = (f"interval of {mid.rpartition('.')[2]}", low * scale, high * scale)
        caption = (
            f"{mid}: the {len(ordered)} timed latencies, p50, p90 and p99 by nearest rank, "
            f"the figure's interval shaded ({num(m.get('value'))} {m.get('unit')} judged)"
        )
        figures.append(Figure(caption, plots.latency_histogram(ordered, marks, band, next(ids))))
    return figures


# ---------------------------------------------------------------- DET / ROC


def _rate(m: Mapping[str, Any]) -> plots.Rate:
    low, high = _ci(m)
    return plots.Rate(
        float(m["value"]) / 100.0,
        None if low is None else low / 100.0,
        None if high is None else high / 100.0,
    )


def det_figures(task: str, ms: Measurements, ids: FigureIds) -> list[Figure]:
    figures = []
    for mid, m in ms.items():
        prefix, _, metric = mid.rpartition(".")
        details = as_dict(m.get("details"))
        curve = as_dict(details.get("det_roc"))
        fnmr = ms.get(f"{prefix}.fnmr")
        if metric != "fmr" or fnmr is None or curve.get("columns") != ["threshold", "fmr", "fnmr"]:
            continue
        points = [
            (float(p[0]), float(p[1]), float(p[2]))
            for p in as_list(curve.get("points"))
            if isinstance(p, list) and len(p) == 3 and all(is_number(x) for x in p)
        ]
        impostors = details.get("impostor_acquired")
        genuines = details.get("genuine_acquired")
        if not points or not is_number(impostors) or not is_number(genuines):
            continue
        floors = (0.5 / max(float(impostors), 1.0), 0.5 / max(float(genuines), 1.0))
        caption = (
            f"{prefix}: DET and ROC over the acquired comparisons "
            f"({num(genuines)} genuine, {num(impostors)} impostor), the operating point at "
            f"threshold {num(details.get('threshold'))} with the FMR and FNMR intervals; a "
            "rate of 0 is drawn on the axis floor (half of one error)"
        )
        figures.append(
            Figure(caption, plots.det_roc(points, _rate(m), _rate(fnmr), floors, next(ids)))
        )
    return figures


# ---------------------------------------------------------------- one task

Builder = Callable[[str, Measurements, SignedEvidence, FigureIds], list[Figure]]
BUILDERS: tuple[Builder, ...] = (
    lambda task, ms, ev, ids: gemm_figures(task, ms, ids),
    power_figures,
    loadgen_latency_figures,
    lambda task, ms, ev, ids: latency_sample_figures(task, ms, ids),
    lambda task, ms, ev, ids: det_figures(task, ms, ids),
)


def task_figures(
    task: str, measurements: Sequence[Mapping[str, Any]], evidence: SignedEvidence, ids: FigureIds
) -> list[Figure]:
    """Every figure of one task, in a fixed order."""
    ms = {
        str(m.get("id")): m
        for m in measurements
        if str(m.get("id", "")).startswith(f"{task}.") and is_number(m.get("value"))
    }
    figures: list[Figure] = []
    for build in BUILDERS:
        try:
            figures += build(task, ms, evidence, ids)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            # a statement the harness signed has the shapes above; a hand-made one may not
            figures.append(Figure(f"{task}: figure", note=f"not drawn: malformed data ({error})"))
    return figures
