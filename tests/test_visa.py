"""The `visa` instrument (pyvisa): a simulated Yokogawa WT (pyvisa-sim, a device file of the
test's own) that identifies and answers the numeric queries, and a loopback SCPI socket
meter through pyvisa-py that stops answering inside the window."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from loopback_scpi import IDN, LoopbackScpi

from harness.instruments import VisaSpec
from harness.power import Window, window_energy

pytest.importorskip("pyvisa_sim")

WT_YAML = """\
spec: "1.1"
devices:
  wt:
    eom:
      TCPIP INSTR:
        q: "\\n"
        r: "\\n"
    error: ERROR
    dialogues:
      - q: "*IDN?"
        r: "YOKOGAWA,WT310E,C2PH00000,F1.03"
      - q: ":NUMERIC:FORMAT ASCII"
      - q: ":NUMERIC:NORMAL:ITEM1 P,1"
    properties:
      power:
        default: 42.5
        getter:
          q: ":NUMERIC:NORMAL:VALUE? 1"
          r: "{:.4E}"
        specs:
          type: float
      voltage:
        default: 230.1
        getter:
          q: ":NUMERIC:NORMAL:VALUE? 2"
          r: "{:.4E}"
        specs:
          type: float
resources:
  TCPIP::10.0.0.5::INSTR:
    device: wt
"""


def _wt(tmp_path: Path, **extra: object) -> VisaSpec:
    device = tmp_path / "wt.yaml"
    device.write_text(WT_YAML, encoding="utf-8")
    return VisaSpec.model_validate(
        {
            "resource": "TCPIP::10.0.0.5::INSTR",
            "backend": f"{device}@sim",
            "sample_period_s": 0.05,
            "setup": [":NUMERIC:FORMAT ASCII", ":NUMERIC:NORMAL:ITEM1 P,1"],
            "power_query": ":NUMERIC:NORMAL:VALUE? 1",
            "voltage_query": ":NUMERIC:NORMAL:VALUE? 2",
            "uncertainty": {"relative": 0.001, "absolute_w": 0.05},
            **extra,
        }
    )


def test_a_simulated_wt_meter_is_identified_and_sampled(tmp_path: Path) -> None:
    spec = _wt(tmp_path)
    assert spec.unavailable_reason() is None
    meter = spec.build()
    with meter:
        start = time.monotonic()
        time.sleep(0.6)
        end = time.monotonic()
    record = meter.record()
    assert record["status"] == "ok", record["reason"]
    assert (record["kind"], record["domain"], record["partial_domain"]) == ("visa", "wall", False)
    assert record["extra"]["idn"] == "YOKOGAWA,WT310E,C2PH00000,F1.03"
    assert record["uncertainty"]["relative"] == 0.001
    samples = record["power_samples"]
    assert len(samples) >= 6 and {w for _, w in samples} == {42.5}
    assert {v for _, v in record["extra"]["voltage_samples"]} == {230.1}
    energy = window_energy(record, Window(start, end))
    assert energy.average_w == pytest.approx(42.5)
    json.dumps(record)  # plain JSON for the evidence


def test_a_meter_that_does_not_answer_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    spec = _wt(tmp_path, resource="TCPIP::10.0.0.99::INSTR")
    reason = spec.unavailable_reason()
    assert reason is not None and "TCPIP::10.0.0.99::INSTR" in reason


def test_a_loopback_socket_meter_that_stops_answering_is_lost(tmp_path: Path) -> None:
    with LoopbackScpi(12.5, answer_queries=5) as server:
        spec = VisaSpec.model_validate(
            {
                "resource": f"TCPIP::127.0.0.1::{server.port}::SOCKET",
                "sample_period_s": 0.05,
                "timeout_ms": 300,
                "uncertainty": {"relative": 0.01},
            }
        )
        meter = spec.build()
        with meter:
            start = time.monotonic()
            time.sleep(1.0)
            end = time.monotonic()
        record = meter.record()
    assert record["extra"]["idn"] == IDN
    assert record["status"] == "lost"
    assert "Timeout" in record["reason"] or "timeout" in record["reason"], record["reason"]
    assert [w for _, w in record["power_samples"]] == [12.5] * 5  # what was read is kept
    energy = window_energy(record, Window(start, end))
    assert energy.problem  # the window is not covered: the figure cannot decide
