"""`harness audit`: recompute from evidence/ alone and diff with the statement."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from clihelpers import Result, TinyRun, assert_one_line_error, run_cli

FP32 = "evidence/tasks/gemm/fp32.json"


def audit(run_dir: Path) -> Result:
    return run_cli("audit", run_dir)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def assert_mismatch(result: Result) -> list[str]:
    assert result.code == 1, f"exit {result.code}:\n{result.stdout}{result.stderr}"
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith("MISMATCH")
    return [line.strip() for line in result.stdout.splitlines()[1:]]


def test_audit_of_the_untouched_run(tiny_run: TinyRun) -> None:
    result = audit(tiny_run.run_dir)
    assert result.code == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK")
    assert result.stderr == ""


def test_an_edited_measurement_in_statement_json(run_copy: Path) -> None:
    path = run_copy / "statement.json"
    statement = read_json(path)
    first = statement["predicate"]["measurements"][0]
    first["value"] = first["value"] * 2 + 1
    write_json(path, statement)
    lines = assert_mismatch(audit(run_copy))
    named = [line for line in lines if f"measurements[{first['id']}].value" in line]
    assert named, lines
    assert "statement.json" in named[0]
    assert "signed" in named[0] and "recomputed" in named[0]


def test_an_edited_verdict_in_statement_json(run_copy: Path) -> None:
    path = run_copy / "statement.json"
    statement = read_json(path)
    int8 = next(v for v in statement["predicate"]["verdicts"] if v["indicator"] == "int8_tops")
    int8["status"] = "PASS"
    write_json(path, statement)
    lines = assert_mismatch(audit(run_copy))
    assert any("verdicts[int8_tops].status" in line for line in lines), lines


def _recomputed_value(lines: list[str], field: str) -> tuple[float, float]:
    pattern = re.compile(
        rf"measurements\[gemm\.fp32\.throughput\]\.{re.escape(field)}: "
        r"signed (\S+) != recomputed (\S+)"
    )
    for line in lines:
        if line.startswith("statement.json"):
            continue  # the same difference, seen in statement.json
        match = pattern.search(line)
        if match:
            return float(match.group(1)), float(match.group(2))
    raise AssertionError(f"no difference on {field}: {lines}")


def test_slower_raw_timings_change_the_figure_and_its_bounds(run_copy: Path) -> None:
    """Every repeat of every size 10x slower: every rate, so the median and both
    order-statistic bounds, become exactly a tenth."""
    path = run_copy / FP32
    record = read_json(path)
    measured = [s for s in record["sizes"] if s["status"] == "measured"]
    assert measured
    for size in measured:
        size["repeat_s"] = [t * 10 for t in size["repeat_s"]]
    write_json(path, record)
    lines = assert_mismatch(audit(run_copy))
    for field in ("value", "ci.low", "ci.high"):
        signed, recomputed = _recomputed_value(lines, field)
        assert recomputed == pytest.approx(signed / 10, rel=1e-6), (field, signed, recomputed)


def test_a_changed_target_in_the_evidence_suite_changes_the_verdict(run_copy: Path) -> None:
    path = run_copy / "evidence" / "suite.yaml"
    text = path.read_text(encoding="utf-8")
    assert "target: 1000000\n" in text
    path.write_text(text.replace("target: 1000000\n", "target: 0.000001\n"), encoding="utf-8")
    lines = assert_mismatch(audit(run_copy))
    assert any(
        "verdicts[int8_tops].status" in line and '"FAIL"' in line and '"PASS"' in line
        for line in lines
    ), lines


def test_audit_does_not_need_statement_json(run_copy: Path) -> None:
    (run_copy / "statement.json").unlink()
    result = audit(run_copy)
    assert result.code == 0, result.stdout + result.stderr


def test_audit_of_a_directory_without_evidence(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    result = audit(empty)
    assert result.code == 2
    assert_one_line_error(result, str(empty), "evidence")


def test_audit_of_a_run_whose_evidence_was_removed(run_copy: Path) -> None:
    shutil.rmtree(run_copy / "evidence")
    result = audit(run_copy)
    assert result.code == 2
    assert_one_line_error(result, "evidence")


def test_audit_of_a_missing_directory(tmp_path: Path) -> None:
    result = audit(tmp_path / "nowhere")
    assert result.code == 2
    assert_one_line_error(result, "nowhere")


def test_audit_without_an_envelope(run_copy: Path) -> None:
    (run_copy / "report.dsse.json").unlink()
    result = audit(run_copy)
    assert result.code == 2
    assert_one_line_error(result, "report.dsse.json")


@pytest.mark.parametrize("name", [FP32, "evidence/tasks/gemm/device.json", "evidence/suite.yaml"])
def test_unreadable_evidence_is_one_line(run_copy: Path, name: str) -> None:
    (run_copy / name).write_text("{\n", encoding="utf-8")
    result = audit(run_copy)
    assert result.code == 2
    assert_one_line_error(result, str(Path(name).parent.name))


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("evidence/run.json", "corrupt"),
        ("evidence/run.json", "delete"),
        ("evidence/tasks/gemm/outcome.json", "corrupt"),
    ],
)
def test_unreadable_run_or_outcome_is_one_line(run_copy: Path, name: str, damage: str) -> None:
    path = run_copy / name
    if damage == "delete":
        path.unlink()
    else:
        path.write_text("{\n", encoding="utf-8")
    result = audit(run_copy)
    assert result.code == 2
    assert_one_line_error(result, Path(name).name)


def test_a_corrupt_statement_json_is_one_line(run_copy: Path) -> None:
    path = run_copy / "statement.json"
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01  # '{' -> 'z'
    path.write_bytes(bytes(data))
    result = audit(run_copy)
    assert result.code in (1, 2)
    assert "Traceback" not in result.stderr
    assert "statement.json" in result.stdout + result.stderr
