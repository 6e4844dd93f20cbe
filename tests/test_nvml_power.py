"""NVML power instrument: without a GPU it is an "unavailable" no-op; its sampling logic is
exercised against a fake `pynvml`; one GPU test compares the energy counter with the
integrated instantaneous power on real hardware."""

from __future__ import annotations

import sys
import threading
import time
from itertools import pairwise
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from harness import nvml
from harness.instruments.nvml_power import NvmlPowerInstrument

# the sampler thread's timing is checked: no garbage collection's pause in the middle (see
# `no_gc_pauses` in conftest.py)
pytestmark = pytest.mark.usefixtures("no_gc_pauses")

RECORD_KEYS = {
    "name",
    "kind",
    "domain",
    "partial_domain",
    "sample_period_s",
    "uncertainty",
    "clock",
    "status",
    "reason",
    "power_samples",
    "energy_counter",
    "extra",
}


def check_unavailable(instrument: NvmlPowerInstrument, reason: str) -> None:
    assert instrument.unavailable_reason() == reason
    with instrument as entered:  # a no-op, not an error
        assert entered is instrument
    record = instrument.record()
    assert set(record) == RECORD_KEYS
    assert record["status"] == "unavailable"
    assert record["reason"] == reason
    assert record["kind"] == "nvml" and record["domain"] == "gpu-board"
    assert record["partial_domain"] is True
    assert record["power_samples"] == [] and record["energy_counter"] is None
    assert not any(t.name.startswith("sampler-nvml") for t in threading.enumerate())


# -- no GPU ----------------------------------------------------------------------------


@pytest.mark.skipif(nvml.status().available, reason="NVML is available here")
def test_without_nvml_the_instrument_is_an_unavailable_no_op() -> None:
    state = nvml.status()
    assert state.reason
    check_unavailable(NvmlPowerInstrument(0), state.reason)


def test_unavailable_reason_comes_from_harness_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = "no NVML here: NVML Shared Library Not Found"
    monkeypatch.setattr(nvml, "status", lambda: nvml.NvmlStatus(False, reason))
    check_unavailable(NvmlPowerInstrument(1), reason)


# -- a fake pynvml -----------------------------------------------------------------------


class FakeError(Exception):
    pass


def fake_pynvml(
    *,
    watts: float = 250.0,
    gpus: int = 1,
    fields: bool = True,
    instant_ret: int = 0,
    event_reasons: bool = True,
    energy: bool = True,
    fail_after: int | None = None,
) -> ModuleType:
    """A pynvml stand-in: a GPU drawing `watts`, its energy counter advancing with time.
    `fields=False` drops the field-values API; `instant_ret` is the NVML return code of the
    instant-power field; `event_reasons=False` leaves only the older ThrottleReasons name;
    `fail_after` makes the energy counter fail after that many reads."""
    mod = ModuleType("pynvml")
    t0 = time.monotonic()
    calls = {"init": 0, "shutdown": 0, "energy": 0}
    mod.calls = calls  # type: ignore[attr-defined]
    mod.NVML_CLOCK_SM, mod.NVML_CLOCK_MEM = 1, 2  # type: ignore[attr-defined]
    mod.NVML_TEMPERATURE_GPU = 0  # type: ignore[attr-defined]

    def init() -> None:
        calls["init"] += 1

    def shutdown() -> None:
        calls["shutdown"] += 1

    def total_energy(handle: Any) -> int:
        calls["energy"] += 1
        if fail_after is not None and calls["energy"] > fail_after:
            raise FakeError("GPU is lost")
        return 10_000_000 + int((time.monotonic() - t0) * watts * 1000)

    def field_values(handle: Any, ids: list[int]) -> list[Any]:
        out = []
        for field_id in ids:
            ret = instant_ret if field_id == 186 else 0
            value = SimpleNamespace(uiVal=int(watts * 1000))
            out.append(SimpleNamespace(fieldId=field_id, nvmlReturn=ret, valueType=1, value=value))
        return out

    functions: dict[str, Any] = {
        "nvmlInit": init,
        "nvmlShutdown": shutdown,
        "nvmlDeviceGetCount": lambda: gpus,
        "nvmlDeviceGetHandleByIndex": lambda i: ("handle", i),
        "nvmlDeviceGetName": lambda h: b"Fake GPU",
        "nvmlDeviceGetUUID": lambda h: "GPU-fake",
        "nvmlSystemGetDriverVersion": lambda: "999.1",
        "nvmlDeviceGetPowerManagementLimit": lambda h: 700_000,
        "nvmlDeviceGetPowerUsage": lambda h: int(watts * 1000),
        "nvmlDeviceGetClockInfo": lambda h, clock: 1980 if clock == 1 else 2619,
        "nvmlDeviceGetMaxClockInfo": lambda h, clock: 1980 if clock == 1 else 2619,
        "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(total=80 * 2**30),
        "nvmlDeviceGetTemperature": lambda h, sensor: 45,
        "nvmlDeviceGetCurrentClocksThrottleReasons": lambda h: 0x1,
    }
    if energy:
        functions["nvmlDeviceGetTotalEnergyConsumption"] = total_energy
    if fields:
        functions["nvmlDeviceGetFieldValues"] = field_values
        mod.NVML_FI_DEV_POWER_AVERAGE = 185  # type: ignore[attr-defined]
        mod.NVML_FI_DEV_POWER_INSTANT = 186  # type: ignore[attr-defined]
    if event_reasons:
        functions["nvmlDeviceGetCurrentClocksEventReasons"] = lambda h: 0x4
    for key, fn in functions.items():
        setattr(mod, key, fn)
    return mod


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch) -> Any:
    def put(mod: ModuleType) -> ModuleType:
        monkeypatch.setitem(sys.modules, "pynvml", mod)
        return mod

    return put


def run(instrument: NvmlPowerInstrument, seconds: float = 0.1) -> dict[str, Any]:
    with instrument:
        time.sleep(seconds)
    return instrument.record()


def test_field_values_instant_power_energy_and_telemetry(install: Any) -> None:
    mod = install(fake_pynvml(watts=300.0))
    instrument = NvmlPowerInstrument(0, sample_period_s=0.01)
    assert instrument.unavailable_reason() is None
    # the fake's counter follows the clock at each read, the record stamps the middle of the
    # read: a thread held up there skews the energy by the delay, so the run lasts long
    # enough for the 10 % below to absorb tens of milliseconds at either end
    record = run(instrument, seconds=0.4)

    assert set(record) == RECORD_KEYS
    assert record["status"] == "ok", record["reason"]
    assert record["name"] == "nvml-gpu0" and record["kind"] == "nvml"
    assert record["domain"] == "gpu-board" and record["partial_domain"] is True
    assert record["sample_period_s"] == 0.01
    assert record["uncertainty"]["relative"] is None
    assert "Fermi and Kepler" in record["uncertainty"]["source"]
    extra = record["extra"]
    assert extra["power_source"] == "nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)"
    assert extra["power_average_source"] == "nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_AVERAGE)"
    assert extra["clocks_event_reasons_source"] == "nvmlDeviceGetCurrentClocksEventReasons"
    assert extra["gpu"]["name"] == "Fake GPU" and extra["gpu"]["power_limit_w"] == 700.0

    power = record["power_samples"]
    assert len(power) >= 3 and all(w == 300.0 for _, w in power)
    assert [w for _, w in extra["power_average_samples"]] == [300.0] * len(power)
    counter = record["energy_counter"]
    assert counter["unit"] == "mJ" and counter["max"] is None
    readings = counter["readings"]
    times = [t for t, _ in readings]
    assert len(readings) == len(power) and times == sorted(times)
    assert record["clock"]["monotonic_s"] <= times[0]
    raw = [r for _, r in readings]
    assert raw == sorted(raw)
    joules = (raw[-1] - raw[0]) / 1000
    assert joules == pytest.approx(300.0 * (times[-1] - times[0]), rel=0.1, abs=0.01)

    assert extra["telemetry_columns"] == [
        "t_monotonic_s",
        "sm_mhz",
        "mem_mhz",
        "temp_c",
        "clocks_event_reasons",
    ]
    assert len(extra["telemetry"]) == len(power)
    assert all(row[1:] == [1980, 2619, 45, 0x4] for row in extra["telemetry"])
    assert mod.calls["init"] == mod.calls["shutdown"] >= 2  # probe and run, both balanced


def test_falls_back_to_power_usage_when_the_instant_field_is_unsupported(install: Any) -> None:
    install(fake_pynvml(watts=120.0, instant_ret=3))  # NVML_ERROR_NOT_SUPPORTED
    record = run(NvmlPowerInstrument(0, sample_period_s=0.01))
    assert record["status"] == "ok"
    extra = record["extra"]
    assert extra["power_source"] == "nvmlDeviceGetPowerUsage"
    assert "NVML_FI_DEV_POWER_INSTANT" in extra["power_source_problems"]
    assert extra["power_average_source"] is not None  # the average field still answers
    assert all(w == 120.0 for _, w in record["power_samples"])


def test_older_pynvml_without_fields_or_event_reasons(install: Any) -> None:
    install(fake_pynvml(fields=False, event_reasons=False))
    record = run(NvmlPowerInstrument(0, sample_period_s=0.01))
    assert record["status"] == "ok"
    extra = record["extra"]
    assert extra["power_source"] == "nvmlDeviceGetPowerUsage"
    assert extra["power_average_source"] is None and extra["power_average_samples"] == []
    assert extra["clocks_event_reasons_source"] == "nvmlDeviceGetCurrentClocksThrottleReasons"
    assert all(row[4] == 0x1 for row in extra["telemetry"])


def test_without_energy_counter_power_is_still_sampled(install: Any) -> None:
    install(fake_pynvml(energy=False))
    record = run(NvmlPowerInstrument(0, sample_period_s=0.01))
    assert record["status"] == "ok"
    assert record["energy_counter"] is None
    assert "nvmlDeviceGetTotalEnergyConsumption" in record["extra"]["energy_counter_reason"]
    assert len(record["power_samples"]) >= 2


def test_read_error_mid_run_is_lost_and_keeps_what_was_read(install: Any) -> None:
    mod = install(fake_pynvml(fail_after=4))  # 1 read in the probe, 3 while running
    instrument = NvmlPowerInstrument(0, sample_period_s=0.01)
    record = run(instrument, seconds=0.2)
    assert record["status"] == "lost"
    assert "energy counter of GPU 0" in record["reason"] and "GPU is lost" in record["reason"]
    assert len(record["energy_counter"]["readings"]) == 3
    assert len(record["power_samples"]) == 3
    assert mod.calls["init"] == mod.calls["shutdown"]


def test_missing_gpu_index_is_unavailable(install: Any) -> None:
    mod = install(fake_pynvml(gpus=1))
    check_unavailable(NvmlPowerInstrument(3), "no GPU with index 3 (NVML sees 1)")
    assert mod.calls["init"] == mod.calls["shutdown"]


def test_sampler_stops_promptly_and_errors_in_the_body_propagate(install: Any) -> None:
    install(fake_pynvml())
    instrument = NvmlPowerInstrument(0, sample_period_s=30.0)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="probe failed"), instrument:
        raise RuntimeError("probe failed")
    assert time.monotonic() - start < 2.0
    assert not any(t.name.startswith("sampler-nvml") for t in threading.enumerate())
    record = instrument.record()
    assert record["status"] == "ok"
    assert len(record["energy_counter"]["readings"]) == 2  # enter and exit


def test_event_reasons_the_driver_lacks_fall_back_to_throttle_reasons(install: Any) -> None:
    mod = install(fake_pynvml())

    def not_in_this_driver(handle: Any) -> int:
        raise FakeError("Function Not Found")

    mod.nvmlDeviceGetCurrentClocksEventReasons = not_in_this_driver  # type: ignore[attr-defined]
    record = run(NvmlPowerInstrument(0, sample_period_s=0.01))
    assert record["status"] == "ok"
    extra = record["extra"]
    assert extra["clocks_event_reasons_source"] == "nvmlDeviceGetCurrentClocksThrottleReasons"
    assert all(row[4] == 0x1 for row in extra["telemetry"])


def test_gpus_lists_a_gpu_nvml_cannot_open_with_its_error(install: Any) -> None:
    mod = install(fake_pynvml(gpus=2))

    def handle(index: int) -> Any:
        if index == 1:
            raise FakeError("Insufficient Permissions")
        return ("handle", index)

    mod.nvmlDeviceGetHandleByIndex = handle  # type: ignore[attr-defined]
    found, reason = nvml.gpus()
    assert reason == ""
    assert found[0]["name"] == "Fake GPU" and found[0]["power_limit_w"] == 700.0
    assert found[1] == {"index": 1, "driver": "999.1", "error": "Insufficient Permissions"}
    assert mod.calls["init"] == mod.calls["shutdown"]


def test_cuda_device_maps_to_the_nvml_index_with_its_uuid(
    install: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    mod = install(fake_pynvml(gpus=3))
    mod.nvmlDeviceGetUUID = lambda h: f"GPU-0000000{h[1]}-aaaa"  # type: ignore[attr-defined]
    uuids = {0: "00000002-AAAA", 1: "00000000-aaaa", 2: "not-in-nvml"}  # CUDA's order
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid=uuids[i])
    )
    assert nvml.index_of_cuda_device("cuda") == 2
    assert nvml.index_of_cuda_device("cuda:1") == 0
    assert nvml.index_of_cuda_device("cuda:2") == 2  # no match: the CUDA ordinal


# -- a real GPU ------------------------------------------------------------------------


def _nvml_index_of_cuda0(torch: Any) -> int:
    """NVML's index of cuda:0 (the orders differ unless CUDA_DEVICE_ORDER=PCI_BUS_ID)."""
    uuid = str(getattr(torch.cuda.get_device_properties(0), "uuid", "") or "")
    if uuid:
        gpus, _ = nvml.gpus()
        for gpu in gpus:
            if str(gpu["uuid"]).removeprefix("GPU-") == uuid.removeprefix("GPU-"):
                return int(gpu["index"])
    return 0


@pytest.mark.gpu
@pytest.mark.skipif(not nvml.status().available, reason="needs NVML and a GPU")
def test_energy_counter_agrees_with_integrated_instant_power() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)

    def busy(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(8):
                torch.matmul(a, b)
            torch.cuda.synchronize()

    busy(1.0)  # reach a steady power draw first
    instrument = NvmlPowerInstrument(_nvml_index_of_cuda0(torch), sample_period_s=0.05)
    assert instrument.unavailable_reason() is None
    with instrument:
        busy(2.0)
    record = instrument.record()
    assert record["status"] == "ok", record["reason"]
    assert record["energy_counter"] is not None, record["extra"]["energy_counter_reason"]

    readings = record["energy_counter"]["readings"]
    counter_j = (readings[-1][1] - readings[0][1]) / 1000.0
    start, end = readings[0][0], readings[-1][0]
    samples = [(t, w) for t, w in record["power_samples"] if start <= t <= end]
    assert len(samples) >= 20
    integrated_j = sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in pairwise(samples))
    print(
        f"power source {record['extra']['power_source']}: counter {counter_j:.1f} J, "
        f"integrated {integrated_j:.1f} J over {end - start:.2f} s"
    )
    assert counter_j > 0
    assert integrated_j == pytest.approx(counter_j, rel=0.10)
