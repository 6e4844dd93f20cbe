"""A power analyzer reached through VISA with SCPI commands (`pyvisa`; the pure-Python
`pyvisa-py` backend by default): Yokogawa WT series, Keysight, Rohde & Schwarz, Hioki...

On entering the timed window the meter is opened, identified (`*IDN?`, stored raw) and set
up with the submission's own commands (e.g. a Yokogawa WT's `:NUMERIC:NORMAL:ITEM1 P,1`);
then its power query (and, when given, voltage and current queries) is read every
`sample_period_s` in a daemon thread until the window closes. A reply that is not a number,
a timeout or a lost connection turns the record "lost" with the reason and keeps what was
read. The meter's accuracy, as the lab states it, is the record's uncertainty.
"""

from __future__ import annotations

import contextlib
import math
import time
from types import TracebackType
from typing import Any

from harness.instruments.base import PollingSampler, clock_mapping

UNCERTAINTY_SOURCE = "stated in the submission (the analyzer's accuracy at its ranges)"


def parse_number(reply: str) -> float:
    """A SCPI numeric reply ("1.2345E+01", "+12.5", "12.5 W"); ValueError otherwise, and
    for the SCPI "not a number" 9.91E+37 or an overload (9.9E+37)."""
    text = reply.strip().split()[0] if reply.strip() else ""
    value = float(text)
    if not math.isfinite(value) or abs(value) >= 9.8e37:
        raise ValueError(f"the meter reports no valid value ({reply.strip()!r})")
    return value


class VisaMeter(PollingSampler):
    def __init__(
        self,
        name: str,
        resource: str,
        backend: str,
        sample_period_s: float,
        power_query: str,
        voltage_query: str | None,
        current_query: str | None,
        setup: list[str],
        timeout_ms: int,
        uncertainty_relative: float | None,
        uncertainty_absolute_w: float | None,
        read_termination: str = "\n",
        write_termination: str = "\n",
    ) -> None:
        self.name = name
        self.resource = resource
        self.backend = backend
        self.sample_period_s = sample_period_s
        self.power_query = power_query
        self.voltage_query = voltage_query
        self.current_query = current_query
        self.setup = list(setup)
        self.timeout_ms = timeout_ms
        self.read_termination = read_termination
        self.write_termination = write_termination
        self.uncertainty = {
            "relative": uncertainty_relative,
            "absolute_w": uncertainty_absolute_w,
            "source": UNCERTAINTY_SOURCE
            if uncertainty_relative is not None or uncertainty_absolute_w is not None
            else "not stated",
        }
        self._init_polling()
        self._manager: Any = None
        self._meter: Any = None
        self._clock: dict[str, Any] | None = None
        self._power: list[list[float]] = []
        self._voltage: list[list[float]] = []
        self._current: list[list[float]] = []
        self._idn = ""
        self._setup_replies: list[str] = []

    # ---------------------------------------------------------------- connection

    def _open(self) -> Any:
        import pyvisa

        self._manager = pyvisa.ResourceManager(self.backend)
        meter = self._manager.open_resource(self.resource)
        meter.timeout = self.timeout_ms
        meter.read_termination = self.read_termination
        meter.write_termination = self.write_termination
        return meter

    def _close(self) -> None:
        for thing in (self._meter, self._manager):
            if thing is None:
                continue
            with contextlib.suppress(Exception):  # a meter that is gone cannot close politely
                thing.close()
        self._meter = self._manager = None

    def unavailable_reason(self) -> str | None:
        try:
            import pyvisa  # noqa: F401
        except ImportError:
            return "pyvisa is not installed (pip install pyvisa pyvisa-py)"
        try:
            meter = self._open()
            try:
                idn = str(meter.query("*IDN?")).strip()
            finally:
                self._close()
        except Exception as error:
            return f"VISA resource {self.resource} does not answer: {type(error).__name__}: {error}"
        return None if idn else f"VISA resource {self.resource} gave an empty *IDN? reply"

    # ---------------------------------------------------------------- sampling

    def _sample(self) -> bool:
        meter = self._meter
        try:
            t = time.monotonic()
            watts = parse_number(str(meter.query(self.power_query)))
            volts = (
                parse_number(str(meter.query(self.voltage_query))) if self.voltage_query else None
            )
            amps = (
                parse_number(str(meter.query(self.current_query))) if self.current_query else None
            )
        except Exception as error:
            self._lose(f"{self.resource}: {type(error).__name__}: {error}")
            return False
        with self._lock:
            if self._closed:
                return False
            self._power.append([t, watts])
            if volts is not None:
                self._voltage.append([t, volts])
            if amps is not None:
                self._current.append([t, amps])
        return True

    def __enter__(self) -> VisaMeter:
        self._power, self._voltage, self._current = [], [], []
        try:
            self._meter = self._open()
            self._idn = str(self._meter.query("*IDN?")).strip()
            self._setup_replies = []
            for command in self.setup:
                if command.rstrip().endswith("?"):
                    self._setup_replies.append(str(self._meter.query(command)).strip())
                else:
                    self._meter.write(command)
        except Exception as error:
            self._close()
            self._status = "unavailable"
            self._reason = f"{self.resource}: {type(error).__name__}: {error}"
            self._clock = clock_mapping()
            return self
        self._clock = clock_mapping()
        self._start_polling()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._meter is not None:
            self._stop_polling()
        self._close()

    def record(self) -> dict[str, Any]:
        with self._lock:
            return {
                "name": self.name,
                "kind": "visa",
                "domain": "wall",
                "partial_domain": False,
                "sample_period_s": self.sample_period_s,
                "uncertainty": dict(self.uncertainty),
                "clock": self._clock or clock_mapping(),
                "status": self._status,
                "reason": self._reason,
                "power_samples": [list(s) for s in self._power],
                "energy_counter": None,
                "extra": {
                    "resource": self.resource,
                    "backend": self.backend,
                    "idn": self._idn,
                    "setup": list(self.setup),
                    "setup_replies": list(self._setup_replies),
                    "queries": {
                        "power": self.power_query,
                        "voltage": self.voltage_query,
                        "current": self.current_query,
                    },
                    "voltage_samples": [list(s) for s in self._voltage],
                    "current_samples": [list(s) for s in self._current],
                },
            }
