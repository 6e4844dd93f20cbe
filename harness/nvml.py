"""NVML through `nvidia-ml-py` (imported as `pynvml`). Without a GPU or driver, every call
here answers "unavailable" with the reason; nothing raises.

NVML is initialised once per process (`session()`) and shut down at exit, never in between:
each `nvmlInit`/`nvmlShutdown` pair costs time, and where persistence mode is off the driver
tears the GPU's state down when its last client shuts NVML down, so a later reading may come
from a re-initialised GPU. Persistence mode is recorded with each GPU (`gpus()`).
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from dataclasses import dataclass
from typing import Any

NVML_DEVICE_MIG_ENABLE = 1  # nvmlDeviceGetMigMode's "current" value when MIG is on


@dataclass(frozen=True)
class NvmlStatus:
    available: bool
    reason: str


_lock = threading.Lock()
# the pynvml module object the session was opened with, and the reason it failed ("" when
# NVML is up); keyed on the module object, so a test that installs another pynvml gets its
# own session
_session: tuple[Any, str] | None = None


def _shutdown(module: Any) -> None:
    with contextlib.suppress(Exception):
        module.nvmlShutdown()


def session() -> tuple[Any, str]:
    """(pynvml, "") with NVML initialised for the rest of the process, or (None, reason)."""
    global _session
    try:
        import pynvml
    except ImportError as error:
        return None, f"nvidia-ml-py is not installed ({error})"
    with _lock:
        if _session is not None and _session[0] is pynvml:
            return (pynvml, "") if not _session[1] else (None, _session[1])
        if _session is not None and not _session[1]:
            _shutdown(_session[0])  # only when another pynvml was installed (tests)
        try:
            pynvml.nvmlInit()
        except Exception as error:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            _session = (pynvml, f"no NVML here: {error}")
            return None, _session[1]
        _session = (pynvml, "")
        atexit.register(_shutdown, pynvml)
        return pynvml, ""


def status() -> NvmlStatus:
    module, reason = session()
    return NvmlStatus(module is not None, reason)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _safe(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:
        return None


def mig_enabled(pynvml: Any, handle: Any) -> bool | None:
    """Whether MIG mode is on for this GPU (None: NVML cannot say; GPUs without MIG answer
    "Not Supported", which is False)."""
    if not hasattr(pynvml, "nvmlDeviceGetMigMode"):
        return None
    try:
        current = pynvml.nvmlDeviceGetMigMode(handle)[0]
    except Exception as error:
        not_supported = getattr(pynvml, "NVML_ERROR_NOT_SUPPORTED", 3)
        return False if getattr(error, "value", None) == not_supported else None
    return int(current) == NVML_DEVICE_MIG_ENABLE


def c2c_enabled(pynvml: Any, handle: Any) -> bool | None:
    """Whether the GPU sits on a chip-to-chip link with a CPU (Grace Hopper, GH200): then its
    total energy counter covers the whole module (CPU, GPU and memory). None: unknown."""
    if not hasattr(pynvml, "nvmlDeviceGetC2cModeInfoV"):
        return None
    try:
        return bool(pynvml.nvmlDeviceGetC2cModeInfoV(handle).isC2cEnabled)
    except Exception as error:
        not_supported = getattr(pynvml, "NVML_ERROR_NOT_SUPPORTED", 3)
        return False if getattr(error, "value", None) == not_supported else None


def persistence_mode(pynvml: Any, handle: Any) -> str | None:
    """ "enabled" or "disabled" (None: NVML cannot say)."""
    if not hasattr(pynvml, "nvmlDeviceGetPersistenceMode"):
        return None
    value = _safe(pynvml.nvmlDeviceGetPersistenceMode, handle)
    return None if value is None else ("enabled" if int(value) == 1 else "disabled")


def gpus() -> tuple[list[dict[str, Any]], str]:
    """Identity, clocks, power limit, MIG and persistence mode of every GPU NVML sees, and a
    reason if none. A GPU NVML counts but cannot open (no permission, fallen off the bus) is
    listed with its error."""
    pynvml, reason = session()
    if pynvml is None:
        return [], reason
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
                "mig_enabled": mig_enabled(pynvml, handle),
                "persistence_mode": persistence_mode(pynvml, handle),
                "clocks_mhz": {
                    "sm": _safe(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM),
                    "mem": _safe(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_MEM),
                    "sm_max": _safe(pynvml.nvmlDeviceGetMaxClockInfo, handle, pynvml.NVML_CLOCK_SM),
                    "mem_max": _safe(
                        pynvml.nvmlDeviceGetMaxClockInfo, handle, pynvml.NVML_CLOCK_MEM
                    ),
                },
            }
        )
    return out, ""


def _plain_uuid(text: str) -> str:
    return text.lower().removeprefix("gpu-").removeprefix("mig-")


def _mig_parent(pynvml: Any, wanted: str, count: int) -> int | None:
    """The NVML index of the GPU that holds the MIG instance with UUID `wanted`."""
    needed = ("nvmlDeviceGetMaxMigDeviceCount", "nvmlDeviceGetMigDeviceHandleByIndex")
    if not all(hasattr(pynvml, fn) for fn in needed):
        return None
    for index in range(count):
        handle = _safe(pynvml.nvmlDeviceGetHandleByIndex, index)
        if handle is None or not mig_enabled(pynvml, handle):
            continue
        for slot in range(int(_safe(pynvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0)):
            instance = _safe(pynvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, slot)
            uuid = None if instance is None else _safe(pynvml.nvmlDeviceGetUUID, instance)
            if uuid is not None and _plain_uuid(_text(uuid)) == wanted:
                return index
    return None


def index_of_cuda_device(device: str) -> int:
    """NVML's index of torch's CUDA device `device` ("cuda" or "cuda:N"), matched by UUID.

    The orders differ: CUDA numbers the devices fastest first unless CUDA_DEVICE_ORDER is
    PCI_BUS_ID, and CUDA_VISIBLE_DEVICES renumbers torch's devices but not NVML's. A MIG
    instance maps to the GPU that holds it (whose NVML instrument then says it cannot measure
    a MIG instance, rather than measuring some other GPU). Where no UUID matches (no NVML, a
    torch without `uuid`), the CUDA ordinal."""
    ordinal = int(device.split(":")[1]) if ":" in device else 0
    try:
        import torch

        uuid = str(getattr(torch.cuda.get_device_properties(ordinal), "uuid", "") or "")
    except Exception:
        return ordinal
    wanted = _plain_uuid(uuid)
    if not wanted:
        return ordinal
    found, _ = gpus()
    for gpu in found:
        if _plain_uuid(str(gpu.get("uuid") or "")) == wanted:
            return int(gpu["index"])
    pynvml, _ = session()
    if pynvml is not None:
        parent = _mig_parent(pynvml, wanted, len(found))
        if parent is not None:
            return parent
    return ordinal
