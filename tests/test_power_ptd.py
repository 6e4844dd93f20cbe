"""Power end to end through a wall meter that speaks the PTDaemon protocol (the loopback
server of tests/loopback_ptd.py): ranging pass, testing pass, and a meter that disconnects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from loopback_ptd import Constant, LoopbackPtd

# the loopback PTDaemon and the meter's poll thread share this process: a garbage
# collection's pause would shift the samples (see `no_gc_pauses` in conftest.py)
pytestmark = pytest.mark.usefixtures("no_gc_pauses")

SUITE = """\
schema: harness.suite/v1
id: ptd-test
version: 0.0.1
direction: D02
title: wall power through PTDaemon
source: test
tasks:
  - id: power
    probe: power.gemm_load
    args: {precision: int8, size: {cpu: 128, cuda: 1024}, idle_s: 0.6, warmup_s: 0.1,
           duration_s: 2.5, allowed_domains: [wall]}
  - id: gemm
    probe: compute.gemm
    args: {precisions: [int8], sizes: {cpu: [64], cuda: [256]}, repeats: 5, warmup: 1,
           min_repeat_s: 0.005, check_size: 64}
indicators:
  - {id: typical_power_w, title: typical power, metric: power.typical_w, op: "<=", target: 50,
     unit: W, source: t}
  - {id: int8_tops, title: int8, metric: gemm.int8.throughput, op: ">=", target: 1e-9,
     unit: TOPS, source: t}
"""


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    from harness.cli import main

    monkeypatch.setattr("sys.argv", ["harness", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


# The judge wants the load window's samples to start and end within one sample period of
# its edges, no gap over two periods, and 95 % of the expected count. The client places each
# RL batch by its arrival, so a thread that wakes late (a busy or briefly stalled machine)
# shifts a batch by up to a period: at 0.1 s that takes a stall of over 50 ms at the
# window's start, where 0.05 s gave way at 25 ms. 2.5 s of load expect 25 samples, so one
# may be missed (at 2 s, 19 of 20.0x is just under 95 %).
PERIOD_S = 0.1


def _meter(port: int) -> str:
    return (
        f"  - {{kind: ptdaemon, host: 127.0.0.1, port: {port}, "
        f"sample_period_s: {PERIOD_S}, ranging_s: 0.5}}\n"
    )


def _setup(tmp_path: Path, port: int) -> tuple[Path, Path, Path]:
    """The suite, a submission without meters, and the lab's instruments file."""
    (tmp_path / "suite.yaml").write_text(SUITE)
    submission = tmp_path / "submission.yaml"
    submission.write_text(
        "applicant: A\nproduct: B\nsuite: ptd-test\nsut: {adapter: local, device: cpu}\n"
    )
    lab = tmp_path / "lab.yaml"
    lab.write_text("schema: harness.lab-instruments/v1\ninstruments:\n" + _meter(port))
    return tmp_path / "suite.yaml", submission, lab


def test_wall_power_with_a_ranging_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackPtd(Constant(42.0)) as ptd:
        suite, submission, lab = _setup(tmp_path, ptd.port)
        out = tmp_path / "run"
        argv = ["run", str(suite), "--submission", str(submission), "--out", str(out)]
        assert _run([*argv, "--instruments", str(lab)], monkeypatch) == 0
        commands = list(ptd.commands)
    # the ranging pass ran with auto ranges, the testing passes with fixed ones
    ranges = [c for c in commands if c.startswith("SR,")]
    assert ranges[:2] == ["SR,V,Auto", "SR,A,Auto"]
    assert all("Auto" not in c for c in ranges[2:]) and len(ranges) >= 4
    assert (out / "evidence/tasks/power/ranging/wall.json").is_file()
    predicate = json.loads((out / "statement.json").read_text())["predicate"]
    m = {x["id"]: x for x in predicate["measurements"]}
    assert m["power.typical_w"]["value"] == pytest.approx(42.0, rel=1e-6)
    assert m["power.typical_w"]["invalid_reason"] == ""
    assert "wall" in m["power.typical_w"]["method"] and "ptdaemon" in m["power.typical_w"]["method"]
    verdicts = {v["indicator"]: v for v in predicate["verdicts"]}
    assert verdicts["typical_power_w"]["status"] == "PASS", verdicts["typical_power_w"]["reason"]
    assert _run(["audit", str(out)], monkeypatch) == 0
    assert (out / "evidence/lab-instruments.yaml").read_text() == lab.read_text()


def test_a_meter_the_applicant_names_cannot_decide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same meter named in the submission instead of the lab's file: its figures are
    reported, and the power verdicts are INCONCLUSIVE (a meter reporting 0.0001 W from the
    applicant's own server must not pass)."""
    with LoopbackPtd(Constant(42.0)) as ptd:
        suite, submission, _ = _setup(tmp_path, ptd.port)
        submission.write_text(submission.read_text() + "instruments:\n" + _meter(ptd.port))
        out = tmp_path / "run"
        argv = ["run", str(suite), "--submission", str(submission), "--out", str(out)]
        assert _run(argv, monkeypatch) == 0
    predicate = json.loads((out / "statement.json").read_text())["predicate"]
    m = {x["id"]: x for x in predicate["measurements"]}
    assert m["power.typical_w"]["value"] == pytest.approx(42.0, rel=1e-6)
    verdict = {v["indicator"]: v for v in predicate["verdicts"]}["typical_power_w"]
    assert verdict["status"] == "INCONCLUSIVE"
    assert "the applicant's submission names" in verdict["reason"]


def test_a_submission_cannot_claim_its_meter_is_the_labs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite, submission, _ = _setup(tmp_path, 9)
    submission.write_text(
        submission.read_text()
        + "instruments:\n  - {kind: ptdaemon, host: 127.0.0.1, port: 9, supplied_by: lab}\n"
    )
    argv = ["run", str(suite), "--submission", str(submission), "--out", str(tmp_path / "r")]
    assert _run(argv, monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "instruments[0].supplied_by" in err[0]


def test_a_meter_that_disconnects_makes_power_inconclusive_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the server drops 0.9 s after the third Go, inside the 2.5 s load window; armed for
    # that measurement only, so a slow ranging pass (0.5 s) or idle interval (0.6 s) cannot
    # set it off early, however late their Stop arrives
    with LoopbackPtd(Constant(42.0), drop_after_s=0.9, fault_in_measurement=3) as ptd:
        suite, submission, lab = _setup(tmp_path, ptd.port)
        out = tmp_path / "run"
        argv = ["run", str(suite), "--submission", str(submission), "--out", str(out)]
        code = _run([*argv, "--instruments", str(lab)], monkeypatch)
        marks = [m.mark for m in ptd.measurements]
        fired_at = ptd.fault_fired_at
    # ranging, idle, load: the fault hit the load pass
    assert marks == ["wall-ranging", "wall", "wall"]
    assert fired_at is not None and fired_at >= ptd.measurements[2].go_monotonic + 0.9
    assert code == 3  # an instrument failed during the run; the report is still written
    predicate = json.loads((out / "statement.json").read_text())["predicate"]
    verdicts = {v["indicator"]: v for v in predicate["verdicts"]}
    power = verdicts["typical_power_w"]
    assert power["status"] in ("INCONCLUSIVE", "NOT_MEASURED")
    assert "lost" in power["reason"] or "cover" in power["reason"], power["reason"]
    assert verdicts["int8_tops"]["status"] == "PASS"  # the rest of the run went on
    tasks = {t["task"]: t for t in predicate["tasks"]}
    assert tasks["power"]["status"] == "partial" and "lost" in tasks["power"]["reason"]
