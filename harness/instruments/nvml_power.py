"""GPU board power and energy from NVML (`nvidia-ml-py`, imported as `pynvml`).

One `NvmlPowerInstrument` per GPU index. At enter, every `sample_period_s` in a daemon
thread, and at exit it reads:

* the total energy counter, `nvmlDeviceGetTotalEnergyConsumption` (mJ since the driver was
  loaded; Volta and newer) -> `energy_counter`, the preferred source for energy;
* instantaneous power -> `power_samples`: the field `NVML_FI_DEV_POWER_INSTANT` through
  `nvmlDeviceGetFieldValues` where the driver has it, else `nvmlDeviceGetPowerUsage` (which
  on Ampere, except GA100, and newer is a 1 s average); the field `NVML_FI_DEV_POWER_AVERAGE`
  too where present (into `extra`); `extra["power_source"]` says which was used;
* SM/memory clocks, temperature and the clocks-event (throttle) reasons ->
  `extra["telemetry"]` as [[t, sm_mhz, mem_mhz, temp_c, reasons_bitmask], ...] (None where
  a value could not be read).

Without NVML or a GPU the instrument is a no-op: `unavailable_reason()` gives the reason,
entering and exiting does nothing, and `record()` has status "unavailable". Nothing here
raises, and pynvml functions a version lacks are checked for with hasattr.
"""

from __future__ import annotations

import contextlib
import time
from types import TracebackType
from typing import Any

from harness import nvml
from harness.instruments.base import PollingSampler, clock_mapping

UNCERTAINTY_SOURCE = (
    "NVML board power (GPU and its memory; not the host): NVIDIA documents "
    "nvmlDeviceGetPowerUsage as accurate to +/-5% of current draw only for Fermi and Kepler "
    "and gives no figure for later GPUs (on Ampere, except GA100, and newer it is a 1 s "
    "average), so no relative figure is claimed; the total energy counter "
    "(nvmlDeviceGetTotalEnergyConsumption, mJ, Volta and newer) is preferred for energy"
)

TELEMETRY_COLUMNS = ["t_monotonic_s", "sm_mhz", "mem_mhz", "temp_c", "clocks_event_reasons"]

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


class NvmlPowerInstrument(PollingSampler):
    """Board power and energy of GPU `index` (NVML's order) while entered."""

    kind = "nvml"
    domain = "gpu-board"

    def __init__(self, index: int = 0, sample_period_s: float = 0.1) -> None:
        self.index = index
        self.name = f"nvml-gpu{index}"
        self.sample_period_s = sample_period_s
        self._init_polling()
        self._reset()

    def _reset(self) -> None:
        self._clock: dict[str, Any] | None = None
        self._pynvml: Any = None
        self._handle: Any = None
        self._initialized = False
        self._closed = False
        self._energy: list[list[float]] = []
        self._energy_ok = False
        self._energy_reason = ""
        self._power: list[list[float]] = []
        self._power_source: str | None = None
        self._power_reason = ""
        self._average: list[list[float]] = []
        self._average_ok = False
        self._telemetry: list[list[Any]] = []
        self._reasons_fn: Any = None
        self._reasons_source: str | None = None
        self._gpu: dict[str, Any] = {"index": self.index}

    # -- NVML access ------------------------------------------------------------------------

    def _open(self) -> str | None:
        """nvmlInit and the device handle; the reason when that is not possible."""
        state = nvml.status()
        if not state.available:
            return state.reason
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as error:
            return f"no NVML here: {error}"
        self._pynvml, self._initialized = pynvml, True
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
        if self._initialized and self._pynvml is not None:
            with contextlib.suppress(Exception):
                self._pynvml.nvmlShutdown()
        self._initialized = False

    def _probe(self) -> str | None:
        """Find which power and energy sources this GPU and driver answer; the reason when
        there is none at all."""
        p, h = self._pynvml, self._handle
        if hasattr(p, "nvmlDeviceGetTotalEnergyConsumption"):
            try:
                p.nvmlDeviceGetTotalEnergyConsumption(h)
                self._energy_ok = True
            except Exception as error:
                self._energy_reason = f"nvmlDeviceGetTotalEnergyConsumption: {error}"
        else:
            self._energy_reason = "this pynvml has no nvmlDeviceGetTotalEnergyConsumption"

        problems = []
        if (
            hasattr(p, "nvmlDeviceGetFieldValues")
            and hasattr(p, "NVML_FI_DEV_POWER_INSTANT")
            and hasattr(p, "NVML_FI_DEV_POWER_AVERAGE")
        ):
            try:
                values = p.nvmlDeviceGetFieldValues(
                    h, [p.NVML_FI_DEV_POWER_INSTANT, p.NVML_FI_DEV_POWER_AVERAGE]
                )
            except Exception as error:
                problems.append(f"nvmlDeviceGetFieldValues: {error}")
            else:
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
        if self._power_source is None:
            if hasattr(p, "nvmlDeviceGetPowerUsage"):
                try:
                    p.nvmlDeviceGetPowerUsage(h)
                    self._power_source = _POWER_USAGE
                except Exception as error:
                    problems.append(f"nvmlDeviceGetPowerUsage: {error}")
            else:
                problems.append("this pynvml has no nvmlDeviceGetPowerUsage")
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

    def _identify(self) -> None:
        p, h = self._pynvml, self._handle
        for key, fn in (("name", "nvmlDeviceGetName"), ("uuid", "nvmlDeviceGetUUID")):
            with contextlib.suppress(Exception):
                self._gpu[key] = _text(getattr(p, fn)(h))
        with contextlib.suppress(Exception):
            self._gpu["power_limit_w"] = p.nvmlDeviceGetPowerManagementLimit(h) / 1000.0
        with contextlib.suppress(Exception):
            self._gpu["driver"] = _text(p.nvmlSystemGetDriverVersion())

    def _read_power_w(self) -> tuple[float | None, float | None]:
        """(instant W, average W); raises when the chosen instant source fails."""
        p, h = self._pynvml, self._handle
        average = None
        if self._power_source == _FIELD_INSTANT:
            values = p.nvmlDeviceGetFieldValues(
                h, [p.NVML_FI_DEV_POWER_INSTANT, p.NVML_FI_DEV_POWER_AVERAGE]
            )
            instant = _field_number(values[0]) / 1000.0
            if self._average_ok:
                with contextlib.suppress(Exception):
                    average = _field_number(values[1]) / 1000.0
            return instant, average
        if self._power_source == _POWER_USAGE:
            if self._average_ok:
                with contextlib.suppress(Exception):
                    values = p.nvmlDeviceGetFieldValues(h, [p.NVML_FI_DEV_POWER_AVERAGE])
                    average = _field_number(values[0]) / 1000.0
            return p.nvmlDeviceGetPowerUsage(h) / 1000.0, average
        return None, None

    def _read_telemetry(self) -> list[Any]:
        p, h = self._pynvml, self._handle

        def safe(fn: Any, *args: Any) -> Any:
            try:
                return fn(*args)
            except Exception:
                return None

        sm = safe(p.nvmlDeviceGetClockInfo, h, p.NVML_CLOCK_SM)
        mem = safe(p.nvmlDeviceGetClockInfo, h, p.NVML_CLOCK_MEM)
        temp = None
        if hasattr(p, "nvmlDeviceGetTemperatureV"):
            temp = safe(p.nvmlDeviceGetTemperatureV, h, p.NVML_TEMPERATURE_GPU)
        if temp is None and hasattr(p, "nvmlDeviceGetTemperature"):
            temp = safe(p.nvmlDeviceGetTemperature, h, p.NVML_TEMPERATURE_GPU)
        reasons = None if self._reasons_fn is None else safe(self._reasons_fn, h)
        return [time.monotonic(), sm, mem, temp, reasons]

    # -- sampling -------------------------------------------------------------------------

    def _sample(self) -> bool:
        """One reading of every source into the record; False (status "lost") on failure."""
        before = time.monotonic()
        try:
            energy = (
                self._pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
                if self._energy_ok
                else None
            )
        except Exception as error:
            self._lose(f"reading the energy counter of GPU {self.index} failed: {error}")
            return False
        try:
            instant, average = self._read_power_w()
        except Exception as error:
            self._lose(f"reading power ({self._power_source}) of GPU {self.index} failed: {error}")
            return False
        t = (before + time.monotonic()) / 2
        telemetry = self._read_telemetry()
        with self._lock:
            if self._closed:
                return False
            if energy is not None:
                self._energy.append([t, int(energy)])
            if instant is not None:
                self._power.append([t, instant])
            if average is not None:
                self._average.append([t, average])
            self._telemetry.append(telemetry)
        return True

    # -- the instrument protocol ----------------------------------------------------------

    def unavailable_reason(self) -> str | None:
        """None when this GPU gives power or energy through NVML; otherwise why not."""
        if self._initialized:  # entered: answer from what enter found
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
            status, reason = self._status, self._reason
        return {
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
                "power_average_source": _FIELD_AVERAGE if self._average_ok else None,
                "power_average_samples": average,
                "energy_counter_reason": self._energy_reason,
                "clocks_event_reasons_source": self._reasons_source,
                "telemetry_columns": list(TELEMETRY_COLUMNS),
                "telemetry": telemetry,
            },
        }
