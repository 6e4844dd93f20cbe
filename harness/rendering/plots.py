"""Figures drawn with matplotlib, returned as inline SVG that is the same bytes every time.

No pyplot: each figure is a `matplotlib.figure.Figure` of fixed size, drawn under
`rc_context` on matplotlib's defaults plus the fixed settings below, so neither a user's
matplotlibrc nor another figure changes the output. Glyphs are written as paths (no font
needed to view it), the SVG hash salt is fixed, the date and other metadata are left out,
and every id is prefixed so that several figures can share one HTML page.

Every interval is drawn as an interval: an error bar or a shaded band, one-sided where the
figure has only one bound.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib itself is imported when the first figure is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

RC: dict[Any, Any] = {  # keys are rcParams names
    "svg.hashsalt": "harness-report",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs everywhere
    "font.size": 9.0,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "axes.axisbelow": True,
}
SIZE_IN = (7.5, 3.4)
WIDE_IN = (9.0, 3.6)
SVG_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
INTERVAL: dict[str, Any] = {
    "fmt": "none",
    "ecolor": "black",
    "elinewidth": 1.2,
    "capsize": 4,
    "zorder": 4,
}

_HEAD = re.compile(r"\A.*?(?=<svg\b)", re.S)
_COMMENT = re.compile(r"<!--.*?-->\n?", re.S)
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(href="#|url\(#)')


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(), warnings.catch_warnings():
        # a label outside DejaVu Sans (e.g. CJK) is drawn as boxes, not warned about on stderr
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(RC)
        yield


def to_svg(fig: Figure, prefix: str) -> str:
    """The figure as an `<svg>` element for inlining: no XML header, doctype or comments
    (matplotlib repeats each text there), ids prefixed with `prefix`."""
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata=SVG_METADATA)
    svg = _COMMENT.sub("", _HEAD.sub("", out.getvalue()))
    svg = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    return _REF.sub(lambda m: f"{m.group(1)}{prefix}-", svg).rstrip("\n")


def _draw(size: tuple[float, float], ncols: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _legend(fig: Figure, ax: Axes) -> None:
    """One legend under the axes, outside them (nothing drawn over the data)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, labels, loc="outside lower center", ncols=min(3, len(handles)), fontsize=8
        )


def _errors(
    values: Sequence[float], lows: Sequence[float | None], highs: Sequence[float | None]
) -> list[list[float]]:
    """Error-bar lengths below and above each value (0 on a side without a bound)."""
    below = [v - lo if lo is not None else 0.0 for v, lo in zip(values, lows, strict=True)]
    above = [hi - v if hi is not None else 0.0 for v, hi in zip(values, highs, strict=True)]
    return [[max(b, 0.0) for b in below], [max(a, 0.0) for a in above]]


# ---------------------------------------------------------------- GEMM


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    low: float | None
    high: float | None
    peak: float | None = None  # nominal peak in the same unit, where known


def throughput_bars(bars: Sequence[Bar], unit: str, prefix: str) -> str:
    """Horizontal bars on a log axis, the interval as an error bar, the nominal peak as a
    marker on the same row."""
    with _style():
        fig, (ax,) = _draw((SIZE_IN[0], 1.2 + 0.42 * len(bars)))
        rows = list(range(len(bars)))
        values = [b.value for b in bars]
        ax.barh(rows, values, height=0.6, color="#3b78c2", label="median throughput")
        ax.errorbar(
            values,
            rows,
            xerr=_errors(values, [b.low for b in bars], [b.high for b in bars]),
            label="interval",
            **INTERVAL,
        )
        peaks = [(b.peak, i) for i, b in zip(rows, bars, strict=True) if b.peak]
        if peaks:
            ax.scatter(
                [p for p, _ in peaks],
                [i for _, i in peaks],
                marker="|",
                s=420,
                linewidths=2.5,
                color="#c62828",
                zorder=5,
                label="nominal peak",
            )
        known = [x for b in bars for x in (b.value, b.low, b.high, b.peak) if x and x > 0]
        ax.set_xscale("log")
        if known:
            ax.set_xlim(min(known) / 3, max(known) * 3)
        ax.set_yticks(rows, [b.label for b in bars])
        ax.invert_yaxis()
        ax.set_xlabel(unit)
        _legend(fig, ax)
        return to_svg(fig, prefix)


def size_sweep(
    series: Sequence[tuple[str, Sequence[tuple[int, float]]]], unit: str, prefix: str
) -> str:
    """Median pilot throughput against the square size, one line per precision."""
    with _style():
        fig, (ax,) = _draw(SIZE_IN)
        sizes: set[int] = set()
        for label, points in series:
            ax.plot([s for s, _ in points], [v for _, v in points], marker="o", label=label)
            sizes.update(s for s, _ in points)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ticks = sorted(sizes)
        ax.set_xticks(ticks, [str(s) for s in ticks])
        ax.minorticks_off()
        ax.set_xlabel("square size (m = n = k)")
        ax.set_ylabel(unit)
        _legend(fig, ax)
        return to_svg(fig, prefix)


# ---------------------------------------------------------------- power


@dataclass(frozen=True)
class Level:
    """A figure over a window: its value and interval drawn across the window."""

    label: str
    start_s: float
    end_s: float
    value: float
    low: float | None
    high: float | None
    band_label: str = "interval"


def power_trace(
    samples: Sequence[tuple[float, float]],
    windows: Sequence[tuple[str, float, float]],
    levels: Sequence[Level],
    prefix: str,
) -> str:
    """Power samples over time (seconds from the first window's start), each window
    shaded, each judged level drawn over its window with its interval as a band."""
    with _style():
        fig, (ax,) = _draw(SIZE_IN)
        origin = min(start for _, start, _ in windows)
        shades = ("#9e9e9e", "#f5a623", "#7cb342")
        for (label, start, end), shade in zip(windows, shades, strict=False):
            ax.axvspan(start - origin, end - origin, color=shade, alpha=0.15, label=label)
        if samples:
            ax.plot(
                [t - origin for t, _ in samples],
                [w for _, w in samples],
                marker=".",
                markersize=3,
                linewidth=0.8,
                color="#1f4e8c",
                label="power samples",
            )
        for level, color in zip(levels, ("#c62828", "#6a1b9a"), strict=False):
            xs = [level.start_s - origin, level.end_s - origin]
            ax.plot(xs, [level.value] * 2, color=color, linewidth=1.6, label=level.label)
            if level.low is not None or level.high is not None:
                low = level.value if level.low is None else level.low
                high = level.value if level.high is None else level.high
                ax.fill_between(
                    xs,
                    [low] * 2,
                    [high] * 2,
                    color=color,
                    alpha=0.3,
                    hatch="//",
                    linewidth=0,
                    label=level.band_label,
                )
        ax.set_xlabel("seconds from the start of the first window")
        ax.set_ylabel("W")
        _legend(fig, ax)
        return to_svg(fig, prefix)


# ---------------------------------------------------------------- latency

PERCENTILE_TICKS = (50.0, 90.0, 95.0, 99.0, 99.9)


def _nines(percentile: float) -> float:
    """Percentile on a 'nines' axis: 50 -> 0.3, 90 -> 1, 99 -> 2, 99.9 -> 3."""
    return -math.log10(max(1.0 - percentile / 100.0, 1e-6))


@dataclass(frozen=True)
class Judged:
    """The judged latency figure at its percentile, with its (often one-sided) interval."""

    percentile: float
    value: float
    low: float | None
    high: float | None
    label: str


def latency_percentiles(
    runs: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    judged: Sequence[Judged],
    prefix: str,
) -> str:
    """Latency (ms) against the percentile, one line per performance run, each judged
    figure as a point with its interval."""
    with _style():
        fig, (ax,) = _draw(SIZE_IN)
        for label, points in runs:
            ax.plot(
                [_nines(p) for p, _ in points], [ms for _, ms in points], marker="o", label=label
            )
        xs = [_nines(j.percentile) for j in judged]
        values = [j.value for j in judged]
        ax.errorbar(
            xs,
            values,
            yerr=_errors(values, [j.low for j in judged], [j.high for j in judged]),
            **INTERVAL,
        )
        for x, j in zip(xs, judged, strict=True):
            ax.scatter([x], [j.value], marker="D", zorder=5, label=f"{j.label} (judged)")
        ticks = sorted({*PERCENTILE_TICKS, *(j.percentile for j in judged)})
        ax.set_xticks([_nines(p) for p in ticks], [f"p{p:g}" for p in ticks])
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (ms)")
        _legend(fig, ax)
        return to_svg(fig, prefix)


def latency_histogram(
    samples_ms: Sequence[float],
    marks: Sequence[tuple[str, float]],
    band: tuple[str, float, float] | None,
    prefix: str,
) -> str:
    """Histogram of latencies with percentile marks and the figure's interval as a band."""
    with _style():
        fig, (ax,) = _draw(SIZE_IN)
        bins = max(5, min(40, int(math.sqrt(len(samples_ms))) + 1))
        ax.hist(list(samples_ms), bins=bins, color="#3b78c2", alpha=0.85, label="samples")
        for (label, ms), color in zip(marks, ("#2e7d32", "#c98a00", "#c62828"), strict=False):
            ax.axvline(ms, color=color, linewidth=1.4, label=f"{label} {ms:.4g} ms")
        if band is not None:
            label, low, high = band
            ax.axvspan(low, high, color="#6a1b9a", alpha=0.18, label=label)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("count")
        _legend(fig, ax)
        return to_svg(fig, prefix)


# ---------------------------------------------------------------- DET / ROC


@dataclass(frozen=True)
class Rate:
    """A rate (fraction) with its interval (fractions; None where unbounded)."""

    value: float
    low: float | None
    high: float | None


def det_roc(
    curve: Sequence[tuple[float, float, float]],
    fmr: Rate,
    fnmr: Rate,
    floors: tuple[float, float],
    prefix: str,
) -> str:
    """DET (FNMR against FMR, log-log) and ROC (1 - FNMR against FMR, log FMR) from
    [threshold, FMR, FNMR] points, the operating point with both intervals. Zero rates
    sit on the axis floor (`floors`: FMR's and FNMR's, half of one error in the set)."""
    fmr_floor, fnmr_floor = floors

    def lift(x: float, floor: float) -> float:
        return max(x, floor)

    with _style():
        fig, (det, roc) = _draw(WIDE_IN, ncols=2)
        xs = [lift(f, fmr_floor) for _, f, _ in curve]
        det.plot(
            xs, [lift(m, fnmr_floor) for _, _, m in curve], color="#1f4e8c", label="threshold sweep"
        )
        roc.plot(xs, [1.0 - m for _, _, m in curve], color="#1f4e8c")
        x = lift(fmr.value, fmr_floor)
        xerr = _errors(
            [x],
            [None if fmr.low is None else lift(fmr.low, fmr_floor)],
            [None if fmr.high is None else lift(fmr.high, fmr_floor)],
        )
        y = lift(fnmr.value, fnmr_floor)
        yerr = _errors(
            [y],
            [None if fnmr.low is None else lift(fnmr.low, fnmr_floor)],
            [None if fnmr.high is None else lift(fnmr.high, fnmr_floor)],
        )
        det.errorbar([x], [y], xerr=xerr, yerr=yerr, **INTERVAL)
        det.scatter([x], [y], marker="D", color="#c62828", zorder=5, label="operating point")
        # on the ROC, 1 - FNMR's interval is FNMR's interval flipped
        roc_err = [[yerr[1][0]], [yerr[0][0]]]
        roc.errorbar([x], [1.0 - fnmr.value], xerr=xerr, yerr=roc_err, **INTERVAL)
        roc.scatter([x], [1.0 - fnmr.value], marker="D", color="#c62828", zorder=5)
        det.set_xscale("log")
        det.set_yscale("log")
        roc.set_xscale("log")
        det.set_xlim(fmr_floor / 1.5, 1.5)
        roc.set_xlim(fmr_floor / 1.5, 1.5)
        det.set_ylim(fnmr_floor / 1.5, 1.5)
        roc.set_ylim(-0.02, 1.02)
        det.set_xlabel("false match rate")
        det.set_ylabel("false non-match rate")
        roc.set_xlabel("false match rate")
        roc.set_ylabel("1 - false non-match rate")
        _legend(fig, det)
        return to_svg(fig, prefix)
