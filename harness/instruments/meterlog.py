"""Meter-log import: for labs whose meters cannot be driven, a CSV `timestamp,watts` with
ISO-8601 UTC timestamps at any sample rate, written by the meter while the run goes on. The
samples that fall in the timed window (after the stated clock offset) are used, exactly as a
live meter's would be; the record keeps when the log was read, so that a log holding rows
from after that moment (written before the run, for a run that had not happened) cannot
decide a verdict (`harness.power.log_problem`). Figures from it are labelled "imported
meter log", and a suite must allow imported logs for them to decide anything."""

from __future__ import annotations

import csv
import hashlib
import itertools
import math
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.errors import BadInput
from harness.instruments.base import clock_mapping
from harness.power import parse_utc

HEADER = ["timestamp", "watts"]
# how long the harness waits, after the window, for a live log to reach the window's end
LAG_WAIT_S = 3.0
MARGIN_S = 10.0  # rows kept beyond the instrument's enter/exit, for interpolation at the edges


def _parse_row(path: Path, number: int, row: list[str]) -> tuple[str, datetime, float]:
    where = f"line {number}"
    if len(row) != 2:
        raise BadInput(path, where, f"expected 2 fields, got {len(row)}")
    stamp, text = row[0].strip(), row[1].strip()
    try:
        when = parse_utc(stamp)
    except ValueError as error:
        raise BadInput(path, f"{where}: timestamp", str(error)) from None
    if when.utcoffset() != timedelta(0):
        raise BadInput(path, f"{where}: timestamp", "must be UTC (Z or +00:00)")
    try:
        watts = float(text)
    except ValueError:
        raise BadInput(path, f"{where}: watts", f"not a number: {text!r}") from None
    if not math.isfinite(watts) or watts < 0:
        raise BadInput(path, f"{where}: watts", f"must be finite and >= 0, got {text}")
    return stamp, when, watts


def read_log(path: Path) -> list[tuple[str, float]]:
    """Every row, validated: ISO-8601 UTC timestamps, increasing, finite non-negative watts."""
    if not path.is_file():
        raise BadInput(path, None, "meter log not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise BadInput(path, None, f"not UTF-8 text: {error}") from None
    lines = text.splitlines()
    if lines and not text.endswith("\n") and len(lines) > 2:
        lines.pop()  # a meter still writing: its last line is not finished yet
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != HEADER:
        raise BadInput(path, "line 1", f"expected the header 'timestamp,watts', got {header}")
    rows: list[tuple[str, float]] = []
    previous: datetime | None = None
    for number, row in enumerate(reader, start=2):
        if not row:
            continue
        stamp, when, watts = _parse_row(path, number, row)
        if previous is not None and when <= previous:
            raise BadInput(path, f"line {number}: timestamp", "timestamps must increase")
        previous = when
        rows.append((stamp, watts))
    if len(rows) < 2:
        raise BadInput(path, None, "needs at least 2 samples")
    return rows


class MeterLog:
    """An instrument over a recorded CSV: entering and leaving it only marks the clocks."""

    def __init__(
        self,
        name: str,
        path: Path,
        clock_offset_s: float = 0.0,
        uncertainty_relative: float | None = None,
        uncertainty_absolute_w: float | None = None,
        stated_in: str = "submission",
    ) -> None:
        self.name = name
        self.path = path
        self.clock_offset_s = clock_offset_s
        self.uncertainty = {
            "relative": uncertainty_relative,
            "absolute_w": uncertainty_absolute_w,
            "source": (
                "stated in the submission for this meter log"
                if stated_in == "submission"
                else "stated on the command line (--meter-uncertainty)"
            )
            if uncertainty_relative is not None or uncertainty_absolute_w is not None
            else "not stated",
        }
        self._clock: dict[str, Any] | None = None
        self._exit_clock: dict[str, Any] | None = None

    def unavailable_reason(self) -> str | None:
        return None if self.path.is_file() else f"meter log {self.path} not found"

    def __enter__(self) -> MeterLog:
        self._clock = clock_mapping()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit_clock = clock_mapping()
        self._wait_for_the_window_end()

    def _wait_for_the_window_end(self) -> None:
        """A live meter writes its samples a little after it takes them: wait (a few sample
        periods at most) until the log holds a row at or after the window's end on the
        meter's clock, so the window's last samples are not missed."""
        assert self._exit_clock is not None
        end = parse_utc(self._exit_clock["utc"]) + timedelta(seconds=self.clock_offset_s)
        deadline = time.monotonic() + LAG_WAIT_S
        while time.monotonic() < deadline:
            try:
                rows = read_log(self.path)
            except Exception:  # a log being rewritten: try again
                rows = []
            if rows and parse_utc(rows[-1][0]) >= end:
                return
            start = (
                parse_utc(self._clock["utc"]) + timedelta(seconds=self.clock_offset_s)
                if self._clock
                else end
            )
            if rows and parse_utc(rows[-1][0]) < start:
                return  # nothing written since the window began: not a live log
            time.sleep(0.05)

    def record(self) -> dict[str, Any]:
        assert self._clock is not None and self._exit_clock is not None, (
            "use it as a context manager"
        )
        rows = read_log(self.path)
        read = clock_mapping()  # when the harness read the log: no row can be later
        # clock_offset_s = meter clock - harness clock: the meter stamps our window that late
        first = parse_utc(self._clock["utc"]) + timedelta(seconds=self.clock_offset_s - MARGIN_S)
        last = parse_utc(self._exit_clock["utc"]) + timedelta(
            seconds=self.clock_offset_s + MARGIN_S
        )
        kept = [[stamp, watts] for stamp, watts in rows if first <= parse_utc(stamp) <= last]
        intervals = [
            (parse_utc(b[0]) - parse_utc(a[0])).total_seconds() for a, b in itertools.pairwise(rows)
        ]
        return {
            "name": self.name,
            "kind": "meter-log",
            "domain": "wall",
            "partial_domain": False,
            "sample_period_s": statistics.median(intervals),
            "uncertainty": self.uncertainty,
            "clock": self._clock,
            "status": "ok",
            "reason": "",
            "power_samples": [],
            "energy_counter": None,
            "extra": {
                "log_file": str(self.path),
                "log_sha256": hashlib.sha256(self.path.read_bytes()).hexdigest(),
                "log_rows": len(rows),
                "clock_offset_s": self.clock_offset_s,
                "first_row_utc": rows[0][0],
                "last_row_utc": rows[-1][0],
                "read_clock": read,
                "utc_samples": kept,
            },
        }
