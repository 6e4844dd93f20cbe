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
    """Identity, clocks and power limit of every GPU NVML sees, and a reason if none. A GPU
    NVML counts but cannot open (no permission, fallen off the bus) is listed with its error."""
    state = status()
    if not state.available:
        return [], state.reason
    import pynvml

    try:
        pynvml.nvmlInit()
    except Exception as error:
        return [], f"no NVML here: {error}"
    try:
        driver = _text(_safe(pynvml.nvmlSystemGetDriverVersion))
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        except Exception as error:
            return [], f"NVML cannot count GPUs: {error}"
        out = []
        for index in range(count):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                name = _text(pynvml.nvmlDeviceGetName(handle))
            except Exception as error:
                out.append({"index": index, "driver": driver, "error": str(error)})
                continue
            limit_mw = _safe(pynvml.nvmlDeviceGetPowerManagementLimit, handle)
            memory = _safe(pynvml.nvmlDeviceGetMemoryInfo, handle)
            out.append(
                {
                    "index": index,
                    "name": name,
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


def index_of_cuda_device(device: str) -> int:
    """NVML's index of torch's CUDA device `device` ("cuda" or "cuda:N"), matched by UUID.

    The orders differ: CUDA numbers the devices fastest first unless CUDA_DEVICE_ORDER is
    PCI_BUS_ID, and CUDA_VISIBLE_DEVICES renumbers torch's devices but not NVML's. Where no
    UUID matches (no NVML, a MIG instance, a torch without `uuid`), the CUDA ordinal."""
    ordinal = int(device.split(":")[1]) if ":" in device else 0
    try:
        import torch

        uuid = str(getattr(torch.cuda.get_device_properties(ordinal), "uuid", "") or "")
    except Exception:
        return ordinal
    wanted = uuid.lower().removeprefix("gpu-")
    if not wanted:
        return ordinal
    found, _ = gpus()
    for gpu in found:
        if str(gpu.get("uuid") or "").lower().removeprefix("gpu-") == wanted:
            return int(gpu["index"])
    return ordinal
