"""Instruments: context managers a probe wraps around exactly its timed region.

An instrument samples while it is entered and, on exit, hands back a raw record (plain
JSON data) that the probe writes to its evidence. Every figure derived from it (energy,
average power, coverage) is computed later by `harness.power` from that record and the
probe's timed window alone, so `audit` reproduces it.

Record format (every instrument):
    {
      "name": "nvml-gpu0",             # unique within the run
      "kind": "nvml" | "rapl" | "ptdaemon" | "meter-log",
      "domain": "gpu-board" | "cpu-package" | "dram" | "wall",
      "partial_domain": bool,          # True when it sees only part of the system (NVML, RAPL)
      "sample_period_s": float,        # the rate it promised to sample at
      "uncertainty": {"relative": float | None, "absolute_w": float | None, "source": str},
      "clock": {"monotonic_s": float, "utc": "...Z"},   # one mapping of the two clocks
      "status": "ok" | "lost" | "unavailable",
      "reason": str,                   # why lost / unavailable ("" when ok)
      "power_samples": [[t_monotonic_s, watts], ...],        # instantaneous power
      "energy_counter": {              # optional: cumulative counter readings
         "unit": "mJ" | "uJ", "max": int | None,   # max: wrap-around range (None: no wrap)
         "readings": [[t_monotonic_s, raw_counter], ...]
      } | None,
      "extra": {...}                   # instrument-specific raw data (clocks, throttle, ranges)
    }
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol


def clock_mapping() -> dict[str, Any]:
    """One simultaneous reading of the monotonic clock and UTC wall time."""
    mono = time.monotonic()
    utc = datetime.now(UTC)
    return {"monotonic_s": mono, "utc": utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


class Instrument(Protocol):
    name: str

    def unavailable_reason(self) -> str | None:
        """None when the instrument can be used here; otherwise the concrete reason."""
        ...

    def __enter__(self) -> Instrument: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def record(self) -> dict[str, Any]:
        """The raw record (see the module docstring); valid after __exit__."""
        ...
