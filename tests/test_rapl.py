"""RAPL through a fake powercap tree: discovery, wrap-around, unreadable and missing
counters, and a live run while a test thread advances the counter."""

from __future__ import annotations

import os
import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest

from harness.instruments.rapl import (
    RaplInstrument,
    RaplZone,
    discover_zones,
    rapl_energy_j,
    rapl_zones,
)

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

MAX_UJ = 262_143_328_850  # a real max_energy_range_uj


def write_atomic(path: Path, text: str) -> None:
    """Replace a file in one step, so that a concurrent reader never sees it half written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def make_zone(path: Path, name: str, energy: int = 0, max_uj: int = MAX_UJ) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    (path / "enabled").write_text("1\n")
    return path


def make_tree(root: Path, *, links: bool = True) -> Path:
    """Two packages (core, uncore, dram sub-zones), a psys zone and an MMIO mirror, laid
    out like sysfs: real directories nested under devices/, links in class/powercap."""
    devices = root / "devices" / "intel-rapl"
    devices.mkdir(parents=True)
    (devices / "enabled").write_text("1\n")  # the control type directory has no counter
    layout = {
        "intel-rapl:0": ("package-0", {"0": "core", "1": "uncore", "2": "dram"}),
        "intel-rapl:1": ("package-1", {"0": "core", "1": "dram"}),
        "intel-rapl:2": ("psys", {}),
    }
    klass = root / "class" / "powercap"
    klass.mkdir(parents=True)
    (klass / "intel-rapl").symlink_to(devices)
    for zone, (name, subs) in layout.items():
        top = make_zone(devices / zone, name, energy=1_000_000)
        (klass / zone).symlink_to(top)
        for m, sub_name in subs.items():
            sub = make_zone(top / f"{zone}:{m}", sub_name, energy=500_000)
            if links:
                (klass / sub.name).symlink_to(sub)
    mmio = make_zone(root / "devices" / "intel-rapl-mmio" / "intel-rapl-mmio:0", "package-0")
    (klass / "intel-rapl-mmio:0").symlink_to(mmio)
    return klass


# -- discovery --------------------------------------------------------------------------


@pytest.mark.parametrize("links", [True, False])
def test_discovery_packages_and_dram_without_double_counting(tmp_path: Path, links: bool) -> None:
    root = make_tree(tmp_path, links=links)

    zones = discover_zones(root)
    assert [(z.zone, z.name) for z in zones] == [
        ("intel-rapl:0", "package-0"),
        ("intel-rapl:1", "package-1"),
        ("intel-rapl:2", "psys"),
    ]  # the MMIO mirror and the control type directory are not zones
    assert [(s.zone, s.name) for s in zones[0].subzones] == [
        ("intel-rapl:0:0", "core"),
        ("intel-rapl:0:1", "uncore"),
        ("intel-rapl:0:2", "dram"),
    ]  # each sub-zone once, whether or not it also appears beside the top-level zones

    instruments = rapl_zones(root)
    assert [(i.name, i.domain, i.zone.zone) for i in instruments] == [
        ("rapl-package-0", "cpu-package", "intel-rapl:0"),
        ("rapl-package-0-dram", "dram", "intel-rapl:0:2"),
        ("rapl-package-1", "cpu-package", "intel-rapl:1"),
        ("rapl-package-1-dram", "dram", "intel-rapl:1:1"),
    ]  # no core/uncore (inside the package), no psys (contains the packages)

    record = instruments[0].record()
    assert record["extra"]["contained_subzones"] == [
        {"zone": "intel-rapl:0:0", "name": "core"},
        {"zone": "intel-rapl:0:1", "name": "uncore"},
    ]
    dram = instruments[1].record()
    assert dram["extra"]["package_zone"] == "intel-rapl:0"
    assert dram["extra"]["contained_subzones"] == []


def test_domain_selection(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    assert [i.name for i in rapl_zones(root, domains=["cpu-package"])] == [
        "rapl-package-0",
        "rapl-package-1",
    ]
    assert [i.name for i in RaplInstrument(root, domains=["dram"]).zones] == [
        "rapl-package-0-dram",
        "rapl-package-1-dram",
    ]
    with pytest.raises(ValueError, match="unknown RAPL domains"):
        rapl_zones(root, domains=["core"])


def test_amd_style_tree_package_only(tmp_path: Path) -> None:
    """AMD exposes intel-rapl:N package zones, usually with a core sub-zone and no dram."""
    root = tmp_path / "powercap"
    top = make_zone(root / "intel-rapl:0", "package-0")
    make_zone(top / "intel-rapl:0:0", "core")
    instruments = RaplInstrument(root)
    assert [(z.name, z.domain) for z in instruments.zones] == [("rapl-package-0", "cpu-package")]
    assert instruments.unavailable_reason() is None


# -- energy from raw readings --------------------------------------------------------------


def test_energy_across_a_wrap_around() -> None:
    readings: list[list[float]] = [
        [10.0, 262_143_000_000],
        [10.1, 262_143_300_000],  # +300_000 uJ
        [10.2, 1_000_000],  # wrapped: (MAX_UJ - 262_143_300_000) + 1_000_000 = 1_028_850 uJ
        [10.3, 3_000_000],  # +2_000_000 uJ
    ]
    assert rapl_energy_j(readings, MAX_UJ) == pytest.approx(3.32885, abs=1e-12)
    # no wrap: plain differences
    assert rapl_energy_j([[0.0, 5], [1.0, 1_000_005]], MAX_UJ) == pytest.approx(1.0)
    assert rapl_energy_j([[0.0, 7]], MAX_UJ) == 0.0
    assert rapl_energy_j([], None) == 0.0
    with pytest.raises(ValueError, match="no wrap-around range"):
        rapl_energy_j(readings, None)


# -- unavailable ---------------------------------------------------------------------------


def test_permission_denied_is_a_clear_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """energy_uj is root-only on Linux >= 5.10. Tests run as root, where chmod 000 does not
    stop reads, so the denial is simulated at Path.read_text."""
    root = make_tree(tmp_path)
    real_read_text = Path.read_text

    def denied(self: Path, *args: object, **kwargs: object) -> str:
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", denied)
    instrument = RaplInstrument(root)
    reason = instrument.unavailable_reason()
    assert reason is not None
    assert reason.startswith("permission denied reading ")
    assert str(root / "intel-rapl:0" / "energy_uj") in reason
    assert "root-only since Linux 5.10" in reason

    with instrument:  # usable as a no-op
        pass
    records = instrument.records()
    assert len(records) == 4
    for record in records:
        assert set(record) == RECORD_KEYS
        assert record["status"] == "unavailable"
        assert "permission denied reading" in record["reason"]
        assert record["energy_counter"] is None


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_missing_tree_is_a_clear_reason(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "powercap"
    if kind == "empty":
        root.mkdir()
    instrument = RaplInstrument(root)
    assert instrument.zones == []
    assert instrument.unavailable_reason() == f"no RAPL powercap zones under {root}"
    with instrument:
        pass
    [record] = instrument.records()
    assert set(record) == RECORD_KEYS
    assert record["status"] == "unavailable"
    assert record["reason"] == f"no RAPL powercap zones under {root}"
    assert record["kind"] == "rapl"


def test_only_unwanted_zones_names_what_was_found(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    make_zone(root / "intel-rapl:0", "psys")
    reason = RaplInstrument(root).unavailable_reason()
    assert reason is not None
    assert "no RAPL zones for domains" in reason
    assert "intel-rapl:0 (psys)" in reason


# -- live runs -----------------------------------------------------------------------------


def test_live_run_records_the_counter_across_a_wrap(tmp_path: Path) -> None:
    max_uj = 1_000_000
    root = tmp_path / "powercap"
    zone_dir = make_zone(root / "intel-rapl:0", "package-0", energy=900_000, max_uj=max_uj)
    energy = zone_dir / "energy_uj"
    [zone] = rapl_zones(root, sample_period_s=0.01)
    assert isinstance(zone, RaplZone)

    step, steps = 50_000, 6  # 900_000 -> 950_000 -> 0 (wrap) -> ... -> 200_000
    written = [900_000]
    started = threading.Event()

    def advance() -> None:
        started.wait()
        value = 900_000
        for _ in range(steps):
            time.sleep(0.03)
            value = (value + step) % max_uj
            write_atomic(energy, f"{value}\n")
            written.append(value)

    writer = threading.Thread(target=advance, daemon=True)
    writer.start()
    with zone:
        started.set()
        writer.join(timeout=5)
        time.sleep(0.03)  # let the sampler see the last value too
    assert not writer.is_alive()

    record = zone.record()
    assert set(record) == RECORD_KEYS
    assert record["status"] == "ok", record["reason"]
    assert record["kind"] == "rapl" and record["domain"] == "cpu-package"
    assert record["partial_domain"] is True
    assert record["uncertainty"]["relative"] is None
    assert record["uncertainty"]["absolute_w"] is None
    assert "RAPL" in record["uncertainty"]["source"]
    counter = record["energy_counter"]
    assert counter["unit"] == "uJ" and counter["max"] == max_uj
    readings = counter["readings"]
    assert len(readings) >= 3  # enter, at least one in between, exit
    times = [t for t, _ in readings]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert record["clock"]["monotonic_s"] <= times[0]
    assert {raw for _, raw in readings} <= set(written)
    assert readings[0][1] == 900_000 and readings[-1][1] == 200_000
    assert any(b < a for (_, a), (_, b) in pairwise(readings))  # the wrap is in the readings
    assert rapl_energy_j(readings, counter["max"]) == pytest.approx(step * steps / 1e6)


def test_counter_lost_mid_run_keeps_what_was_read(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    zone_dir = make_zone(root / "intel-rapl:0", "package-0", energy=100)
    instrument = RaplInstrument(root, sample_period_s=0.01)
    with instrument:
        time.sleep(0.05)
        (zone_dir / "energy_uj").unlink()  # the counter goes away mid-run
        time.sleep(0.05)
    [record] = instrument.records()
    assert record["status"] == "lost"
    assert str(zone_dir / "energy_uj") in record["reason"]
    assert len(record["energy_counter"]["readings"]) >= 1
    assert all(raw == 100 for _, raw in record["energy_counter"]["readings"])


def test_sampler_stops_promptly_and_errors_in_the_body_propagate(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    instrument = RaplInstrument(root, sample_period_s=30.0)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="probe failed"), instrument:
        raise RuntimeError("probe failed")
    assert time.monotonic() - start < 2.0  # did not wait out the 30 s period
    assert not any(t.name.startswith("sampler-rapl") for t in threading.enumerate())
    for record in instrument.records():
        assert record["status"] == "ok"
        assert len(record["energy_counter"]["readings"]) == 2  # enter and exit
