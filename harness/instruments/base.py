"""Instruments: context managers a probe wraps around exactly its timed region.

An instrument samples while it is entered and, on exit, hands back a raw record (plain
JSON data) that the probe writes to its evidence. Every figure derived from it (energy,
average power, coverage) is computed later by `harness.power` from that record and the
probe's timed window alone, so `audit` reproduces it.

Record format (every instrument):
    {
      "name": "nvml-gpu0",             # unique within the run
      "kind": "nvml" | "rapl" | "ptdaemon" | "meter-log" | "visa",
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

import threading
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


class PollingSampler:
    """The background polling every sampled instrument shares: a daemon thread calls
    `_sample()` once per period between `_start_polling()` and `_stop_polling()`. A failed
    reading turns the status to "lost" with the reason and keeps what was read; nothing
    escapes to the code being measured."""

    name: str
    sample_period_s: float

    def _init_polling(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = "unavailable"
        self._reason = "never entered"
        self._closed = False

    def _sample(self) -> bool:
        """Take one reading; False (after `_lose`) when the instrument failed."""
        raise NotImplementedError

    def _lose(self, reason: str) -> None:
        with self._lock:
            if self._status == "ok" and not self._closed:
                self._status, self._reason = "lost", reason

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.sample_period_s):
                if not self._sample():
                    return
        except BaseException as error:  # never let the thread die silently
            self._lose(f"sampling thread failed: {error!r}")

    def _start_polling(self) -> None:
        """Mark the instrument live, take the first reading, start the thread."""
        self._stop.clear()
        self._closed = False
        self._status, self._reason = "ok", ""
        if not self._sample():
            return
        self._thread = threading.Thread(target=self._run, name=f"sampler-{self.name}", daemon=True)
        self._thread.start()

    def _stop_polling(self) -> None:
        """Stop the thread and take the last reading right at the end of the window."""
        try:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=max(1.0, 2 * self.sample_period_s))
                self._thread = None
            if self._status == "ok":
                self._sample()
        except Exception as error:  # nothing escapes the with block
            self._lose(f"stopping failed: {error!r}")
        finally:
            with self._lock:
                self._closed = True
