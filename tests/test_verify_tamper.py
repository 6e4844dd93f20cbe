"""`harness verify` catches every change to a run: evidence, statement.json, the envelope.

Every failure is exit 1 and exactly one line on stderr naming what changed, no traceback.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from clihelpers import TinyRun, assert_one_line_error, evidence_files, flip_byte, run_cli

# The evidence files the tiny suite produces on any machine (CPU or GPU). A machine the
# shipped hardware/ descriptions match adds evidence/hardware.yaml; the sweep below covers
# whatever the session run actually wrote.
ALWAYS_WRITTEN = [
    "evidence/environment.json",
    "evidence/run.json",
    "evidence/suite.yaml",
    "evidence/tasks/gemm/device.json",
    "evidence/tasks/gemm/fp32.json",
    "evidence/tasks/gemm/int8.json",
    "evidence/tasks/gemm/outcome.json",
]


def verify(run_dir: Path, *extra: str | Path):
    return run_cli("verify", run_dir, *extra)


def assert_caught(run_dir: Path, *needles: str) -> str:
    result = verify(run_dir)
    assert result.code == 1, f"not caught (exit {result.code}):\n{result.stdout}{result.stderr}"
    assert result.stdout == ""
    return assert_one_line_error(result, *needles)


def test_the_untouched_copy_verifies(run_copy: Path) -> None:
    result = verify(run_copy)
    assert result.code == 0, result.stderr


def test_the_list_of_evidence_files_is_current(tiny_run: TinyRun) -> None:
    written = evidence_files(tiny_run.run_dir)
    assert set(ALWAYS_WRITTEN) <= set(written)
    assert set(written) - set(ALWAYS_WRITTEN) <= {"evidence/hardware.yaml"}


# ------------------------------------------------------------------ evidence


@pytest.mark.parametrize("name", ALWAYS_WRITTEN)
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_flipped_byte_in_evidence_is_caught(run_copy: Path, name: str, where: str) -> None:
    path = run_copy / name
    size = path.stat().st_size
    flip_byte(path, {"first": 0, "middle": size // 2, "last": size - 1}[where])
    assert_caught(run_copy, name, "sha256")


def test_every_evidence_file_of_the_session_run_is_protected(
    tiny_run: TinyRun, run_copy: Path
) -> None:
    names = evidence_files(tiny_run.run_dir)
    assert names
    for name in names:
        path = run_copy / name
        original = path.read_bytes()
        flip_byte(path)
        assert_caught(run_copy, name)
        path.write_bytes(original)
    assert verify(run_copy).code == 0


def test_a_deleted_evidence_file_is_caught(run_copy: Path) -> None:
    name = "evidence/tasks/gemm/fp32.json"
    (run_copy / name).unlink()
    assert_caught(run_copy, name, "missing")


@pytest.mark.parametrize(
    "name", ["evidence/extra.json", "evidence/tasks/gemm/bf16.json", "evidence/new/dir/file.txt"]
)
def test_an_added_evidence_file_is_caught(run_copy: Path, name: str) -> None:
    path = run_copy / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}\n", encoding="utf-8")
    assert_caught(run_copy, name)


def test_a_truncated_evidence_file_is_caught(run_copy: Path) -> None:
    name = "evidence/tasks/gemm/int8.json"
    (run_copy / name).write_bytes(b"")
    assert_caught(run_copy, name)


# ------------------------------------------------------------------ statement.json


def _first_value_digit(text: str) -> int:
    """Offset of the first character of the first measurement's value."""
    start = text.index('"measurements"')
    marker = '"value":'
    return text.index(marker, start) + len(marker)


@pytest.mark.parametrize("where", ["first", "last", "value-digit", "key-letter"])
def test_a_flipped_byte_in_statement_json_is_caught(run_copy: Path, where: str) -> None:
    path = run_copy / "statement.json"
    text = path.read_text(encoding="utf-8")
    offsets = {
        "first": 0,
        "last": len(text.encode()) - 1,
        "value-digit": len(text[: _first_value_digit(text)].encode()),
        "key-letter": len(text[: text.index('"_type"') + 2].encode()),
    }
    flip_byte(path, offsets[where])
    if where in ("value-digit", "key-letter"):
        json.loads(path.read_bytes())  # still JSON: caught by content, not by syntax
    assert_caught(run_copy, "statement.json")


def test_an_edited_measurement_in_statement_json_is_caught(run_copy: Path) -> None:
    path = run_copy / "statement.json"
    statement = json.loads(path.read_text(encoding="utf-8"))
    statement["predicate"]["measurements"][0]["value"] *= 2
    path.write_text(json.dumps(statement, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    assert_caught(run_copy, "statement.json")


def _invisible_float_flip(data: bytes) -> int | None:
    """An offset whose XOR-1 flip changes the bytes but not the parsed JSON (the last digit
    of a 17-significant-digit float that rounds to the same double), or None."""
    original = json.loads(data)
    for i in range(len(data)):
        if not 0x30 <= data[i] <= 0x39:
            continue
        changed = bytearray(data)
        changed[i] ^= 0x01
        try:
            if json.loads(bytes(changed)) == original:
                return i
        except ValueError:
            continue
    return None


def test_every_byte_of_statement_json_is_covered(run_copy: Path) -> None:
    path = run_copy / "statement.json"
    offset = _invisible_float_flip(path.read_bytes())
    if offset is None:
        pytest.skip("no float in this run's statement has an invisible last digit")
    flip_byte(path, offset)
    assert_caught(run_copy, "statement.json")


def test_a_deleted_statement_json_still_verifies_with_a_warning(run_copy: Path) -> None:
    (run_copy / "statement.json").unlink()
    result = verify(run_copy)
    assert result.code == 0, result.stderr
    assert "statement.json" in result.stderr


# ------------------------------------------------------------------ the envelope


def _envelope(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "report.dsse.json").read_text(encoding="utf-8"))


def _write_envelope(run_dir: Path, envelope: dict[str, Any]) -> None:
    (run_dir / "report.dsse.json").write_text(json.dumps(envelope, indent=1), encoding="utf-8")


def _flip_b64(value: str, offset: int | None = None) -> str:
    data = bytearray(base64.b64decode(value))
    data[len(data) // 2 if offset is None else offset] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


def _tamper_payload_byte(envelope: dict[str, Any]) -> None:
    envelope["payload"] = _flip_b64(envelope["payload"])


def _tamper_payload_value(envelope: dict[str, Any]) -> None:
    """A payload that still parses: one measurement doubled, compact JSON as signed."""
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["measurements"][0]["value"] *= 2
    body = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    envelope["payload"] = base64.b64encode(body).decode()


def _tamper_signature_byte(envelope: dict[str, Any]) -> None:
    envelope["signatures"][0]["sig"] = _flip_b64(envelope["signatures"][0]["sig"])


def _tamper_signature_last_byte(envelope: dict[str, Any]) -> None:
    envelope["signatures"][0]["sig"] = _flip_b64(envelope["signatures"][0]["sig"], -1)


def _tamper_keyid(envelope: dict[str, Any]) -> None:
    keyid = envelope["signatures"][0]["keyid"]
    envelope["signatures"][0]["keyid"] = ("0" if keyid[0] != "0" else "1") + keyid[1:]


def _tamper_payload_type(envelope: dict[str, Any]) -> None:
    envelope["payloadType"] = "application/json"


def _tamper_no_signatures(envelope: dict[str, Any]) -> None:
    envelope["signatures"] = []


def _tamper_missing_payload(envelope: dict[str, Any]) -> None:
    del envelope["payload"]


ENVELOPE_TAMPERS = {
    "payload-byte": _tamper_payload_byte,
    "payload-value": _tamper_payload_value,
    "signature-byte": _tamper_signature_byte,
    "signature-last-byte": _tamper_signature_last_byte,
    "keyid": _tamper_keyid,
    "payload-type": _tamper_payload_type,
    "no-signatures": _tamper_no_signatures,
    "missing-payload": _tamper_missing_payload,
}


@pytest.mark.parametrize("tamper", sorted(ENVELOPE_TAMPERS))
def test_an_altered_envelope_is_caught(run_copy: Path, tamper: str) -> None:
    envelope = _envelope(run_copy)
    ENVELOPE_TAMPERS[tamper](envelope)
    _write_envelope(run_copy, envelope)
    assert_caught(run_copy, "report.dsse.json")


@pytest.mark.parametrize("tamper", ["payload-value", "signature-byte", "keyid"])
def test_an_altered_envelope_is_caught_with_the_pubkey_too(
    tiny_run: TinyRun, run_copy: Path, tamper: str
) -> None:
    envelope = _envelope(run_copy)
    ENVELOPE_TAMPERS[tamper](envelope)
    _write_envelope(run_copy, envelope)
    result = verify(run_copy, "--pubkey", tiny_run.dry_run_pub)
    assert result.code == 1
    assert_one_line_error(result, "report.dsse.json")


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_flipped_byte_in_the_envelope_file_is_caught(run_copy: Path, where: str) -> None:
    path = run_copy / "report.dsse.json"
    size = path.stat().st_size
    flip_byte(path, {"first": 0, "middle": size // 2, "last": size - 2}[where])
    assert_caught(run_copy, "report.dsse.json")


def test_a_missing_envelope_is_reported_in_one_line(run_copy: Path) -> None:
    (run_copy / "report.dsse.json").unlink()
    result = verify(run_copy)
    assert result.code == 2
    assert_one_line_error(result, "report.dsse.json")


# ------------------------------------------------------------------ the rendered reports


@pytest.mark.parametrize("name", ["report.md", "report.html"])
def test_an_edited_rendered_report_is_caught(run_copy: Path, name: str) -> None:
    path = run_copy / name
    path.write_text(path.read_text(encoding="utf-8").replace("FAIL", "PASS"), encoding="utf-8")
    assert_caught(run_copy, name)


def test_the_session_run_is_untouched_by_all_this(tiny_run: TinyRun, tmp_path: Path) -> None:
    copy = tmp_path / "again"
    shutil.copytree(tiny_run.run_dir, copy)
    assert verify(copy).code == 0
    assert verify(tiny_run.run_dir).code == 0
