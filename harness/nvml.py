"""NVML through `nvidia-ml-py` (imported as `pynvml`). Without a GPU or driver, every call
here answers "unavailable" with the reason; nothing raises."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NvmlStatus:
    available: bool
    reason: str


def status() -> NvmlStatus:
    try:
        import pynvml
    except ImportError as error:
        return NvmlStatus(False, f"nvidia-ml-py is not installed ({error})")
    try:
        pynvml.nvmlInit()
    except Exception as error:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return NvmlStatus(False, f"no NVML here: {error}")
    with contextlib.suppress(Exception):
        pynvml.nvmlShutdown()
    return NvmlStatus(True, "")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _safe(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:
        return None


def gpus() -> tuple[list[dict[str, Any]], str]:
    """Identity, clocks and power limit of every GPU NVML sees, and a reason if none."""
    state = status()
    if not state.available:
        return [], state.reason
    import pynvml

    pynvml.nvmlInit()
    try:
        driver = _text(_safe(pynvml.nvmlSystemGetDriverVersion))
        out = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            limit_mw = _safe(pynvml.nvmlDeviceGetPowerManagementLimit, handle)
            memory = _safe(pynvml.nvmlDeviceGetMemoryInfo, handle)
            out.append(
                {
                    "index": index,
                    "name": _text(pynvml.nvmlDeviceGetName(handle)),
                    "uuid": _text(_safe(pynvml.nvmlDeviceGetUUID, handle)),
                    "driver": driver,
                    "memory_bytes": None if memory is None else int(memory.total),
                    "power_limit_w": None if limit_mw is None else limit_mw / 1000.0,
                    "clocks_mhz": {
                        "sm": _safe(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM),
                        "mem": _safe(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_MEM),
                        "sm_max": _safe(
                            pynvml.nvmlDeviceGetMaxClockInfo, handle, pynvml.NVML_CLOCK_SM
                        ),
                        "mem_max": _safe(
                            pynvml.nvmlDeviceGetMaxClockInfo, handle, pynvml.NVML_CLOCK_MEM
                        ),
                    },
                }
            )
        return out, ""
    finally:
        _safe(pynvml.nvmlShutdown)
