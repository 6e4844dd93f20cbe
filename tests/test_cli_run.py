"""`harness run`, `keygen`, `suites`, `env` end to end, checked against independent
computations (hashlib, base64, json, cryptography), never against harness's own helpers."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import shutil
import stat
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import pytest
from clihelpers import (
    FP32_INDICATOR,
    INT8_INDICATOR,
    PENDING_INDICATOR,
    TINY_SUITE,
    Result,
    TinyRun,
    assert_one_line_error,
    evidence_files,
    isolated_env,
    run_cli,
    write_submission,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from harness import report

IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1"


# ------------------------------------------------------------------ independent helpers


def sha256_hex(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def envelope_of(run_dir: Path) -> dict[str, Any]:
    return read_json(run_dir / "report.dsse.json")


def payload_of(run_dir: Path) -> bytes:
    return base64.b64decode(envelope_of(run_dir)["payload"], validate=True)


def statement_of(run_dir: Path) -> dict[str, Any]:
    return read_json(run_dir / "statement.json")


def verdicts_by_id(statement: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["indicator"]: v for v in statement["predicate"]["verdicts"]}


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def signature_verifies(run_dir: Path, public: Ed25519PublicKey) -> bool:
    envelope = envelope_of(run_dir)
    body = base64.b64decode(envelope["payload"])
    message = pae(envelope["payloadType"], body)
    for signature in envelope["signatures"]:
        try:
            public.verify(base64.b64decode(signature["sig"]), message)
        except Exception:
            continue
        return True
    return False


def private_key_needles(key_path: Path) -> list[bytes]:
    """Byte strings that would betray the private key if found in a file."""
    pem = key_path.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    return [
        b"PRIVATE KEY",
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        der,
        body,
    ]


def assert_no_private_material(run_dir: Path, key_path: Path) -> None:
    needles = private_key_needles(key_path)
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"private key material in {path}"


def binomial_tail_ge(n: int, k: int) -> float:
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def expected_fp32_throughput(evidence: Path, confidence: float) -> tuple[float, float, float]:
    """(median, low, high) in TFLOPS from the raw timings, computed here from scratch."""
    record = read_json(evidence / "tasks" / "gemm" / "fp32.json")
    chosen: dict[str, Any] | None = None
    best_pilot = 0.0
    for size in record["sizes"]:
        if size["status"] != "measured":
            continue
        ops = 2 * size["m"] * size["n"] * size["k"] * size["iters"]
        pilot = statistics.median(ops / s for s in size["pilot_s"])
        if pilot > best_pilot:  # the size is chosen by its pilot, the figure by fresh repeats
            best_pilot, chosen = pilot, size
    assert chosen is not None
    ops = 2 * chosen["m"] * chosen["n"] * chosen["k"] * chosen["iters"]
    best = [ops / s for s in chosen["repeat_s"]]
    xs = sorted(best)
    n = len(xs)
    k = max(c for c in range(1, n + 1) if binomial_tail_ge(n, c) >= confidence)
    return statistics.median(xs) / 1e12, xs[k - 1] / 1e12, xs[n - k] / 1e12


# ------------------------------------------------------------------ the session run


def test_run_exits_zero_and_lays_out_the_run_directory(tiny_run: TinyRun) -> None:
    run_dir = tiny_run.run_dir
    assert tiny_run.result.code == 0
    assert "Traceback" not in tiny_run.result.stderr
    assert (run_dir / "evidence").is_dir()
    for name in ("statement.json", "report.dsse.json", "report.md", "report.html"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir.parent / f".{run_dir.name}.partial").exists()
    expected = {
        "evidence/suite.yaml",
        "evidence/environment.json",
        "evidence/run.json",
        "evidence/tasks/gemm/outcome.json",
        "evidence/tasks/gemm/fp32.json",
        "evidence/tasks/gemm/int8.json",
    }
    assert expected <= set(evidence_files(run_dir))


def test_evidence_suite_is_the_suite_file_byte_for_byte(tiny_run: TinyRun) -> None:
    assert (tiny_run.run_dir / "evidence" / "suite.yaml").read_bytes() == TINY_SUITE.read_bytes()


def test_envelope_payload_is_the_statement(tiny_run: TinyRun) -> None:
    envelope = envelope_of(tiny_run.run_dir)
    assert envelope["payloadType"] == IN_TOTO_PAYLOAD
    assert len(envelope["signatures"]) == 1
    assert json.loads(payload_of(tiny_run.run_dir)) == statement_of(tiny_run.run_dir)


def test_statement_json_is_the_signed_payload_byte_for_byte(tiny_run: TinyRun) -> None:
    assert (tiny_run.run_dir / "statement.json").read_bytes() == payload_of(tiny_run.run_dir)


def test_every_verdict_names_the_suite_file_it_was_judged_by(tiny_run: TinyRun) -> None:
    verdicts = statement_of(tiny_run.run_dir)["predicate"]["verdicts"]
    assert verdicts
    assert {v["suite_sha256"] for v in verdicts} == {sha256_hex(TINY_SUITE)}


def test_statement_is_an_in_toto_statement(tiny_run: TinyRun) -> None:
    statement = statement_of(tiny_run.run_dir)
    assert statement["_type"] == IN_TOTO_STATEMENT
    assert isinstance(statement["predicateType"], str) and statement["predicateType"]
    assert isinstance(statement["predicate"], dict)


def test_every_evidence_file_is_a_subject_with_its_sha256(tiny_run: TinyRun) -> None:
    run_dir = tiny_run.run_dir
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement_of(run_dir)["subject"]}
    on_disk = {name: sha256_hex(run_dir / name) for name in evidence_files(run_dir)}
    assert subjects == on_disk


def test_predicate_records_the_suite_sha256(tiny_run: TinyRun) -> None:
    suite = statement_of(tiny_run.run_dir)["predicate"]["suite"]
    assert suite["id"] == "tiny-gemm"
    assert suite["sha256"] == sha256_hex(TINY_SUITE)


def test_signature_verifies_independently_under_the_embedded_key(tiny_run: TinyRun) -> None:
    run_dir = tiny_run.run_dir
    signer = statement_of(run_dir)["predicate"]["signer"]
    embedded = serialization.load_pem_public_key(signer["public_key"].encode())
    assert isinstance(embedded, Ed25519PublicKey)
    assert signature_verifies(run_dir, embedded)
    assert envelope_of(run_dir)["signatures"][0]["keyid"] == signer["keyid"]
    # and the embedded key is the dry-run key of $XDG_CONFIG_HOME/harness
    assert signer["public_key"] == tiny_run.dry_run_pub.read_text(encoding="utf-8")
    assert signer["self_generated"] is True


def test_verdicts(tiny_run: TinyRun) -> None:
    verdicts = verdicts_by_id(statement_of(tiny_run.run_dir))
    assert set(verdicts) == {FP32_INDICATOR, INT8_INDICATOR, PENDING_INDICATOR}
    assert verdicts[FP32_INDICATOR]["status"] == "PASS"
    assert verdicts[INT8_INDICATOR]["status"] == "FAIL"
    pending = verdicts[PENDING_INDICATOR]
    assert pending["status"] == "NOT_MEASURED"
    assert pending["value"] is None
    assert "no power instrument in the tests" in pending["reason"]


def test_fp32_figure_matches_an_independent_recomputation(tiny_run: TinyRun) -> None:
    statement = statement_of(tiny_run.run_dir)
    predicate = statement["predicate"]
    measurements = {m["id"]: m for m in predicate["measurements"]}
    fp32 = measurements["gemm.fp32.throughput"]
    assert fp32["unit"] == "TFLOPS"
    median, low, high = expected_fp32_throughput(
        tiny_run.run_dir / "evidence", predicate["suite"]["confidence"]
    )
    assert fp32["value"] == pytest.approx(median, rel=1e-9)
    assert fp32["ci"]["low"] == pytest.approx(low, rel=1e-9)
    assert fp32["ci"]["high"] == pytest.approx(high, rel=1e-9)
    verdict = verdicts_by_id(statement)[FP32_INDICATOR]
    assert verdict["bound"] == pytest.approx(low, rel=1e-9)
    assert low >= 0.000001  # why the verdict is PASS


def test_run_output_says_unofficial(tiny_run: TinyRun) -> None:
    assert "UNOFFICIAL" in tiny_run.result.stdout


@pytest.mark.parametrize("name", ["report.md", "report.html"])
def test_report_says_unofficial(tiny_run: TinyRun, name: str) -> None:
    text = (tiny_run.run_dir / name).read_text(encoding="utf-8")
    assert "unofficial" in text.lower()


def test_run_output_names_every_indicator_and_status_at_80_columns(tiny_run: TinyRun) -> None:
    out = tiny_run.result.stdout
    for indicator, status in [
        (FP32_INDICATOR, "PASS"),
        (INT8_INDICATOR, "FAIL"),
        (PENDING_INDICATOR, "NOT_MEASURED"),
    ]:
        assert indicator in out
        assert status in out


def test_no_private_key_material_in_the_run_directory(tiny_run: TinyRun) -> None:
    assert tiny_run.dry_run_key.is_file()
    assert_no_private_material(tiny_run.run_dir, tiny_run.dry_run_key)


def test_dry_run_key_lives_in_the_config_dir_with_mode_0600(tiny_run: TinyRun) -> None:
    mode = stat.S_IMODE(tiny_run.dry_run_key.stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)


def test_verify_of_the_untouched_run(tiny_run: TinyRun) -> None:
    result = run_cli("verify", tiny_run.run_dir)
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("OK")
    assert "self-asserted" in result.stderr  # no --pubkey: the embedded key, with a warning
    assert "UNVERIFIED" in result.stdout
    given = run_cli("verify", tiny_run.run_dir, "--pubkey", tiny_run.dry_run_pub)
    assert given.code == 0, given.stderr
    # the key is trusted, and what it is, a dry-run key, is still said
    assert given.stderr_lines == [
        "warning: UNOFFICIAL: the statement says a self-generated dry-run key signed it"
    ]
    assert "OFFICIAL" not in given.stdout


def test_verify_accepts_the_envelope_path(tiny_run: TinyRun) -> None:
    result = run_cli("verify", tiny_run.run_dir / "report.dsse.json")
    assert result.code == 0, result.stderr


def test_verify_in_a_real_process(tiny_run: TinyRun, cli_subprocess) -> None:
    result = cli_subprocess("verify", tiny_run.run_dir)
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ keygen


def test_keygen_writes_a_0600_ed25519_pair(cli, tmp_path: Path, config_home: Path) -> None:
    prefix = tmp_path / "keys" / "agency"
    result = cli("keygen", "--out", prefix)
    assert result.code == 0, result.stderr
    key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    public = serialization.load_pem_public_key(pub_path.read_bytes())
    assert isinstance(private, Ed25519PrivateKey)
    assert isinstance(public, Ed25519PublicKey)
    assert public.public_bytes_raw() == private.public_key().public_bytes_raw()
    assert b"PRIVATE" not in pub_path.read_bytes()
    assert str(key_path) in result.stdout
    assert not (config_home / "harness").exists()  # keygen never makes a dry-run key


def test_keygen_refuses_to_overwrite(cli, tmp_path: Path) -> None:
    prefix = tmp_path / "agency"
    assert cli("keygen", "--out", prefix).code == 0
    key_path = Path(f"{prefix}.key")
    before = key_path.read_bytes()
    again = cli("keygen", "--out", prefix)
    assert again.code == 2
    assert_one_line_error(again, str(key_path))
    assert key_path.read_bytes() == before


def test_keygen_refuses_when_only_the_public_half_exists(cli, tmp_path: Path) -> None:
    prefix = tmp_path / "agency"
    Path(f"{prefix}.pub").write_text("placeholder\n", encoding="utf-8")
    result = cli("keygen", "--out", prefix)
    assert result.code == 2
    assert_one_line_error(result, f"{prefix}.pub")
    assert not Path(f"{prefix}.key").exists()


# ------------------------------------------------------------------ a run signed with --key


@dataclass(frozen=True)
class KeyedRun:
    run_dir: Path
    key: Path
    pub: Path
    other_pub: Path
    config_home: Path
    result: Result


@pytest.fixture(scope="module")
def keyed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedRun]:
    base = tmp_path_factory.mktemp("keyed-run")
    config = base / "xdg-config"
    config.mkdir()
    with isolated_env(config):
        assert run_cli("keygen", "--out", base / "agency").code == 0
        assert run_cli("keygen", "--out", base / "other").code == 0
        result = run_cli("run", TINY_SUITE, "--key", base / "agency.key", "--out", base / "run")
        assert result.code == 0, result.stdout + result.stderr
        yield KeyedRun(
            base / "run",
            base / "agency.key",
            base / "agency.pub",
            base / "other.pub",
            config,
            result,
        )


def test_keyed_run_is_not_self_generated(keyed_run: KeyedRun) -> None:
    signer = statement_of(keyed_run.run_dir)["predicate"]["signer"]
    assert signer["self_generated"] is False
    assert signer["public_key"] == keyed_run.pub.read_text(encoding="utf-8")
    assert "UNOFFICIAL" not in keyed_run.result.stdout


def test_keyed_run_signature_verifies_independently(keyed_run: KeyedRun) -> None:
    public = serialization.load_pem_public_key(keyed_run.pub.read_bytes())
    assert isinstance(public, Ed25519PublicKey)
    assert signature_verifies(keyed_run.run_dir, public)
    other = serialization.load_pem_public_key(keyed_run.other_pub.read_bytes())
    assert isinstance(other, Ed25519PublicKey)
    assert not signature_verifies(keyed_run.run_dir, other)


def test_keyed_run_makes_no_dry_run_key(keyed_run: KeyedRun) -> None:
    assert not (keyed_run.config_home / "harness").exists()


def test_keyed_run_holds_no_private_key_material(keyed_run: KeyedRun) -> None:
    assert_no_private_material(keyed_run.run_dir, keyed_run.key)


def test_verify_with_the_signers_pubkey(keyed_run: KeyedRun) -> None:
    result = run_cli("verify", keyed_run.run_dir, "--pubkey", keyed_run.pub)
    assert result.code == 0, result.stderr
    assert "self-asserted" not in result.stdout + result.stderr
    assert result.stdout.startswith("OK: OFFICIAL: signed by the trusted key")


def test_a_given_key_is_not_official_by_itself(keyed_run: KeyedRun) -> None:
    """Any key counts as 'given', even one the applicant made with `harness keygen`: the
    statement claims nothing official, and verify without the agency's key says the signer
    is unverified."""
    signer = statement_of(keyed_run.run_dir)["predicate"]["signer"]
    assert "official" not in signer
    assert signer["keyid"] and signer["self_generated"] is False
    result = run_cli("verify", keyed_run.run_dir)
    assert result.code == 0, result.stderr
    assert "signer UNVERIFIED" in result.stdout
    assert "OFFICIAL" not in result.stdout
    assert "UNVERIFIED SIGNER" in result.stderr
    report_md = (keyed_run.run_dir / "report.md").read_text(encoding="utf-8")
    assert "official only if that is the agency's key" in report_md


def test_verify_with_another_pubkey_fails(keyed_run: KeyedRun) -> None:
    result = run_cli("verify", keyed_run.run_dir, "--pubkey", keyed_run.other_pub)
    assert result.code == 1
    assert_one_line_error(result, "report.dsse.json")


def test_a_report_re_signed_by_someone_else_fails_with_the_agency_pubkey(
    keyed_run: KeyedRun, tmp_path: Path
) -> None:
    """Forge: change a verdict, re-sign with another key and embed that key. Without
    --pubkey verify can only say the report is intact; with it, the forgery is caught."""
    run_dir = tmp_path / "forged"
    shutil.copytree(keyed_run.run_dir, run_dir)
    forger = Ed25519PrivateKey.generate()
    statement = statement_of(run_dir)
    statement["predicate"]["verdicts"][1]["status"] = "PASS"
    statement["predicate"]["signer"]["public_key"] = (
        forger.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    keyid = _sslib_keyid(forger.public_key())
    statement["predicate"]["signer"]["keyid"] = keyid
    body = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    envelope = envelope_of(run_dir)
    envelope["payload"] = base64.b64encode(body).decode()
    envelope["signatures"] = [
        {"keyid": keyid, "sig": base64.b64encode(forger.sign(pae(IN_TOTO_PAYLOAD, body))).decode()}
    ]
    # the one spelling verify accepts: sorted keys, one-space indent, a final newline
    (run_dir / "report.dsse.json").write_text(
        json.dumps(envelope, sort_keys=True, indent=1) + "\n", encoding="utf-8"
    )
    (run_dir / "statement.json").write_bytes(body)
    # a forger has the tool too: the human-readable reports are re-rendered to match
    (run_dir / "report.md").write_text(report.render_markdown(statement), encoding="utf-8")
    (run_dir / "report.html").write_text(report.render_html(statement), encoding="utf-8")

    self_asserted = run_cli("verify", run_dir)
    assert self_asserted.code == 0, self_asserted.stderr  # intact, but only self-asserted
    assert "self-asserted" in self_asserted.stderr
    checked = run_cli("verify", run_dir, "--pubkey", keyed_run.pub)
    assert checked.code == 1
    assert_one_line_error(checked, "report.dsse.json")


def _sslib_keyid(public: Ed25519PublicKey) -> str:
    """securesystemslib's key id: sha256 of the canonical JSON of the key's public part."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": raw.hex()}}
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


# ------------------------------------------------------------------ a run with a submission


@dataclass(frozen=True)
class SubmittedRun:
    run_dir: Path
    submission: Path
    result: Result


@pytest.fixture(scope="module")
def submitted_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubmittedRun]:
    base = tmp_path_factory.mktemp("submitted-run")
    config = base / "xdg-config"
    config.mkdir()
    submission = write_submission(base / "submission.yaml")
    with isolated_env(config):
        result = run_cli("run", TINY_SUITE, "--submission", submission, "--out", base / "run")
        assert result.code == 0, result.stdout + result.stderr
        yield SubmittedRun(base / "run", submission, result)


def test_submission_declared_target_and_weaker_flag(submitted_run: SubmittedRun) -> None:
    verdict = verdicts_by_id(statement_of(submitted_run.run_dir))[FP32_INDICATOR]
    assert verdict["declared_target"] == pytest.approx(0.0000001)
    assert verdict["status"] == "PASS"
    assert verdict["declared_status"] == "PASS"
    assert any("weaker" in flag for flag in verdict["flags"]), verdict["flags"]
    others = verdicts_by_id(statement_of(submitted_run.run_dir))
    assert others[INT8_INDICATOR]["declared_target"] is None
    assert others[INT8_INDICATOR]["flags"] == []


def test_submission_is_evidence_with_its_digest(submitted_run: SubmittedRun) -> None:
    run_dir = submitted_run.run_dir
    copied = run_dir / "evidence" / "submission.yaml"
    assert copied.read_bytes() == submitted_run.submission.read_bytes()
    predicate = statement_of(run_dir)["predicate"]
    assert predicate["submission"]["local_default"] is False
    assert predicate["submission"]["applicant"] == "Test Lab"
    assert predicate["submission"]["sha256"] == sha256_hex(submitted_run.submission)
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement_of(run_dir)["subject"]}
    assert subjects["evidence/submission.yaml"] == sha256_hex(submitted_run.submission)
    assert predicate["run"]["device"] == "cpu"


def test_submitted_run_audits_clean(submitted_run: SubmittedRun) -> None:
    result = run_cli("audit", submitted_run.run_dir)
    assert result.code == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ suites, env, version


def test_suites_lists_the_shipped_suites(cli) -> None:
    result = cli("suites")
    assert result.code == 0, result.stderr
    assert "d01-cloud-training-chip" in result.stdout


def test_suites_lists_full_ids_at_80_columns(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = cli("suites")
    assert result.code == 0, result.stderr
    assert "d01-cloud-training-chip" in result.stdout


def test_env_prints_json(cli) -> None:
    result = cli("env")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data["cpu"], dict)
    assert isinstance(data["packages"], dict)
    assert "torch" in data["packages"]


def test_version_in_a_real_process(cli_subprocess) -> None:
    result = cli_subprocess("--version")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("harness")


def test_help_lists_every_command(cli) -> None:
    result = cli("--help")
    assert result.code == 0
    for command in ("run", "verify", "audit", "keygen", "suites", "env"):
        assert command in result.stdout


def test_the_dry_run_key_goes_to_the_test_config_dir(config_home: Path) -> None:
    assert Path(platformdirs.user_config_dir("harness")).is_relative_to(config_home)


def test_a_log_file_gets_one_line_per_task_and_unwrapped_verdicts(tiny_run: TinyRun) -> None:
    """At 80 columns and without a terminal (as under nohup or CI): each finished task is
    one stderr line with its time, and each verdict's reason one stdout line, unwrapped."""
    statement = json.loads((tiny_run.run_dir / "statement.json").read_text(encoding="utf-8"))
    predicate = statement["predicate"]
    for task in predicate["tasks"]:
        assert any(
            line.startswith(f"{task['task']}: {task['status']} in ") and line.endswith(" s")
            for line in tiny_run.result.stderr_lines
        ), (task, tiny_run.result.stderr_lines)
    lines = tiny_run.result.stdout.splitlines()
    for verdict in predicate["verdicts"]:
        assert f"{verdict['indicator']}: {verdict['reason']}" in lines
        assert len(verdict["reason"]) > 0
    assert any(len(line) > 80 for line in lines)  # a long reason is not folded at 80
