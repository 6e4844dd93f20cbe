"""`harness compare`: the session's real run against copies forged with the harness's own tools
(tests/clihelpers.py `forge`: a predicate edited and re-signed with another key, so it still
verifies). Expected figures are plain arithmetic on the two statement files."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from clihelpers import TinyRun, assert_one_line_error, flip_byte, forge, run_cli

from harness.errors import BadInput
from harness.schema import Interval, Measurement
from harness.selection.compare import (
    Comparison,
    Figure,
    compare_paths,
    measurement_row,
    overlap,
    parse_tolerance,
)

FP32 = "gemm.fp32.throughput"  # forged +1 %
INT8 = "gemm.int8.throughput"  # forged +5 %
PEAK = "gemm.fp32.percent_of_peak"  # interval moved above A's
COUNT = "gemm.verified_precisions"  # untouched, exact (a count)


def by_id(items: list[dict[str, Any]], key: str = "id") -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


def statement_of(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "statement.json").read_text(encoding="utf-8"))
    return data


def measurements_of(run_dir: Path) -> dict[str, dict[str, Any]]:
    return by_id(statement_of(run_dir)["predicate"]["measurements"])


def bounds(m: dict[str, Any]) -> tuple[float, float] | None:
    """The interval a statement's measurement is compared on: its confidence bounds (a missing
    one unbounded), the value itself for an exact figure (a count, or one marked exact), or
    None when it has neither."""
    ci = m["ci"]
    if ci is not None and (ci["low"] is not None or ci["high"] is not None):
        low = -math.inf if ci["low"] is None else ci["low"]
        high = math.inf if ci["high"] is None else ci["high"]
        return low, high
    if ci is None and (m["exact"] or m["unit"] == "count"):
        return m["value"], m["value"]
    return None


def expected_rows(a_dir: Path, b_dir: Path, tolerance: float) -> dict[str, dict[str, Any]]:
    """Per measurement id of either run, worked out from the two statement files: whether it
    is on both sides in one unit, whether |B - A| > tolerance x |A|, and whether the intervals
    share a point. Whatever this CPU measured beyond the four figures above is in here too."""
    a, b = measurements_of(a_dir), measurements_of(b_dir)
    rows: dict[str, dict[str, Any]] = {}
    for mid in dict.fromkeys([*a, *b]):
        if mid not in a or mid not in b or a[mid]["unit"] != b[mid]["unit"]:
            rows[mid] = {"comparable": False, "exceeds": None, "overlap": "unknown"}
            continue
        va, vb = a[mid]["value"], b[mid]["value"]
        exceeds = vb != 0 if va == 0 else abs(vb - va) > tolerance * abs(va)
        ia, ib = bounds(a[mid]), bounds(b[mid])
        if ia is None or ib is None:
            shared = "unknown"
        else:
            shared = "yes" if max(ia[0], ib[0]) <= min(ia[1], ib[1]) else "no"
        rows[mid] = {"comparable": True, "exceeds": exceeds, "overlap": shared}
    return rows


def expected_summary(a_dir: Path, b_dir: Path, tolerance: float) -> dict[str, int]:
    a, b = measurements_of(a_dir), measurements_of(b_dir)
    rows = expected_rows(a_dir, b_dir, tolerance)
    compared = [row for row in rows.values() if row["comparable"]]
    return {
        "measurements": len(rows),
        "compared": len(compared),
        "exceeding": sum(1 for row in compared if row["exceeds"]),
        "not_overlapping": sum(1 for row in compared if row["overlap"] == "no"),
        "overlap_unknown": sum(1 for row in compared if row["overlap"] == "unknown"),
        "not_comparable": sum(1 for mid in rows if mid in a and mid in b) - len(compared),
        "only_in_a": sum(1 for mid in rows if mid not in b),
        "only_in_b": sum(1 for mid in rows if mid not in a),
    }


def summary_start(counts: dict[str, int], tolerance: str = "2%") -> str:
    """How the last line of the table and markdown output begins, for these counts."""
    return (
        f"{counts['compared']} of {counts['measurements']} measurements compared: "
        f"{counts['exceeding']} differ by more than {tolerance}, "
        f"{counts['not_overlapping']} intervals do not overlap "
        f"({counts['overlap_unknown']} unknown); {counts['not_comparable']} not comparable, "
        f"{counts['only_in_a']} only in A, {counts['only_in_b']} only in B;"
    )


def forged_copy(tiny_run: TinyRun, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    shutil.copytree(tiny_run.run_dir, target)
    forge(target, edit)
    return target


def _rerun(predicate: dict[str, Any]) -> None:
    """What a re-run on another machine could give: two figures moved, one interval moved,
    a verdict and a task status changed, another torch and another CPU."""
    measurements = by_id(predicate["measurements"])
    measurements[FP32]["value"] *= 1.01
    measurements[INT8]["value"] *= 1.05
    ci = measurements[PEAK]["ci"]
    ci["low"], ci["high"] = ci["high"] * 2, ci["high"] * 3
    by_id(predicate["verdicts"], "indicator")["fp32_tflops"]["status"] = "INCONCLUSIVE"
    predicate["tasks"][0]["status"] = "partial"
    predicate["environment"]["packages"]["torch"] = "9.9.9"
    predicate["environment"]["cpu"]["cpu_name"] = "Another CPU"


@pytest.fixture(scope="module")
def rerun(tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return forged_copy(tiny_run, tmp_path_factory.mktemp("compare") / "rerun", _rerun)


def compare_json(a: Path, b: Path, *extra: str) -> dict[str, Any]:
    result = run_cli("compare", a, b, "--format", "json", *extra)
    assert result.code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# ------------------------------------------------------------------ the figures


def test_differences_are_the_hand_worked_ones(tiny_run: TinyRun, rerun: Path) -> None:
    a = by_id(statement_of(tiny_run.run_dir)["predicate"]["measurements"])
    b = by_id(statement_of(rerun)["predicate"]["measurements"])
    rows = by_id(compare_json(tiny_run.run_dir, rerun)["measurements"])
    assert list(rows) == list(a)
    for mid, row in rows.items():
        va, vb = a[mid]["value"], b[mid]["value"]
        assert row["a"]["value"] == va and row["b"]["value"] == vb
        assert row["a"]["unit"] == row["b"]["unit"] == a[mid]["unit"]
        assert row["difference"] == pytest.approx(vb - va, rel=1e-12, abs=0)
        assert row["relative_pct"] == pytest.approx((vb - va) / abs(va) * 100, rel=1e-9, abs=1e-12)
        assert row["comparable"] is True
    assert rows[FP32]["relative_pct"] == pytest.approx(1.0, rel=1e-9)
    assert rows[INT8]["relative_pct"] == pytest.approx(5.0, rel=1e-9)
    assert rows[PEAK]["difference"] == 0 and rows[COUNT]["difference"] == 0


def test_exceeds_and_overlap_flags(tiny_run: TinyRun, rerun: Path) -> None:
    a = measurements_of(tiny_run.run_dir)
    data = compare_json(tiny_run.run_dir, rerun)
    rows = by_id(data["measurements"])
    assert data["tolerance"] == 0.02
    # Beyond the four figures, this CPU may measure more (e.g. int8 % of peak, where it has a
    # nominal int8 peak): B copies those untouched, so they neither exceed nor move apart.
    assert {FP32, INT8, PEAK, COUNT} <= set(rows)
    untouched = set(rows) - {FP32, INT8, PEAK, COUNT}
    expected = expected_rows(tiny_run.run_dir, rerun, 0.02)
    assert list(rows) == list(expected)
    assert {mid: row["comparable"] for mid, row in rows.items()} == {
        mid: row["comparable"] for mid, row in expected.items()
    }
    assert {mid: row["exceeds"] for mid, row in rows.items()} == {
        mid: row["exceeds"] for mid, row in expected.items()
    }
    assert {mid: row["overlap"] for mid, row in rows.items()} == {
        mid: row["overlap"] for mid, row in expected.items()
    }
    # the hand-worked ones
    assert {mid: rows[mid]["exceeds"] for mid in (FP32, INT8, PEAK, COUNT)} == {
        FP32: False,
        INT8: True,
        PEAK: False,
        COUNT: False,
    }
    assert {mid: rows[mid]["overlap"] for mid in (FP32, INT8, PEAK, COUNT)} == {
        FP32: "yes",  # the same interval, the value moved inside it
        INT8: "yes",
        PEAK: "no",  # B's interval starts at twice A's upper bound
        COUNT: "yes",  # exact on both sides: the points are equal
    }
    for mid in untouched:
        assert rows[mid]["difference"] == 0 and rows[mid]["exceeds"] is False
        assert rows[mid]["overlap"] == ("unknown" if bounds(a[mid]) is None else "yes")
    ci = a[FP32]["ci"]
    assert (rows[FP32]["a"]["low"], rows[FP32]["a"]["high"]) == (ci["low"], ci["high"])
    assert rows[COUNT]["a"]["interval"] == "exact"
    assert rows[COUNT]["a"]["low"] == rows[COUNT]["a"]["high"] == a[COUNT]["value"]
    summary = data["summary"]
    counts = expected_summary(tiny_run.run_dir, rerun, 0.02)
    assert {key: summary[key] for key in counts} == counts
    # every figure of A is compared; only INT8 exceeds and only PEAK's intervals part
    assert (summary["compared"], summary["exceeding"], summary["not_overlapping"]) == (
        len(a),
        1,
        1,
    )


def test_the_tolerance_decides_what_exceeds(tiny_run: TinyRun, rerun: Path) -> None:
    def exceeding(tolerance: str) -> list[str]:
        rows = compare_json(tiny_run.run_dir, rerun, "--tolerance", tolerance)["measurements"]
        return sorted(row["id"] for row in rows if row["exceeds"])

    assert exceeding("0.5%") == sorted([FP32, INT8])
    assert exceeding("0.02") == [INT8]
    assert exceeding("6%") == []


def test_verdicts_tasks_and_environments(tiny_run: TinyRun, rerun: Path) -> None:
    data = compare_json(tiny_run.run_dir, rerun)
    verdicts = by_id(data["verdicts"], "indicator")
    assert verdicts["fp32_tflops"]["metric"] == FP32
    assert (verdicts["fp32_tflops"]["status_a"], verdicts["fp32_tflops"]["status_b"]) == (
        "PASS",
        "INCONCLUSIVE",
    )
    assert verdicts["fp32_tflops"]["changed"] is True
    assert verdicts["int8_tops"]["changed"] is False
    assert verdicts["typical_power_w"]["status_a"] == "NOT_MEASURED"
    fp32_row = by_id(data["measurements"])[FP32]
    assert [v["indicator"] for v in fp32_row["verdicts"]] == ["fp32_tflops"]
    tasks = by_id(data["tasks"], "task")
    assert tasks["gemm"] == {
        "task": "gemm",
        "status_a": "ok",
        "status_b": "partial",
        "changed": True,
    }
    env = by_id(data["environment"], "name")
    assert env["package torch"]["differs"] is True and env["package torch"]["b"] == "9.9.9"
    assert env["CPU"]["differs"] is True and env["CPU"]["b"] == "Another CPU"
    assert env["seed"]["differs"] is False
    assert env["signer key"]["differs"] is True  # the forger's key
    assert env["hardware description"]["a"] == env["hardware description"]["b"]
    assert data["summary"]["verdicts_changed"] == 1 and data["summary"]["tasks_changed"] == 1


def test_json_round_trips(tiny_run: TinyRun, rerun: Path) -> None:
    result = run_cli("compare", tiny_run.run_dir, rerun, "--format", "json")
    assert result.code == 0, result.stderr
    parsed = Comparison.model_validate_json(result.stdout)
    assert parsed == compare_paths(tiny_run.run_dir, rerun, 0.02)
    assert parsed.model_dump_json(indent=1) + "\n" == result.stdout


def test_a_run_against_itself(tiny_run: TinyRun) -> None:
    data = compare_json(tiny_run.run_dir, tiny_run.run_dir / "report.dsse.json")
    assert all(row["difference"] == 0 and row["overlap"] == "yes" for row in data["measurements"])
    assert not any(row["differs"] for row in data["environment"])
    assert data["banners"] == []


# ------------------------------------------------------------------ output and exit codes


def test_table_output_and_its_last_line(tiny_run: TinyRun, rerun: Path) -> None:
    result = run_cli("compare", tiny_run.run_dir, rerun)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    counts = expected_summary(tiny_run.run_dir, rerun, 0.02)
    assert (counts["exceeding"], counts["not_overlapping"]) == (1, 1)  # INT8; PEAK
    assert lines[-1].startswith(summary_start(counts))
    fp32 = next(line for line in lines if line.startswith(FP32))
    assert "+1.00%" in fp32
    int8 = next(line for line in lines if line.startswith(INT8))
    assert "+5.00%" in int8 and "YES" in int8
    torch_row = next(line for line in lines if "package torch" in line)
    assert torch_row.startswith("*") and "9.9.9" in torch_row
    seed_row = next(line for line in lines if " seed " in f" {line} ")
    assert not seed_row.startswith("*")
    task_block = lines[lines.index("Tasks with a changed status") + 3]
    assert task_block.split() == ["gemm", "ok", "partial"]


def test_markdown_output(tiny_run: TinyRun, rerun: Path) -> None:
    result = run_cli("compare", tiny_run.run_dir, rerun, "--format", "md")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("# harness compare\n")
    assert "| measurement | unit | A | B | B-A | (B-A)/\\|A\\| |" in result.stdout
    counts = expected_summary(tiny_run.run_dir, rerun, 0.02)
    assert result.stdout.splitlines()[-1].startswith(summary_start(counts))


def test_fail_on_difference(tiny_run: TinyRun, rerun: Path) -> None:
    failing = run_cli("compare", tiny_run.run_dir, rerun, "--fail-on-difference")
    assert failing.code == 1
    counts = expected_summary(tiny_run.run_dir, rerun, 0.02)
    assert counts["exceeding"] == 1  # INT8, +5 %
    assert failing.stdout.splitlines()[-1].startswith(summary_start(counts))
    wide = run_cli("compare", tiny_run.run_dir, rerun, "--fail-on-difference", "--tolerance", "10%")
    assert wide.code == 0, wide.stderr


# ------------------------------------------------------------------ what the suites say


def test_different_suite_ids_are_refused(tiny_run: TinyRun, tmp_path: Path) -> None:
    def other_suite(predicate: dict[str, Any]) -> None:
        predicate["suite"]["id"] = "other-suite"

    other = forged_copy(tiny_run, tmp_path / "other", other_suite)
    result = run_cli("compare", tiny_run.run_dir, other)
    assert result.code == 2
    assert result.stdout == ""
    assert_one_line_error(result, "suite.id", "other-suite", "tiny-gemm")


def test_another_suite_version_and_a_quick_run_are_said(tiny_run: TinyRun, tmp_path: Path) -> None:
    def newer_and_quick(predicate: dict[str, Any]) -> None:
        predicate["suite"]["version"] = "0.0.2"
        predicate["run"]["quick"] = True

    other = forged_copy(tiny_run, tmp_path / "newer", newer_and_quick)
    result = run_cli("compare", tiny_run.run_dir, other)
    assert result.code == 0, result.stderr
    assert "SUITE DIFFERS: A ran tiny-gemm 0.0.1" in result.stdout
    assert "B ran tiny-gemm 0.0.2" in result.stdout
    assert "QUICK vs FULL: A is a full run, B a quick one" in result.stdout
    banners = compare_json(tiny_run.run_dir, other)["banners"]
    assert len(banners) == 2


def test_units_that_differ_and_figures_in_one_run_only(tiny_run: TinyRun, tmp_path: Path) -> None:
    def reshaped(predicate: dict[str, Any]) -> None:
        measurements = by_id(predicate["measurements"])
        measurements[FP32]["unit"] = "GFLOPS"
        predicate["measurements"] = [m for m in predicate["measurements"] if m["id"] != INT8]
        predicate["unmeasured"].append({"id": INT8, "reason": "the INT8 kernel crashed"})
        predicate["measurements"].append({**measurements[COUNT], "id": "gemm.extra"})

    other = forged_copy(tiny_run, tmp_path / "reshaped", reshaped)
    data = compare_json(tiny_run.run_dir, other)
    rows = by_id(data["measurements"])
    assert rows[FP32]["comparable"] is False and rows[FP32]["exceeds"] is None
    assert "units differ (TFLOPS vs GFLOPS)" in rows[FP32]["note"]
    assert rows[INT8]["b"] is None and rows[INT8]["unmeasured_b"] == "the INT8 kernel crashed"
    assert rows[INT8]["note"] == "only in A (B: not measured: the INT8 kernel crashed)"
    assert rows["gemm.extra"]["a"] is None and rows["gemm.extra"]["note"] == "only in B"
    a = measurements_of(tiny_run.run_dir)
    summary = data["summary"]
    counts = expected_summary(tiny_run.run_dir, other, 0.02)
    assert {key: summary[key] for key in counts} == counts
    # A's figures and gemm.extra; all but FP32 (units) and INT8 (only in A) are compared
    assert (summary["measurements"], summary["compared"]) == (len(a) + 1, len(a) - 2)
    assert (summary["not_comparable"], summary["only_in_a"], summary["only_in_b"]) == (1, 1, 1)


# ------------------------------------------------------------------ refusals


def test_a_tampered_run_fails_verification(tiny_run: TinyRun, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered"
    shutil.copytree(tiny_run.run_dir, tampered)
    flip_byte(tampered / "evidence/tasks/gemm/fp32.json")
    for args in ((tiny_run.run_dir, tampered), (tampered, tiny_run.run_dir)):
        result = run_cli("compare", *args)
        assert result.code == 1
        assert result.stdout == ""
        assert_one_line_error(result, "evidence/tasks/gemm/fp32.json", "sha256")


@pytest.mark.parametrize(
    ("text", "fraction"),
    [
        ("2%", 0.02),
        ("0.5%", 0.005),
        ("0.02", 0.02),
        (" 1.5 % ", 0.015),
        ("0%", 0.0),
        ("5e-1%", 0.005),
    ],
)
def test_tolerance_parsing(text: str, fraction: float) -> None:
    assert parse_tolerance(text) == pytest.approx(fraction, rel=1e-15)


@pytest.mark.parametrize(
    "text", ["", "abc", "2", "1.5", "-1%", "2%%", "nan", "inf%", "100%", "2 percent"]
)
def test_bad_tolerances_are_refused(text: str, tiny_run: TinyRun) -> None:
    with pytest.raises(BadInput, match="--tolerance"):
        parse_tolerance(text)
    result = run_cli("compare", tiny_run.run_dir, tiny_run.run_dir, "--tolerance", text)
    assert result.code == 2
    assert_one_line_error(result, "--tolerance")


# ------------------------------------------------------------------ the pure parts


def _measurement(
    value: float, ci: tuple[float | None, float | None] | None, **extra: Any
) -> Measurement:
    interval = None
    if ci is not None:
        interval = Interval(low=ci[0], high=ci[1], confidence=0.95, method="test")
    return Measurement(
        id="x",
        value=value,
        unit=extra.pop("unit", "s"),
        n=5,
        repeats=5,
        ci=interval,
        method="test",
        **extra,
    )


def test_a_zero_baseline() -> None:
    same = measurement_row(
        "x",
        _measurement(0.0, None, exact="a size"),
        _measurement(0.0, None, exact="a size"),
        ({}, {}),
        0.02,
        [],
    )
    assert (same.difference, same.relative_pct, same.exceeds, same.overlap) == (
        0.0,
        0.0,
        False,
        "yes",
    )
    moved = measurement_row(
        "x",
        _measurement(0.0, None, exact="a size"),
        _measurement(1.0, None, exact="a size"),
        ({}, {}),
        0.02,
        [],
    )
    assert (moved.difference, moved.relative_pct, moved.exceeds, moved.overlap) == (
        1.0,
        None,
        True,
        "no",
    )
    assert "undefined" in moved.note


def test_a_negative_baseline_uses_its_magnitude() -> None:
    row = measurement_row(
        "x", _measurement(-2.0, (-3.0, -1.0)), _measurement(-1.0, (-1.5, -0.5)), ({}, {}), 0.02, []
    )
    assert row.difference == 1.0 and row.relative_pct == 50.0 and row.exceeds is True
    assert row.overlap == "yes"  # [-3, -1] and [-1.5, -0.5] share [-1.5, -1]


def _figure(
    value: float, interval: Literal["ci", "exact", "none"], low: float | None, high: float | None
) -> Figure:
    return Figure(value=value, unit="s", interval=interval, low=low, high=high)


def test_overlap_rules() -> None:
    ci = _figure(1.0, "ci", 0.9, 1.1)
    assert overlap(ci, _figure(1.2, "ci", 1.1, 1.3)) == "yes"  # touching at 1.1
    assert overlap(ci, _figure(1.2, "ci", 1.11, 1.3)) == "no"
    assert overlap(ci, _figure(2.0, "ci", 1.5, None)) == "no"  # one-sided: [1.5, +inf)
    assert overlap(ci, _figure(2.0, "ci", None, 1.0)) == "yes"  # (-inf, 1.0]
    assert overlap(ci, _figure(1.05, "exact", 1.05, 1.05)) == "yes"  # a point inside
    assert overlap(ci, _figure(1.2, "exact", 1.2, 1.2)) == "no"
    assert overlap(ci, _figure(1.0, "none", None, None)) == "unknown"
    none = _figure(1.0, "none", None, None)
    assert overlap(none, none) == "unknown"
    assert overlap(_figure(3.0, "exact", 3.0, 3.0), _figure(3.0, "exact", 3.0, 3.0)) == "yes"
