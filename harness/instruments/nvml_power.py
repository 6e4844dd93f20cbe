"""GPU board power and energy from NVML (`nvidia-ml-py`, imported as `pynvml`).

One `NvmlPowerInstrument` per GPU index (NVML's order). While entered it reads:

* the total energy counter, `nvmlDeviceGetTotalEnergyConsumption` (mJ since the driver was
  loaded; Volta and newer) -> `energy_counter`, the preferred source for energy. At enter it
  reads the counter every millisecond for up to `update_probe_s` to find when it updates
  (`extra["counter_update_probe"]`, the span of those reads); at exit it goes on reading
  until the counter has updated once after the window's end (at most `END_WAIT_PERIODS`
  update periods), so the last value includes all of the window;
* power -> `power_samples`: the field `NVML_FI_DEV_POWER_INSTANT` through
  `nvmlDeviceGetFieldValues` where the driver has it, else `nvmlDeviceGetPowerUsage`,
  which on Ampere (except GA100) and newer is a 1 s trailing average: then
  `extra["power_lag_s"]` is 0.5 and the reads go on for that long after the window's end;
  the field `NVML_FI_DEV_POWER_AVERAGE` too where present (into `extra`). 0 mW readings are
  not power (`extra["zero_power_reads"]`);
* SM/memory clocks, temperature and the clocks-event (throttle) reasons, every
  `telemetry_period_s` -> `extra["telemetry"]` as [[t, sm_mhz, mem_mhz, temp_c, reasons],
  ...] (None where a value could not be read).

Reads are scheduled against deadlines (k x `sample_period_s` from the first), so the time
the NVML calls take does not stretch the period; a deadline missed outright is skipped and
counted. A failed read is recorded (`extra["read_errors"]`) and tolerated; the instrument
is lost only when every primary source (counter and power) fails `MAX_CONSECUTIVE_FAILURES`
times in a row, or NVML says the GPU is lost. On a Grace Hopper module (a C2C link to the
CPU) the counter covers the whole module: the domain is "module" and power is read at
module scope. A GPU in MIG mode is unavailable: NVML measures only the whole GPU.

Without NVML or a GPU the instrument is a no-op: `unavailable_reason()` gives the reason,
entering and exiting does nothing, and `record()` has status "unavailable". Nothing here
raises, and pynvml functions a version lacks are checked for with hasattr. What the record
means over a window is decided in `harness.instruments.nvml_window`.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from harness import nvml
from harness.instruments.base import PollingSampler, clock_mapping
from harness.instruments.nvml_window import counter_update_period

UNCERTAINTY_SOURCE = (
    "NVML board power (GPU and its memory; not the host): NVIDIA documents "
    "nvmlDeviceGetPowerUsage as accurate to +/-5% of current draw only for Fermi and Kepler "
    "and gives no figure for later GPUs (on Ampere, except GA100, and newer it is a 1 s "
    "average), so no relative figure is claimed; the total energy counter "
    "(nvmlDeviceGetTotalEnergyConsumption, mJ, Volta and newer) is preferred for energy and "
    "cross-checked against the integrated power samples"
)

TELEMETRY_COLUMNS = ["t_monotonic_s", "sm_mhz", "mem_mhz", "temp_c", "clocks_event_reasons"]

MAX_CONSECUTIVE_FAILURES = 3  # rounds in a row with every primary source failing: lost
MAX_ERRORS_KEPT = 50  # read errors recorded one by one (all are counted)
PROBE_INTERVAL_S = 0.001  # between the tight counter reads at enter and after the window
PROBE_CHANGES = 6  # the probe at enter stops after this many changes of the counter
END_WAIT_PERIODS = 2.0  # after the window, wait at most this many update periods ...
END_WAIT_UNKNOWN_S = 1.0  # ... or this long when the period is unknown
TRAILING_AVERAGE_LAG_S = 0.5  # a 1 s trailing average describes the moment 0.5 s back
NVML_ERROR_GPU_IS_LOST = 15
NVML_DEVICE_ARCH_AMPERE = 7
GA100 = re.compile(r"\bA(100|30|800)\b")  # Ampere GPUs whose PowerUsage is instantaneous

# valueType of an nvmlFieldValue_t -> member of its value union (NVML_VALUE_TYPE_*)
_VALUE_MEMBER = {
    0: "dVal",
    1: "uiVal",
    2: "ulVal",
    3: "ullVal",
    4: "sllVal",
    5: "siVal",
    6: "usVal",
}

_FIELD_INSTANT = "nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)"
_FIELD_AVERAGE = "nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_AVERAGE)"
_POWER_USAGE = "nvmlDeviceGetPowerUsage"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field_number(value: Any) -> float:
    """The number in one nvmlFieldValue_t; RuntimeError when NVML returned none for it."""
    ret = getattr(value, "nvmlReturn", 0)
    if ret != 0:  # NVML_SUCCESS
        raise RuntimeError(f"field {getattr(value, 'fieldId', '?')} returned NVML error {ret}")
    member = _VALUE_MEMBER.get(int(getattr(value, "valueType", 1)), "uiVal")
    return float(getattr(value.value, member))


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(the middle of the call on the monotonic clock, what it returned)."""
    before = time.monotonic()
    value = fn()
    return (before + time.monotonic()) / 2, value


def power_is_trailing_average(architecture: int | None, name: str) -> bool:
    """Whether nvmlDeviceGetPowerUsage is a 1 s average here: Ampere and newer except GA100
    (A100, A30, A800), and, to be safe, a GPU whose architecture NVML does not say."""
    if architecture is None:
        return True
    return architecture >= NVML_DEVICE_ARCH_AMPERE and not GA100.search(name)


class NvmlPowerInstrument(PollingSampler):
    """Board (or Grace Hopper module) power and energy of GPU `index` while entered."""

    kind = "nvml"

    def __init__(
        self,
        index: int = 0,
        sample_period_s: float = 0.1,
        telemetry_period_s: float = 1.0,
        update_probe_s: float = 0.5,
    ) -> None:
        self.index = index
        self.name = f"nvml-gpu{index}"
        self.sample_period_s = sample_period_s
        self.telemetry_period_s = telemetry_period_s
        self.update_probe_s = update_probe_s
        self.domain = "gpu-board"
        self._init_polling()
        self._reset()

    def _reset(self) -> None:
        self._clock: dict[str, Any] | None = None
        self._pynvml: Any = None
        self._handle: Any = None
        self._opened = False
        self._closed = False
        self.domain = "gpu-board"
        self._energy: list[list[float]] = []
        self._energy_ok = False
        self._energy_reason = ""
        self._power: list[list[float]] = []
        self._power_source: str | None = None
        self._power_reason = ""
        self._power_scope = "gpu"
        self._power_lag_s = 0.0
        self._fields: list[Any] = []
        self._average: list[list[float]] = []
        self._average_ok = False
        self._zero_reads: list[float] = []
        self._telemetry: list[list[Any]] = []
        self._next_telemetry = 0.0
        self._reasons_fn: Any = None
        self._reasons_source: str | None = None
        self._errors: list[list[Any]] = []
        self._error_counts: dict[str, int] = {}
        self._failed_rounds = 0
        self._missed = 0
        self._probe_span: list[float] | None = None
        self._t0 = 0.0
        self._end_wait: dict[str, Any] | None = None
        self._gpu: dict[str, Any] = {"index": self.index}

    # -- NVML access ------------------------------------------------------------------------

    def _open(self) -> str | None:
        """The process's NVML session and the device handle; the reason when not possible."""
        pynvml, reason = nvml.session()
        if pynvml is None:
            return reason
        self._pynvml, self._opened = pynvml, True
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        except Exception as error:
            return f"NVML cannot count GPUs: {error}"
        if not 0 <= self.index < count:
            return f"no GPU with index {self.index} (NVML sees {count})"
        try:
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
        except Exception as error:
            return f"NVML cannot open GPU {self.index}: {error}"
        return None

    def _close(self) -> None:
        """Let go of the handle; NVML itself stays up for the process (see harness.nvml)."""
        self._opened = False

    def _probe(self) -> str | None:
        """Find which power and energy sources this GPU and driver answer; the reason when
        there is none at all, or when NVML cannot measure this device on its own (MIG)."""
        p, h = self._pynvml, self._handle
        if nvml.mig_enabled(p, h):
            return (
                f"GPU {self.index} is in MIG mode: NVML gives power and energy only for the "
                "whole GPU, not for one MIG instance (disable MIG, or measure at the wall)"
            )
        if nvml.c2c_enabled(p, h):
            self.domain, self._power_scope = "module", "module"
        if hasattr(p, "nvmlDeviceGetTotalEnergyConsumption"):
            try:
                p.nvmlDeviceGetTotalEnergyConsumption(h)
                self._energy_ok = True
            except Exception as error:
                self._energy_reason = f"nvmlDeviceGetTotalEnergyConsumption: {error}"
        else:
            self._energy_reason = "this pynvml has no nvmlDeviceGetTotalEnergyConsumption"
        problems = self._probe_power()
        self._power_reason = "; ".join(problems)
        for fn in (
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
        ):
            if not hasattr(p, fn):
                continue
            try:  # a pynvml newer than the driver has the name but not the function
                getattr(p, fn)(h)
            except Exception:
                continue
            self._reasons_fn, self._reasons_source = getattr(p, fn), fn
            break
        if not self._energy_ok and self._power_source is None:
            return (
                f"GPU {self.index} gives neither energy nor power through NVML "
                f"({self._energy_reason}; {self._power_reason})"
            )
        return None

    def _probe_power(self) -> list[str]:
        """Choose the power source; the problems met on the way."""
        p, h = self._pynvml, self._handle
        problems = []
        names = ("nvmlDeviceGetFieldValues", "NVML_FI_DEV_POWER_INSTANT")
        if all(hasattr(p, n) for n in names) and hasattr(p, "NVML_FI_DEV_POWER_AVERAGE"):
            ids = [p.NVML_FI_DEV_POWER_INSTANT, p.NVML_FI_DEV_POWER_AVERAGE]
            if self._power_scope == "module":
                scope = getattr(p, "NVML_POWER_SCOPE_MODULE", 1)
                ids = [(field, scope) for field in ids]
            try:
                values = p.nvmlDeviceGetFieldValues(h, ids)
            except Exception as error:
                problems.append(f"nvmlDeviceGetFieldValues: {error}")
            else:
                self._fields = ids
                try:
                    _field_number(values[0])
                    self._power_source = _FIELD_INSTANT
                except Exception as error:
                    problems.append(f"NVML_FI_DEV_POWER_INSTANT: {error}")
                try:
                    _field_number(values[1])
                    self._average_ok = True
                except Exception as error:
                    problems.append(f"NVML_FI_DEV_POWER_AVERAGE: {error}")
        else:
            problems.append("this pynvml has no power fields for nvmlDeviceGetFieldValues")
        if self._power_source is not None:
            return problems
        if self._power_scope == "module":
            problems.append(
                "nvmlDeviceGetPowerUsage is not used on a Grace Hopper module: its scope is "
                "not the module's, which the energy counter covers"
            )
        elif hasattr(p, "nvmlDeviceGetPowerUsage"):
            try:
                p.nvmlDeviceGetPowerUsage(h)
                self._power_source = _POWER_USAGE
            except Exception as error:
                problems.append(f"nvmlDeviceGetPowerUsage: {error}")
            else:
                arch = None
                if hasattr(p, "nvmlDeviceGetArchitecture"):
                    with contextlib.suppress(Exception):
                        arch = int(p.nvmlDeviceGetArchitecture(h))
                name = ""
                with contextlib.suppress(Exception):
                    name = _text(p.nvmlDeviceGetName(h))
                if power_is_trailing_average(arch, name):
                    self._power_lag_s = TRAILING_AVERAGE_LAG_S
        else:
            problems.append("this pynvml has no nvmlDeviceGetPowerUsage")
        return problems

    def _identify(self) -> None:
        p, h = self._pynvml, self._handle
        for key, fn in (("name", "nvmlDeviceGetName"), ("uuid", "nvmlDeviceGetUUID")):
            with contextlib.suppress(Exception):
                self._gpu[key] = _text(getattr(p, fn)(h))
        with contextlib.suppress(Exception):
            self._gpu["power_limit_w"] = p.nvmlDeviceGetPowerManagementLimit(h) / 1000.0
        with contextlib.suppress(Exception):
            self._gpu["driver"] = _text(p.nvmlSystemGetDriverVersion())
        with contextlib.suppress(Exception):
            self._gpu["architecture"] = int(p.nvmlDeviceGetArchitecture(h))
        self._gpu["persistence_mode"] = nvml.persistence_mode(p, h)
        self._gpu["c2c_enabled"] = nvml.c2c_enabled(p, h)
        self._gpu["mig_enabled"] = nvml.mig_enabled(p, h)

    # -- reads ------------------------------------------------------------------------------

    def _note_error(self, source: str, error: BaseException) -> bool:
        """Record a failed read; True when NVML says the GPU is lost."""
        with self._lock:
            self._error_counts[source] = self._error_counts.get(source, 0) + 1
            if len(self._errors) < MAX_ERRORS_KEPT:
                self._errors.append([time.monotonic(), source, str(error)])
        return getattr(error, "value", None) == NVML_ERROR_GPU_IS_LOST

    def _read_counter(self) -> tuple[float, int]:
        t, value = _timed(lambda: self._pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        return t, int(value)

    def _read_power(self) -> tuple[float, float, float | None]:
        """(t, W, average W or None); raises when the chosen power source fails."""
        p, h = self._pynvml, self._handle
        if self._power_source == _FIELD_INSTANT:
            t, values = _timed(lambda: p.nvmlDeviceGetFieldValues(h, self._fields))
            watts = _field_number(values[0]) / 1000.0
            average = None
            if self._average_ok:
                try:
                    average = _field_number(values[1]) / 1000.0
                except Exception as error:
                    self._note_error("power average field", error)
            return t, watts, average
        t, milliwatts = _timed(lambda: p.nvmlDeviceGetPowerUsage(h))
        average = None
        if self._average_ok:
            try:
                average = _field_number(p.nvmlDeviceGetFieldValues(h, self._fields[1:])[0])
                average /= 1000.0
            except Exception as error:
                self._note_error("power average field", error)
        return t, milliwatts / 1000.0, average

    def _read_telemetry(self) -> list[Any]:
        p, h = self._pynvml, self._handle

        def safe(source: str, fn: Any, *args: Any) -> Any:
            try:
                return fn(*args)
            except Exception as error:
                self._note_error(source, error)
                return None

        sm = safe("sm clock", p.nvmlDeviceGetClockInfo, h, p.NVML_CLOCK_SM)
        mem = safe("memory clock", p.nvmlDeviceGetClockInfo, h, p.NVML_CLOCK_MEM)
        temp = None
        if hasattr(p, "nvmlDeviceGetTemperatureV"):
            temp = safe("temperature", p.nvmlDeviceGetTemperatureV, h, p.NVML_TEMPERATURE_GPU)
        elif hasattr(p, "nvmlDeviceGetTemperature"):
            temp = safe("temperature", p.nvmlDeviceGetTemperature, h, p.NVML_TEMPERATURE_GPU)
        reasons = None
        if self._reasons_fn is not None:
            reasons = safe("clocks event reasons", self._reasons_fn, h)
        return [time.monotonic(), sm, mem, temp, reasons]

    def _add_power(self, t: float, watts: float, average: float | None) -> None:
        with self._lock:
            if self._closed:
                return
            if watts > 0:
                self._power.append([t, watts])
            else:
                self._zero_reads.append(t)
            if average is not None:
                self._average.append([t, average])

    def _add_counter(self, t: float, value: int) -> None:
        with self._lock:
            if not self._closed:
                self._energy.append([t, value])

    def _sample(self, telemetry: bool | None = None) -> bool:
        """One read of every source; False (status "lost") when the GPU is gone."""
        failed, lost = 0, False
        primaries = int(self._energy_ok) + int(self._power_source is not None)
        if self._energy_ok:
            try:
                self._add_counter(*self._read_counter())
            except Exception as error:
                failed, lost = failed + 1, self._note_error("energy counter", error) or lost
        if self._power_source is not None:
            try:
                self._add_power(*self._read_power())
            except Exception as error:
                failed, lost = failed + 1, self._note_error("power", error) or lost
        now = time.monotonic()
        if telemetry or (telemetry is None and now >= self._next_telemetry):
            row = self._read_telemetry()
            with self._lock:
                if not self._closed:
                    self._telemetry.append(row)
            self._next_telemetry = now + self.telemetry_period_s
        self._failed_rounds = self._failed_rounds + 1 if failed == primaries else 0
        if lost or self._failed_rounds >= MAX_CONSECUTIVE_FAILURES:
            last = self._errors[-1][2] if self._errors else "?"
            why = (
                "NVML says the GPU is lost"
                if lost
                else (f"every read failed {self._failed_rounds} times in a row")
            )
            self._lose(f"GPU {self.index}: {why} ({last})")
            return False
        return True

    # -- timing -----------------------------------------------------------------------------

    def _probe_update_period(self) -> None:
        """Read the counter every millisecond until it has changed PROBE_CHANGES times or
        `update_probe_s` has passed; the reads go into the record with their span."""
        start = time.monotonic()
        changes, last = 0, None
        while time.monotonic() - start < self.update_probe_s and changes < PROBE_CHANGES:
            try:
                t, value = self._read_counter()
            except Exception as error:
                self._note_error("energy counter", error)
                break
            self._add_counter(t, value)
            if last is not None and value != last:
                changes += 1
            last = value
            time.sleep(PROBE_INTERVAL_S)
        self._probe_span = [start, time.monotonic()]

    def _run(self) -> None:
        """Read at t0 + k x period. A deadline passed by a little is read at once; one
        passed by more than half a period (a stall) is skipped and counted."""
        try:
            period = self.sample_period_s
            deadline = self._t0 + period
            while not self._stop.wait(max(0.0, deadline - time.monotonic())):
                if not self._sample():
                    return
                deadline += period
                while time.monotonic() - deadline > period / 2:
                    deadline += period
                    self._missed += 1
        except BaseException as error:  # never let the thread die silently
            self._lose(f"sampling thread failed: {error!r}")

    def _wait_after_end(self) -> None:
        """After the window: read the counter until it updates once more (the last value
        then holds all of the window's energy), and a lagged power source for its lag."""
        started = time.monotonic()
        record = self.record()
        period = counter_update_period(record)
        cap = END_WAIT_UNKNOWN_S if period is None else END_WAIT_PERIODS * period
        waiting = self._energy_ok and bool(self._energy)
        last = self._energy[-1][1] if waiting else None
        changed = False
        next_power = started + self.sample_period_s
        reach = self._power_lag_s + self.sample_period_s if self._power_lag_s else 0.0
        while True:
            now = time.monotonic()
            if waiting and now - started > cap:
                waiting = False
            elif waiting:
                try:
                    t, value = self._read_counter()
                    self._add_counter(t, value)
                    if value != last:
                        changed, waiting = True, False
                except Exception as error:
                    self._note_error("energy counter", error)
            if reach and now >= next_power:
                try:
                    self._add_power(*self._read_power())
                except Exception as error:
                    self._note_error("power", error)
                next_power += self.sample_period_s
            if not waiting and now - started >= reach:
                break
            time.sleep(PROBE_INTERVAL_S)
        self._end_wait = {
            "started_s": started,
            "ended_s": time.monotonic(),
            "counter_cap_s": cap if self._energy_ok else None,
            "counter_updated": changed,
            "power_lag_s": self._power_lag_s,
        }

    def _stop_polling(self) -> None:
        """Stop the thread, read once more at the window's end, then wait for the counter's
        next update (and a lagged power source's lag)."""
        try:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=max(1.0, 2 * self.sample_period_s))
                self._thread = None
            if self._status == "ok" and self._sample(telemetry=True):
                self._wait_after_end()
        except Exception as error:  # nothing escapes the with block
            self._lose(f"stopping failed: {error!r}")
        finally:
            with self._lock:
                self._closed = True

    # -- the instrument protocol ----------------------------------------------------------

    def unavailable_reason(self) -> str | None:
        """None when this GPU gives power or energy through NVML; otherwise why not."""
        if self._opened:  # entered: answer from what enter found
            return None if self._status != "unavailable" else self._reason
        probe = NvmlPowerInstrument(self.index, self.sample_period_s)  # leaves our record be
        try:
            reason = probe._open()
            if reason is None:
                reason = probe._probe()
            return reason
        except Exception as error:
            return f"NVML probe failed: {error!r}"
        finally:
            probe._close()

    def __enter__(self) -> NvmlPowerInstrument:
        self._reset()
        self._clock = clock_mapping()
        try:
            reason = self._open()
            if reason is None:
                reason = self._probe()
        except Exception as error:
            reason = f"NVML probe failed: {error!r}"
        if reason is not None:
            self._status, self._reason = "unavailable", reason
            self._close()
            return self
        self._identify()
        if self._energy_ok:
            self._probe_update_period()
        self._t0 = time.monotonic()
        self._next_telemetry = self._t0
        self._start_polling()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._stop_polling()
        finally:
            self._close()

    def record(self) -> dict[str, Any]:
        with self._lock:
            energy = sorted((list(r) for r in self._energy), key=lambda r: r[0])
            power = sorted((list(r) for r in self._power), key=lambda r: r[0])
            average = sorted((list(r) for r in self._average), key=lambda r: r[0])
            telemetry = sorted((list(r) for r in self._telemetry), key=lambda r: r[0])
            zeros = sorted(self._zero_reads)
            errors = [list(e) for e in self._errors]
            counts = dict(self._error_counts)
            status, reason = self._status, self._reason
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "domain": self.domain,
            "partial_domain": True,
            "sample_period_s": self.sample_period_s,
            "uncertainty": {"relative": None, "absolute_w": None, "source": UNCERTAINTY_SOURCE},
            "clock": self._clock if self._clock is not None else clock_mapping(),
            "status": status,
            "reason": reason,
            "power_samples": power,
            "energy_counter": (
                {"unit": "mJ", "max": None, "readings": energy} if self._energy_ok else None
            ),
            "extra": {
                "gpu": dict(self._gpu),
                "power_source": self._power_source,
                "power_source_problems": self._power_reason,
                "power_scope": self._power_scope,
                "power_lag_s": self._power_lag_s,
                "power_average_source": _FIELD_AVERAGE if self._average_ok else None,
                "power_average_samples": average,
                "zero_power_reads": zeros,
                "energy_counter_reason": self._energy_reason,
                "counter_update_probe": self._probe_span,
                "counter_update_period_s": None,
                "end_wait": self._end_wait,
                "read_errors": errors,
                "read_error_counts": counts,
                "missed_deadlines": self._missed,
                "telemetry_period_s": self.telemetry_period_s,
                "clocks_event_reasons_source": self._reasons_source,
                "telemetry_columns": list(TELEMETRY_COLUMNS),
                "telemetry": telemetry,
            },
        }
        out["extra"]["counter_update_period_s"] = counter_update_period(out)
        return out
