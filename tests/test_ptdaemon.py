"""PTDaemon client and instrument against the loopback PTDaemon (tests/loopback_ptd.py).

Energies are checked against the waveform's exact integral over the window the samples
span, integrated here with our own trapezoid rule (not the harness's). The tolerance comes
from the sampling: the meter reports each period's average and the client places it at the
period's midpoint, so a level step can be misplaced by at most one sample period (plus the
timestamping latency, `LATENCY_S`); each edge in or next to the window contributes at most
step x (period + latency) of error.
"""

from __future__ import annotations

import itertools
import re
import socket
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_ptd import Constant, Fault, LoopbackPtd, Ramp, SquareWave

from harness.instruments.ptdaemon import PtdClient, PtdError, PtdMeter, ranging_pass

# the loopback PTDaemon and the meter's poll thread share this process: a garbage
# collection's pause would shift the samples (see `no_gc_pauses` in conftest.py)
pytestmark = pytest.mark.usefixtures("no_gc_pauses")

HOST = "127.0.0.1"
PERIOD_S = 0.05
LATENCY_S = 0.015  # allowance for thread wake-up and socket latency on a busy machine


def trapezoid(samples: list[list[float]]) -> float:
    """Joules from [[t, watts], ...] by the trapezoid rule (an independent reference)."""
    return sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in itertools.pairwise(samples))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def check_common(record: dict, name: str) -> None:
    assert record["name"] == name
    assert record["kind"] == "ptdaemon"
    assert record["domain"] == "wall"
    assert record["partial_domain"] is False
    assert record["energy_counter"] is None
    assert set(record["clock"]) == {"monotonic_s", "utc"}
    times = [t for t, _ in record["power_samples"]]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_square_wave_energy_across_ranging_and_testing_passes() -> None:
    wave = SquareWave(low_w=100.0, high_w=300.0, half_period_s=0.5)
    with LoopbackPtd(wave, volts=230.0, power_factor=0.95) as ptd:
        meter = PtdMeter("wall", HOST, ptd.port, sample_period_s=PERIOD_S)
        assert meter.unavailable_reason() is None

        v_range, a_range = meter.ranging_pass(lambda: time.sleep(1.2))
        with meter:
            time.sleep(2.0)
        record = meter.record()
        ranging, testing = ptd.measurements

    # the ranging pass ran on auto ranges and found the maxima: 230 V, 300 W / (230 V x 0.95)
    max_amps = 300.0 / (230.0 * 0.95)
    assert (ranging.voltage_range, ranging.current_range) == (None, None)
    assert float(v_range) == pytest.approx(230.0, abs=0.1) and float(v_range) >= 230.0
    assert float(a_range) == pytest.approx(1.1 * max_amps, abs=1e-3)
    assert float(a_range) >= 1.1 * max_amps
    # the testing pass used exactly those fixed ranges, and the server saw every SR command
    sr = [c for c in ptd.commands if c.startswith("SR,")]
    assert sr == ["SR,V,Auto", "SR,A,Auto", f"SR,V,{v_range}", f"SR,A,{a_range}"]
    assert (testing.voltage_range, testing.current_range) == (float(v_range), float(a_range))
    gos = [c for c in ptd.commands if c.startswith("Go,")]
    assert gos == ["Go,50,0,wall-ranging", "Go,50,0,wall"]
    assert ptd.commands.count("Stop") == 2

    check_common(record, "wall")
    assert record["status"] == "ok" and record["reason"] == ""
    assert record["sample_period_s"] == PERIOD_S
    ranges = record["extra"]["ranges"]
    assert ranges["this_pass"] == {"voltage": v_range, "current": a_range}
    assert ranges["ranging_pass"]["voltage"] == "Auto"
    assert ranges["ranging_pass"]["chosen"] == {"voltage": v_range, "current": a_range}
    assert ranges["ranging_pass"]["max_volts"] == pytest.approx(230.0)
    assert ranges["ranging_pass"]["max_amps"] == pytest.approx(max_amps, rel=1e-5)
    assert ranges["readback"]["current_auto"] == 0
    assert ranges["readback"]["current_range"] == pytest.approx(float(a_range))
    assert record["extra"]["identify"]["driver"] == "LoopbackPTD"
    observed = record["extra"]["observed"]
    assert observed["invalid_samples"] == 0
    assert record["extra"]["meter_summary"]["errors"] == 0

    # uncertainty: fixed ranges, so the meter states one (and it is what the meter said)
    expected_u = ptd.expected_uncertainty(testing)
    assert record["uncertainty"]["relative"] == pytest.approx(expected_u, abs=2e-6)
    assert 0 < record["uncertainty"]["relative"] < 0.01

    # energy and average power over the window the samples span
    samples = record["power_samples"]
    assert len(samples) >= 0.85 * 2.0 / PERIOD_S
    t_first, t_last = samples[0][0], samples[-1][0]
    assert record["clock"]["monotonic_s"] <= t_first
    start, end = t_first - testing.go_monotonic, t_last - testing.go_monotonic
    expected = wave.energy(start, end)
    edges = wave.edges(start - PERIOD_S, end + PERIOD_S)
    assert edges >= 3
    tolerance = wave.step_w * (PERIOD_S + LATENCY_S) * edges
    measured = trapezoid(samples)
    assert measured == pytest.approx(expected, abs=tolerance)
    duration = t_last - t_first
    assert measured / duration == pytest.approx(expected / duration, abs=tolerance / duration)
    assert {w for _, w in samples} == {100.0, 300.0}


def test_ramp_energy_with_ranges_from_the_module_level_ranging_pass() -> None:
    wave = Ramp(start_w=50.0, slope_w_per_s=100.0)
    with LoopbackPtd(wave) as ptd:
        v_range, a_range = ranging_pass(
            HOST, ptd.port, lambda: time.sleep(0.6), sample_period_s=PERIOD_S
        )
        # the ramp keeps rising: leave room for the testing pass's higher power
        meter = PtdMeter("wall", HOST, ptd.port, PERIOD_S, v_range, "2")
        with meter:
            time.sleep(1.5)
        record = meter.record()
        ranging, testing = ptd.measurements[0], ptd.measurements[-1]

    assert [c for c in ptd.commands if c.startswith("SR,V,")] == ["SR,V,Auto", f"SR,V,{v_range}"]
    # the ramp peaks at the ranging pass's last sample read: 1.1 x its amps, rounded up. How
    # many samples that pass read depends on timing (a stall adds a sample or two, each 5 W
    # higher), so the figure is checked against the samples the meter really sent
    assert ranging.stop_monotonic is not None
    assert ranging.stop_monotonic - ranging.go_monotonic >= 0.6  # Stop after the workload
    assert ranging.delivered >= 1
    peak_amps = ptd.reading(ranging, ranging.delivered).amps
    assert max(ptd.reading(ranging, k).amps for k in range(1, ranging.delivered + 1)) == peak_amps
    assert float(a_range) == pytest.approx(1.1 * peak_amps, abs=1e-3)
    assert float(a_range) >= 1.1 * peak_amps
    # ... which is the ramp where that sample ended (one period of it is 5 W), read well into
    # the 0.6 s workload
    peak_s = ranging.delivered * PERIOD_S
    assert float(a_range) == pytest.approx(1.1 * wave.power(peak_s) / (230 * 0.95), rel=0.05)
    assert peak_s >= 0.6 / 2
    assert record["status"] == "ok"
    assert record["extra"]["ranges"]["ranging_pass"] is None  # set by hand, not by ranging
    samples = record["power_samples"]
    t_first, t_last = samples[0][0], samples[-1][0]
    duration = t_last - t_first
    start = t_first - testing.go_monotonic
    expected = wave.energy(start, start + duration)
    # a linear ramp misplaced by dt in time changes the integral by slope x dt x duration
    tolerance = wave.slope_w_per_s * (PERIOD_S / 2 + LATENCY_S) * duration
    assert trapezoid(samples) == pytest.approx(expected, abs=tolerance)


def test_constant_power_is_exact_and_over_range_samples_are_not_power() -> None:
    wave = Constant(200.0)
    with LoopbackPtd(wave) as ptd:
        good = PtdMeter("wall", HOST, ptd.port, PERIOD_S, "250", "1")
        with good:
            time.sleep(0.5)
        too_small = PtdMeter("wall-small-range", HOST, ptd.port, PERIOD_S, "250", "0.5")
        with too_small:
            time.sleep(0.3)

    record = good.record()
    samples = record["power_samples"]
    assert record["status"] == "ok" and len(samples) >= 6
    assert trapezoid(samples) == pytest.approx(200.0 * (samples[-1][0] - samples[0][0]))

    # 200 W / (230 V x 0.95) = 0.92 A > 0.5 A range: every sample over-range (Watts -1)
    small = too_small.record()
    assert small["power_samples"] == []
    assert small["extra"]["observed"]["invalid_samples"] >= 3
    assert small["extra"]["meter_summary"]["errors"] >= 3


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("close", "connection closed by PTDaemon"),
        ("garbage", "unexpected reply"),
        ("silence", "no reply within"),
    ],
)
def test_connection_lost_after_n_samples_keeps_them(fault: Fault, problem: str) -> None:
    with LoopbackPtd(Constant(150.0), drop_after_samples=5, fault=fault) as ptd:
        meter = PtdMeter("wall", HOST, ptd.port, PERIOD_S, timeout_s=0.3)
        with meter:  # no exception may escape
            time.sleep(0.7)
        record = meter.record()
        assert ptd.fault_fired_at is not None

    check_common(record, "wall")
    assert record["status"] == "lost"
    assert [w for _, w in record["power_samples"]] == [150.0] * 5
    assert re.match(r"^connection lost at t=\d+\.\d{3} after 5 samples: ", record["reason"])
    assert problem in record["reason"]
    lost_at = float(record["reason"].split("t=")[1].split(" ")[0])
    assert record["power_samples"][-1][0] < lost_at
    assert record["uncertainty"]["relative"] is None
    assert "Stop" not in ptd.commands  # nothing more was sent on a dead connection


def test_connection_dropped_after_some_seconds() -> None:
    drop_s = 0.4
    with LoopbackPtd(Constant(80.0), drop_after_s=drop_s) as ptd:
        meter = PtdMeter("wall", HOST, ptd.port, PERIOD_S, timeout_s=1.0)
        with meter:
            time.sleep(0.8)
        record = meter.record()
        go = ptd.measurements[0].go_monotonic

    assert record["status"] == "lost"
    assert "connection closed by PTDaemon" in record["reason"]
    samples = record["power_samples"]
    assert 0.6 * drop_s / PERIOD_S <= len(samples) <= drop_s / PERIOD_S
    assert all(t <= go + drop_s for t, _ in samples)
    assert f"after {len(samples)} samples" in record["reason"]


def test_unavailable_when_nothing_listens() -> None:
    port = free_port()
    meter = PtdMeter("wall", HOST, port, PERIOD_S, timeout_s=0.5)
    reason = meter.unavailable_reason()
    assert reason is not None
    assert f"{HOST}:{port}" in reason and "cannot connect" in reason
    with meter:  # entering an unreachable meter does not raise either
        pass
    record = meter.record()
    assert record["status"] == "unavailable"
    assert "cannot connect" in record["reason"]
    assert record["power_samples"] == []


def test_error_replies_raise_in_the_client() -> None:
    with LoopbackPtd(Constant(100.0)) as ptd, PtdClient(HOST, ptd.port, timeout_s=1.0) as client:
        client.hello()
        with pytest.raises(PtdError) as stop:
            client.command("Stop")
        assert stop.value.command == "Stop"
        assert stop.value.reply == "Error: no measurement to stop"
        with pytest.raises(PtdError) as sr:
            client.command("SR,V")
        assert sr.value.reply == "Invalid number of parameters"
        with pytest.raises(PtdError) as unknown:
            client.command("Bogus")
        assert unknown.value.reply == "Unknown command"
        assert "'Bogus'" in str(unknown.value)
        # an error reply leaves the connection in step
        assert client.command("SR,A,Auto") == "Range A changed"
        assert client.command("Identify").startswith("LoopbackPTD,")


def test_client_raises_on_timeout_and_disconnect() -> None:
    silent = LoopbackPtd(Constant(100.0), drop_after_samples=0, fault="silence")
    with silent as ptd, PtdClient(HOST, ptd.port, timeout_s=0.2) as client:
        assert client.command("Go,50,0,x").startswith("Starting")
        with pytest.raises(PtdError) as info:
            client.command("Watts")
        assert info.value.reply is None and "no reply within" in str(info.value)
        assert not client.connected
    port = free_port()
    with pytest.raises(PtdError) as refused:
        PtdClient(HOST, port, timeout_s=0.5).connect()
    assert refused.value.command == "connect"


def test_rl_returns_every_unread_sample_with_ptdaemon_stamps() -> None:
    wave = SquareWave(low_w=100.0, high_w=300.0, half_period_s=0.1)
    with LoopbackPtd(wave) as ptd, PtdClient(HOST, ptd.port, timeout_s=1.0) as client:
        assert client.command("Go,50,0,batch").startswith("Starting")
        time.sleep(0.33)  # six samples logged (more if this thread is late), none read yet
        batch, received = client.read_samples()
        assert client.command("Stop") == "Stopping untimed measurement"
        delivered = ptd.measurements[0].delivered
    count = len(batch)
    assert count >= 6 and count == delivered  # every sample logged so far, in one reply
    levels = [100.0, 100.0, 300.0, 300.0]  # two 50 ms samples per 0.1 s level
    assert [s.watts for s in batch] == [levels[k % 4] for k in range(count)]
    assert all(s.volts == 230.0 and s.amps is not None for s in batch)
    stamps = [datetime.strptime(s.ptd_time, "%m-%d-%Y %H:%M:%S.%f") for s in batch]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    assert gaps == pytest.approx([PERIOD_S] * (count - 1), abs=0.0011)  # millisecond stamps
    assert received >= ptd.measurements[0].go_monotonic + count * PERIOD_S
