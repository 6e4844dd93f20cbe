"""`harness audit`: verify first, then recompute from evidence/ alone and diff with the
statement.

A run changed by hand no longer verifies, so most tests here forge the way a hostile party
with the harness's own tools would: change the evidence or the predicate, list the evidence
again, re-render the reports and re-sign with a key of their own (`clihelpers.forge`). The
signature then holds under the embedded key; what must catch the change is the
re-derivation from the evidence."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from clihelpers import Result, TinyRun, assert_one_line_error, flip_byte, forge, run_cli

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
    assert result.stdout.startswith("OK: verified")
    # what verify says of a dry-run key, and nothing else
    assert all(line.startswith("warning: ") for line in result.stderr_lines), result.stderr
    assert "UNVERIFIED SIGNER" in result.stderr


def test_an_edited_measurement_in_statement_json_fails_verification(run_copy: Path) -> None:
    path = run_copy / "statement.json"
    statement = read_json(path)
    statement["predicate"]["measurements"][0]["value"] += 1
    write_json(path, statement)
    result = audit(run_copy)
    assert result.code == 1
    assert_one_line_error(result, "statement.json", "signed payload")


def test_a_forged_measurement_is_named(run_copy: Path) -> None:
    first: dict[str, Any] = {}

    def edit(predicate: dict[str, Any]) -> None:
        first.update(predicate["measurements"][0])
        predicate["measurements"][0]["value"] = first["value"] * 2 + 1

    forge(run_copy, edit)
    lines = assert_mismatch(audit(run_copy))
    named = [line for line in lines if f"measurements[{first['id']}].value" in line]
    assert named, lines
    assert "signed" in named[0] and "recomputed" in named[0]


def test_a_forged_verdict_is_named(run_copy: Path) -> None:
    def edit(predicate: dict[str, Any]) -> None:
        int8 = next(v for v in predicate["verdicts"] if v["indicator"] == "int8_tops")
        int8["status"] = "PASS"

    forge(run_copy, edit)
    lines = assert_mismatch(audit(run_copy))
    assert any("verdicts[int8_tops].status" in line for line in lines), lines


def _recomputed_value(lines: list[str], field: str) -> tuple[float, float]:
    pattern = re.compile(
        rf"measurements\[gemm\.fp32\.throughput\]\.{re.escape(field)}: "
        r"signed (\S+) != recomputed (\S+)"
    )
    for line in lines:
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
    for size in measured:  # the pilot chooses the size, the fresh repeats give the figure
        size["pilot_s"] = [t * 10 for t in size["pilot_s"]]
        if "repeat_s" in size:
            size["repeat_s"] = [t * 10 for t in size["repeat_s"]]
    write_json(path, record)
    forge(run_copy)
    lines = assert_mismatch(audit(run_copy))
    for field in ("value", "ci.low", "ci.high"):
        signed, recomputed = _recomputed_value(lines, field)
        assert recomputed == pytest.approx(signed / 10, rel=1e-6), (field, signed, recomputed)


def test_a_changed_target_in_the_evidence_suite_changes_the_verdict(run_copy: Path) -> None:
    path = run_copy / "evidence" / "suite.yaml"
    text = path.read_text(encoding="utf-8")
    assert "target: 1000000\n" in text
    path.write_text(text.replace("target: 1000000\n", "target: 0.000001\n"), encoding="utf-8")
    forge(run_copy)
    lines = assert_mismatch(audit(run_copy))
    assert any(line.startswith("suite.sha256") for line in lines), lines
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
    forge(run_copy)
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
    forge(run_copy)
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


# ------------------------------------------------------------------ audit verifies first


def test_a_corrupted_signature_byte_fails_the_audit(run_copy: Path) -> None:
    path = run_copy / "report.dsse.json"
    envelope = read_json(path)
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[10] ^= 0x01
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    path.write_text(json.dumps(envelope), encoding="utf-8")
    result = audit(run_copy)
    assert result.code == 1, result.stdout + result.stderr
    assert_one_line_error(result, "report.dsse.json", "signature")


def test_rewritten_evidence_with_a_re_derived_payload_not_re_signed(run_copy: Path) -> None:
    path = run_copy / FP32
    record = read_json(path)
    for size in record["sizes"]:
        if "repeat_s" in size:
            size["repeat_s"] = [t / 10 for t in size["repeat_s"]]
    write_json(path, record)
    forge(run_copy, resign=False)
    result = audit(run_copy)
    assert result.code == 1, result.stdout + result.stderr
    assert_one_line_error(result, "signature")


def test_an_evidence_file_replaced_by_a_link_outside_the_run(
    run_copy: Path, tmp_path: Path
) -> None:
    target = run_copy / FP32
    outside = tmp_path / "outside.json"
    outside.write_bytes(target.read_bytes())  # same bytes: the digest still matches
    target.unlink()
    target.symlink_to(outside)
    for command in ("audit", "verify"):
        result = run_cli(command, run_copy)
        assert result.code == 1, (command, result.stdout + result.stderr)
        assert_one_line_error(result, "symbolic link", FP32)


def test_a_linked_directory_inside_evidence_is_refused(run_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "extra"
    outside.mkdir()
    (outside / "more.json").write_text("{}\n", encoding="utf-8")
    (run_copy / "evidence" / "tasks" / "extra").symlink_to(outside, target_is_directory=True)
    for command in ("verify", "audit"):
        result = run_cli(command, run_copy)
        assert result.code == 1, (command, result.stdout + result.stderr)
        assert_one_line_error(result, "symbolic link", "evidence/tasks/extra")


def test_a_flipped_evidence_byte_fails_the_audit_before_scoring(run_copy: Path) -> None:
    flip_byte(run_copy / FP32)
    result = audit(run_copy)
    assert result.code == 1
    assert_one_line_error(result, FP32, "sha256")


# ------------------------------------------------------------------ the header is re-derived


def _set(path: str, value: Any) -> Any:
    def edit(predicate: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = predicate
        for part in parents:
            node = node[part]
        node[last] = value

    return edit


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("run.quick", True),
        ("run.seed", 42),
        ("run.started_utc", "2020-01-01T00:00:00.000000Z"),
        ("submission.product", "a product that was not run"),
        ("suite.version", "9.9.9"),
        ("suite.shipped", "shipped"),
        ("suite.sha256", "0" * 64),
        ("environment.cpu.cpu_name", "Imaginary CPU 9000"),
        ("trust.precomputed_outputs", True),
    ],
)
def test_a_re_signed_header_field_is_caught(run_copy: Path, path: str, value: Any) -> None:
    forge(run_copy, _set(path, value))
    assert run_cli("verify", run_copy).code == 0  # intact under the forger's own key
    lines = assert_mismatch(audit(run_copy))
    assert any(line.startswith(path + ":") for line in lines), lines


def test_a_quick_run_re_signed_as_a_full_one_is_caught(run_copy: Path) -> None:
    """The evidence says quick; the statement is re-signed saying not quick, and the QUICK
    banner disappears from the re-rendered report: audit names run.quick."""
    path = run_copy / "evidence" / "run.json"
    run = read_json(path)
    run["quick"] = True
    write_json(path, run)

    def edit(predicate: dict[str, Any]) -> None:
        predicate["run"]["quick"] = False

    forge(run_copy, edit)
    assert "QUICK RUN" not in (run_copy / "report.md").read_text(encoding="utf-8")
    lines = assert_mismatch(audit(run_copy))
    assert any(line.startswith("run.quick: signed false != recomputed true") for line in lines), (
        lines
    )


def test_an_added_predicate_section_is_caught(run_copy: Path) -> None:
    forge(run_copy, _set("endorsed_by", "the agency"))
    lines = assert_mismatch(audit(run_copy))
    assert any(line.startswith("endorsed_by:") for line in lines), lines


@pytest.mark.parametrize(
    "edit",
    [
        lambda st: st.update(official=True),
        lambda st: st.update(_type="https://example.org/Other/v1"),
        lambda st: st.update(predicateType="https://example.org/evil"),
    ],
    ids=["extra-field", "type", "predicate-type"],
)
def test_a_re_signed_statement_of_another_shape_fails_verify(run_copy: Path, edit: Any) -> None:
    forge(run_copy, edit_statement=edit)
    result = run_cli("verify", run_copy)
    assert result.code == 1, result.stdout + result.stderr
    assert "report.dsse.json" in result.stderr
