"""PTDaemon client and instrument against the loopback PTDaemon (tests/loopback_ptd.py).

Energies are checked against the waveform's exact integral over the window the samples
span, integrated here with our own trapezoid rule (not the harness's). The tolerance comes
from the sampling: the meter reports each period's average and the client places it at the
period's midpoint, so a level step can be misplaced by at most one sample period (plus the
timestamping latency, `LATENCY_S`); each edge in or next to the window contributes at most
step x (period + latency) of error.
"""

from __future__ import annotations

import copy
import itertools
import re
import socket
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_ptd import Constant, Fault, LoopbackPtd, Ramp, RlStyle, SquareWave

from harness.instruments import ptd_mlperf
from harness.instruments.ptdaemon import (
    PtdClient,
    PtdError,
    PtdMeter,
    parse_identify,
    ranging_pass,
)

# the loopback PTDaemon and the meter's poll thread share this process: a garbage
# collection's pause would shift the samples (see `no_gc_pauses` in conftest.py)
pytestmark = pytest.mark.usefixtures("no_gc_pauses")

HOST = "127.0.0.1"
PERIOD_S = 0.05
LATENCY_S = 0.015  # allowance for thread wake-up and socket latency on a busy machine
SETTLE_S = 0.01  # MLPerf waits 10 s after SR and before Stop; tests keep it short


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
        meter = PtdMeter("wall", HOST, ptd.port, sample_period_s=PERIOD_S, settle_s=SETTLE_S)
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
    # (each pass ends by restoring the analyzer's initial ranges: auto here)
    restore = ["SR,V,Auto", "SR,A,Auto"]
    assert sr == [
        "SR,V,Auto",
        "SR,A,Auto",
        *restore,
        f"SR,V,{v_range}",
        f"SR,A,{a_range}",
        *restore,
    ]
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
            HOST, ptd.port, lambda: time.sleep(0.6), sample_period_s=PERIOD_S, settle_s=SETTLE_S
        )
        # the ramp keeps rising: leave room for the testing pass's higher power
        meter = PtdMeter("wall", HOST, ptd.port, PERIOD_S, v_range, "2", settle_s=SETTLE_S)
        with meter:
            time.sleep(1.5)
        record = meter.record()
        ranging, testing = ptd.measurements[0], ptd.measurements[-1]

    sr_v = [c for c in ptd.commands if c.startswith("SR,V,")]
    assert sr_v == ["SR,V,Auto", "SR,V,Auto", f"SR,V,{v_range}", "SR,V,Auto"]
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
        good = PtdMeter("wall", HOST, ptd.port, PERIOD_S, "250", "1", settle_s=SETTLE_S)
        with good:
            time.sleep(0.5)
        too_small = PtdMeter(
            "wall-small-range", HOST, ptd.port, PERIOD_S, "250", "0.5", settle_s=SETTLE_S
        )
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
        meter = PtdMeter("wall", HOST, ptd.port, PERIOD_S, timeout_s=0.3, settle_s=SETTLE_S)
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
        meter = PtdMeter("wall", HOST, ptd.port, PERIOD_S, timeout_s=1.0, settle_s=SETTLE_S)
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
    meter = PtdMeter("wall", HOST, port, PERIOD_S, timeout_s=0.5, settle_s=SETTLE_S)
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


# -- MLPerf's rules (issue 11) ---------------------------------------------------------------


def _pass(
    ptd: LoopbackPtd, seconds: float, v_range: str = "Auto", a_range: str = "Auto", **kw: Any
) -> tuple[dict[str, Any], float, float]:
    """One measured pass: the record and the window the body ran in."""
    meter = PtdMeter("wall", HOST, ptd.port, PERIOD_S, v_range, a_range, settle_s=SETTLE_S, **kw)
    with meter:
        start = time.monotonic()
        time.sleep(seconds)
        end = time.monotonic()
    return meter.record(), start, end


def test_uncertainty_over_one_percent_under_fixed_ranges_is_what_mlperf_rejects() -> None:
    # the case: 100 W on a 300 V x 20 A range. The loopback's analyzer states
    # 0.1 % of reading + 0.1 % of the power range: 0.001 + 0.001 x 6000 / 100 = 6.1 %
    with LoopbackPtd(Constant(100.0)) as ptd:
        wide, start, end = _pass(ptd, 0.5, "300", "20")
        # 100 W / (230 V x 0.95) = 0.458 A: a 250 V x 0.6 A range gives 0.1 % + 0.15 % = 0.25 %
        snug, s_start, s_end = _pass(ptd, 0.5, "250", "0.6")
        auto, a_start, a_end = _pass(ptd, 0.3)
    assert wide["status"] == "ok" and wide["power_samples"]  # the samples themselves are fine
    assert wide["uncertainty"]["relative"] == pytest.approx(0.061, abs=1e-6)
    problems = ptd_mlperf.rejections(wide, start, end)
    total = wide["extra"]["meter_summary"]["samples"]
    assert problems == [
        f"MLPerf would reject this run: {total} of {total} samples over the analyzer's "
        "uncertainty limit",
        "MLPerf would reject this run: maximum uncertainty 6.10% is above 1% (average 6.10%)",
    ]
    assert snug["uncertainty"]["relative"] == pytest.approx(0.0025, abs=1e-6)
    assert ptd_mlperf.rejections(snug, s_start, s_end) == []
    # auto ranges: PTDaemon states no uncertainty, and MLPerf measures on fixed ranges only
    (reason,) = ptd_mlperf.rejections(auto, a_start, a_end)
    assert reason.startswith("MLPerf would reject this run: the pass ran on auto ranges")
    # uncertainty checking inactive under fixed ranges (the daemon answers -1)
    inactive = copy.deepcopy(snug)
    inactive["extra"]["uncertainty_reply"] = "Uncertainty,-1,-1,-1,10,0,0,10"
    (reason,) = ptd_mlperf.rejections(inactive, s_start, s_end)
    assert "uncertainty checking is not active" in reason


def test_error_samples_are_counted_and_reject_the_window() -> None:
    # samples 3 and 4 of the first pass are the analyzer's errors (Watts -1)
    with LoopbackPtd(Constant(200.0), error_samples={1: {3, 4}}) as ptd:
        record, start, end = _pass(ptd, 0.5, "250", "1")
    errors = record["extra"]["error_samples"]
    assert [code for _, code in errors] == [-1.0, -1.0]
    assert record["extra"]["observed"]["invalid_samples"] == 2
    assert all(w == 200.0 for _, w in record["power_samples"])  # never used as power
    # sample k covers [(k-1) p, k p] after Go and sits at its midpoint: 3 and 4 at ~0.125 s
    # and ~0.175 s, inside the window that began right after Go
    assert all(start <= t <= end for t, _ in errors)
    problems = ptd_mlperf.rejections(record, start, end)
    total = record["extra"]["meter_summary"]["samples"]
    assert problems == [
        # an error sample has no uncertainty either (the analyzer's summary says so)
        f"MLPerf would reject this run: 2 of {total} samples of unknown uncertainty",
        "MLPerf would reject this run: 2 error sample(s) inside the window (PTDaemon codes -1)",
    ]
    # a window that starts after them: the error samples are not in it
    later = ptd_mlperf.rejections(record, errors[-1][0] + 1e-3, end)
    assert not [p for p in later if "error sample" in p]
    # the meter's own summary agrees with what RL returned, the final read included
    summary = record["extra"]["meter_summary"]
    assert summary["samples"] == len(record["power_samples"]) + 2 and summary["errors"] == 2
    # one sample fewer than the meter logged: the counts disagree
    short = copy.deepcopy(record)
    short["power_samples"] = short["power_samples"][:-1]
    (mismatch,) = [p for p in ptd_mlperf.rejections(short, start, end) if "summary" in p]
    assert f"counts {summary['samples']} samples (2 errors); RL returned " in mismatch


@pytest.mark.parametrize(
    ("style", "command", "refused"),
    [
        ("star", "RL,*,*", []),
        ("plain", "RL", [["RL,*,*", "Invalid number of parameters"]]),
        ("dc", "DC-RL", [["RL,*,*", "Unknown command"]]),
    ],
)
def test_rl_variant_is_negotiated_like_power_dev(
    style: RlStyle, command: str, refused: list[list[str]]
) -> None:
    with LoopbackPtd(Constant(150.0), rl_style=style) as ptd:
        record, _, _ = _pass(ptd, 0.4, "250", "1")
        reads = [c for c in ptd.commands if "RL" in c]
    assert record["status"] == "ok", record["reason"]
    assert [w for _, w in record["power_samples"]] == [150.0] * len(record["power_samples"])
    assert len(record["power_samples"]) >= 6
    assert record["extra"]["rl_command"] == command
    assert record["extra"]["rl_refused"] == refused
    # the refused variants were tried once, first; every later read used the answered one
    assert reads[: len(refused)] == [r[0] for r in refused]
    assert set(reads[len(refused) :]) == {command}


def test_multichannel_ranges_come_from_the_highest_element() -> None:
    # two elements carrying 75 % and 25 % of 300 W at 230 V, PF 0.95: element 1 draws
    # 0.75 x 300 / (230 x 0.95) = 1.02975 A, the sum 1.37300 A. The range is per element:
    # 1.1 x 1.02975 = 1.13272 A, rounded up to 4 digits: 1.133 (the sum would give 1.511)
    with LoopbackPtd(Constant(300.0), channels=(0.75, 0.25)) as ptd:
        v_range, a_range = ranging_pass(
            HOST, ptd.port, lambda: time.sleep(0.4), sample_period_s=PERIOD_S, settle_s=SETTLE_S
        )
        record, start, end = _pass(ptd, 0.4, v_range, a_range)
    assert (v_range, a_range) == ("230.0", "1.133")
    # the sum's 1.373 A is above the range, each element's current is not: no over-range
    assert record["extra"]["error_samples"] == []
    assert {w for _, w in record["power_samples"]} == {300.0}
    channels = record["extra"]["observed"]["channels"]
    assert [c["channel"] for c in channels] == [1, 2]
    assert channels[0]["max_amps"] == pytest.approx(1.02975, abs=1e-5)
    assert channels[1]["max_amps"] == pytest.approx(0.34325, abs=1e-5)
    assert ptd_mlperf.rejections(record, start, end) == []


def test_settle_times_restore_and_the_final_read() -> None:
    settle = 0.2
    assert PtdMeter("wall", HOST, 1).settle_s == 10.0  # MLPerf's default
    with LoopbackPtd(Constant(120.0)) as ptd:
        ptd.voltage_range, ptd.current_range = 300.0, 5.0  # the lab left fixed ranges set
        meter = PtdMeter("wall", HOST, ptd.port, PERIOD_S, "250", "1", settle_s=settle)
        entered = time.monotonic()
        with meter:
            started = time.monotonic()
            time.sleep(0.3)
            body_end = time.monotonic()
        record = meter.record()
        m = ptd.measurements[0]
        after = list(ptd.commands)
        restored = (ptd.voltage_range, ptd.current_range)
    # settle after SR before Go, and after the timed region before Stop
    assert m.go_monotonic - entered >= settle and started >= m.go_monotonic
    assert m.stop_monotonic is not None and m.stop_monotonic - body_end >= settle
    assert record["extra"]["settle"] == {"before_go_s": settle, "before_stop_s": settle}
    # after Stop: the samples logged since the last RL, then the analyzer's initial ranges
    tail = after[after.index("Stop") :]
    assert tail[1] == "RL,*,*" and tail[-2:] == ["SR,V,300", "SR,A,5"]
    assert restored == (300.0, 5.0)
    assert record["extra"]["restore"]["voltage"] == "300"
    assert len(record["power_samples"]) == record["extra"]["meter_summary"]["samples"]
    assert len(record["power_samples"]) == m.delivered
    # the loopback runs on this machine's clock: PTDaemon's stamps trail ours by the latency
    offset = record["extra"]["observed"]["clock_offset_s"]
    assert -PERIOD_S - 0.1 <= offset["vs_local_median_s"] <= 0.01
    assert offset["batches"] == len(record["extra"]["rl_batches"])


def test_not_mlperf_notes_and_the_ranging_rule() -> None:
    with LoopbackPtd(Constant(80.0)) as ptd:
        record, _, _ = _pass(ptd, 0.2, "250", "1")
    notes = ptd_mlperf.notes(record)
    assert notes == [
        "not MLPerf: sample period 50 ms (MLPerf: 1000 ms)",
        "not MLPerf: settle 0.01 s before Go and 0.01 s before Stop (MLPerf: 10 s)",
        "not MLPerf: PTDaemon 1.10.0 with analyzer 'LoopbackPTD' (MLPerf's checker accepts "
        "PTDaemon 1.9.1, 1.9.2 with YokogawaWT210, YokogawaWT310, YokogawaWT330E)",
    ]
    mlperf = copy.deepcopy(record)
    mlperf["extra"]["go"]["command"] = "Go,1000,0,wall"
    mlperf["extra"]["settle"] = {"before_go_s": 10.0, "before_stop_s": 10.0}
    mlperf["extra"]["identify"] = parse_identify(
        "YokogawaWT310,1000,1,1,1,1,0,0,0,version=1.9.2-abcdef-20210101,OS=x,mode=power"
    )
    assert ptd_mlperf.notes(mlperf) == []
    # testing average >= ranging average - 5 %: 95.0 W passes against 100 W, 94.9 W does not
    assert ptd_mlperf.ranging_rejection(95.0, 100.0) == ""
    assert ptd_mlperf.ranging_rejection(94.9, 100.0) == (
        "MLPerf would reject this run: the testing average 94.9 W is below the ranging "
        "average 100 W minus 5% (95 W)"
    )
