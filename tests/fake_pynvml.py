"""A stand-in for `pynvml` (nvidia-ml-py) where no NVIDIA GPU is at hand: the real instrument
code runs against it. It models one kind of GPU drawing a constant `watts`, with the calls
and return conventions of the real bindings: errors are exceptions carrying NVML's return
code in `.value`, field values come back as structs with `nvmlReturn`, `valueType` and a
value union, a field id may be a (field, scope) pair.

Knobs: a delay on every call (`call_delay_s`); an energy counter that updates only every
`counter_update_s` (as real ones do, every few tens of milliseconds); a counter that counts
`counter_scale` times the energy drawn (a wrong counter); reads that fail (`fail`: a function
of the call's name and its number that says whether that call raises); power readings of
0 mW every `zero_every`-th read; a GPU in MIG mode; a Grace Hopper module (C2C link) drawing
`module_extra_w` more than its GPU, which the counter and module-scope fields include.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

NOT_SUPPORTED = 3
GPU_IS_LOST = 15
UNKNOWN = 999
FIELD_AVERAGE = 185
FIELD_INSTANT = 186
SCOPE_GPU, SCOPE_MODULE = 0, 1
ARCH_TURING, ARCH_AMPERE, ARCH_HOPPER = 6, 7, 9
_MESSAGES = {NOT_SUPPORTED: "Not Supported", GPU_IS_LOST: "GPU is lost", UNKNOWN: "Unknown Error"}


class FakeNVMLError(Exception):
    """Like pynvml.NVMLError: the NVML return code in `.value`."""

    def __init__(self, value: int) -> None:
        self.value = value
        super().__init__(_MESSAGES.get(value, f"NVML error {value}"))


def make(
    *,
    watts: float = 250.0,
    gpus: int = 1,
    name: str = "Fake GPU",
    architecture: int | None = ARCH_HOPPER,
    fields: bool = True,
    instant_ret: int = 0,
    event_reasons: bool = True,
    energy: bool = True,
    call_delay_s: float = 0.0,
    counter_update_s: float | None = None,
    counter_scale: float = 1.0,
    fail: Callable[[str, int], int | None] | None = None,
    zero_every: int | None = None,
    mig: bool = False,
    gh200: bool = False,
    module_extra_w: float = 0.0,
    persistence: int = 1,
) -> ModuleType:
    """A fresh fake `pynvml` module; `mod.calls` counts the calls by function name.

    `fail(name, n)` is asked before the n-th call (from 1) of the function `name` (for a
    field, "field:<id>"): an NVML return code makes that call fail with it, None lets it
    answer."""
    mod = ModuleType("pynvml")
    t0 = time.monotonic()
    calls: Counter[str] = Counter()
    mod.calls = calls  # type: ignore[attr-defined]
    constants = {
        "NVML_CLOCK_SM": 1,
        "NVML_CLOCK_MEM": 2,
        "NVML_TEMPERATURE_GPU": 0,
        "NVML_ERROR_NOT_SUPPORTED": NOT_SUPPORTED,
        "NVML_ERROR_GPU_IS_LOST": GPU_IS_LOST,
        "NVML_POWER_SCOPE_GPU": SCOPE_GPU,
        "NVML_POWER_SCOPE_MODULE": SCOPE_MODULE,
        "NVML_DEVICE_MIG_ENABLE": 1,
        "NVMLError": FakeNVMLError,
    }
    for key, value in constants.items():
        setattr(mod, key, value)
    module_w = watts + module_extra_w

    def call(fn_name: str, answer: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any) -> Any:
            calls[fn_name] += 1
            if call_delay_s:
                time.sleep(call_delay_s)
            code = fail(fn_name, calls[fn_name]) if fail is not None else None
            if code is not None:
                raise FakeNVMLError(code)
            return answer(*args)

        return wrapped

    def total_energy(handle: Any) -> int:
        elapsed = time.monotonic() - t0
        if counter_update_s:
            elapsed = (elapsed // counter_update_s) * counter_update_s
        drawn_w = module_w if gh200 else watts
        return 10_000_000 + int(elapsed * drawn_w * 1000 * counter_scale)

    def power_mw(scope: int) -> int:
        calls["power reads"] += 1
        if zero_every and calls["power reads"] % zero_every == 0:
            return 0
        return int((module_w if scope == SCOPE_MODULE else watts) * 1000)

    def field_values(handle: Any, ids: list[Any]) -> list[Any]:
        out = []
        for entry in ids:
            field_id, scope = entry if isinstance(entry, tuple) else (entry, SCOPE_GPU)
            calls[f"field:{field_id}"] += 1
            ret = instant_ret if field_id == FIELD_INSTANT else 0
            if fail is not None and ret == 0:
                ret = fail(f"field:{field_id}", calls[f"field:{field_id}"]) or 0
            if scope == SCOPE_MODULE and not gh200:
                ret = NOT_SUPPORTED
            value = SimpleNamespace(uiVal=power_mw(scope) if field_id == FIELD_INSTANT else 0)
            if field_id == FIELD_AVERAGE:
                value.uiVal = int((module_w if scope == SCOPE_MODULE else watts) * 1000)
            out.append(SimpleNamespace(fieldId=field_id, nvmlReturn=ret, valueType=1, value=value))
        return out

    def mig_mode(handle: Any) -> list[int]:
        if not mig:
            raise FakeNVMLError(NOT_SUPPORTED)
        return [1, 1]

    def c2c(handle: Any) -> Any:
        if not gh200:
            raise FakeNVMLError(NOT_SUPPORTED)
        return SimpleNamespace(isC2cEnabled=1)

    def arch(handle: Any) -> int:
        if architecture is None:
            raise FakeNVMLError(NOT_SUPPORTED)
        return architecture

    functions: dict[str, Callable[..., Any]] = {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: gpus,
        "nvmlDeviceGetHandleByIndex": lambda i: ("handle", i),
        "nvmlDeviceGetName": lambda h: name.encode(),
        "nvmlDeviceGetUUID": lambda h: f"GPU-fake-{h[1]}",
        "nvmlSystemGetDriverVersion": lambda: "999.1",
        "nvmlDeviceGetPowerManagementLimit": lambda h: 700_000,
        "nvmlDeviceGetPowerUsage": lambda h: power_mw(SCOPE_GPU),
        "nvmlDeviceGetClockInfo": lambda h, clock: 1980 if clock == 1 else 2619,
        "nvmlDeviceGetMaxClockInfo": lambda h, clock: 1980 if clock == 1 else 2619,
        "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(total=80 * 2**30),
        "nvmlDeviceGetTemperature": lambda h, sensor: 45,
        "nvmlDeviceGetCurrentClocksThrottleReasons": lambda h: 0x1,
        "nvmlDeviceGetMigMode": mig_mode,
        "nvmlDeviceGetC2cModeInfoV": c2c,
        "nvmlDeviceGetArchitecture": arch,
        "nvmlDeviceGetPersistenceMode": lambda h: persistence,
    }
    if energy:
        functions["nvmlDeviceGetTotalEnergyConsumption"] = total_energy
    if fields:
        functions["nvmlDeviceGetFieldValues"] = field_values
        mod.NVML_FI_DEV_POWER_AVERAGE = FIELD_AVERAGE  # type: ignore[attr-defined]
        mod.NVML_FI_DEV_POWER_INSTANT = FIELD_INSTANT  # type: ignore[attr-defined]
    if event_reasons:
        functions["nvmlDeviceGetCurrentClocksEventReasons"] = lambda h: 0x4
    for key, fn in functions.items():
        setattr(mod, key, call(key, fn))
    return mod


def fail_calls(
    name: str, numbers: set[int], code: int = UNKNOWN
) -> Callable[[str, int], int | None]:
    """`fail` for make(): the calls of `name` with these numbers fail with `code`."""
    return lambda fn, n: code if fn == name and n in numbers else None


def fail_from(name: str, first: int, code: int = UNKNOWN) -> Callable[[str, int], int | None]:
    """`fail` for make(): every call of `name` from the `first`-th on fails with `code`."""
    return lambda fn, n: code if fn == name and n >= first else None
