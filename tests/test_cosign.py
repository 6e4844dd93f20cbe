"""Co-signatures: a witness lab audits a report and adds its signature; `verify --threshold`.

The witness's signature is checked here independently of securesystemslib: the DSSE
pre-authentication encoding written out by hand, the Ed25519 signature checked with
`cryptography` against the witness's public key."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from clihelpers import TINY_SUITE, assert_one_line_error, run_cli, write_submission
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from rankhelpers import Figure, issue

from harness import signing


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("keys")
    out: dict[str, Path] = {}
    for name in ("agency", "witness", "stranger"):
        key, pub = signing.write_keypair(base / name)
        out[f"{name}.key"], out[f"{name}.pub"] = key, pub
    return out


@pytest.fixture(scope="module")
def agency_run(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]) -> Path:
    """A genuine run of the tiny suite, issued with the agency's key."""
    base = tmp_path_factory.mktemp("agency-run")
    submission = write_submission(base / "submission.yaml")
    run_dir = base / "run"
    result = run_cli("run", TINY_SUITE, "--submission", submission, "--key", keys["agency.key"],
                     "--out", run_dir)
    assert result.code == 0, result.stderr
    return run_dir


@pytest.fixture
def run_dir(agency_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(agency_run, target)
    return target


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding, from the spec."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def test_cosigned_report_meets_a_threshold_of_two(run_dir: Path, keys: dict[str, Path]) -> None:
    before = json.loads((run_dir / "report.dsse.json").read_text())
    result = run_cli("cosign", run_dir, "--key", keys["witness.key"])
    assert result.code == 0, result.stderr
    after = json.loads((run_dir / "report.dsse.json").read_text())
    assert after["payload"] == before["payload"]
    assert len(after["signatures"]) == 2
    witness_pub = load_pem_public_key(keys["witness.pub"].read_bytes())
    witness_id = signing.load_public(keys["witness.pub"]).keyid
    (sig,) = [s for s in after["signatures"] if s["keyid"] == witness_id]
    witness_pub.verify(  # type: ignore[union-attr]
        base64.b64decode(sig["sig"]),
        pae(after["payloadType"], base64.b64decode(after["payload"])),
    )  # raises InvalidSignature if not
    ok = run_cli("verify", run_dir, "--threshold", "2", "--pubkey", keys["agency.pub"],
                 "--pubkey", keys["witness.pub"])
    assert ok.code == 0, ok.stderr
    assert "OFFICIAL" in ok.stdout and f"co-signed by the trusted key(s) {witness_id}" in ok.stdout
    audited = run_cli("audit", run_dir, "--threshold", "2", "--pubkey", keys["agency.pub"],
                      "--pubkey", keys["witness.pub"])
    assert audited.code == 0, audited.stderr


def test_threshold_not_met(run_dir: Path, keys: dict[str, Path]) -> None:
    # only the agency signed: two trusted signatures are not there
    result = run_cli("verify", run_dir, "--threshold", "2", "--pubkey", keys["agency.pub"],
                     "--pubkey", keys["witness.pub"])
    assert result.code == 1
    assert_one_line_error(result, "1 of the trusted keys signed, 2 required")
    # a stranger's co-signature does not count towards trusted keys
    assert run_cli("cosign", run_dir, "--key", keys["stranger.key"]).code == 0
    again = run_cli("verify", run_dir, "--threshold", "2", "--pubkey", keys["agency.pub"],
                    "--pubkey", keys["witness.pub"])
    assert again.code == 1


def test_issuer_must_be_trusted(run_dir: Path, keys: dict[str, Path]) -> None:
    assert run_cli("cosign", run_dir, "--key", keys["witness.key"]).code == 0
    result = run_cli("verify", run_dir, "--pubkey", keys["witness.pub"])
    assert result.code == 1
    assert_one_line_error(result, "the issuing key", "not among the trusted keys")


def test_threshold_arguments(run_dir: Path, keys: dict[str, Path]) -> None:
    too_many = run_cli("verify", run_dir, "--threshold", "2", "--pubkey", keys["agency.pub"])
    assert too_many.code == 2
    assert_one_line_error(too_many, "--threshold", "1 distinct --pubkey")
    same_twice = run_cli("verify", run_dir, "--threshold", "2", "--pubkey", keys["agency.pub"],
                         "--pubkey", keys["agency.pub"])
    assert same_twice.code == 2
    no_keys = run_cli("verify", run_dir, "--threshold", "2")
    assert no_keys.code == 2
    assert_one_line_error(no_keys, "--threshold", "--pubkey")


def test_cosigning_twice_and_a_changed_payload(run_dir: Path, keys: dict[str, Path]) -> None:
    assert run_cli("cosign", run_dir, "--key", keys["witness.key"]).code == 0
    twice = run_cli("cosign", run_dir, "--key", keys["witness.key"])
    assert twice.code == 2
    assert_one_line_error(twice, "has signed", "already")
    envelope_path = run_dir / "report.dsse.json"
    envelope = json.loads(envelope_path.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["submission"]["product"] = "Better Chip"
    envelope["payload"] = base64.b64encode(signing.payload_bytes(statement)).decode()
    envelope_path.write_text(json.dumps(envelope))
    result = run_cli("verify", envelope_path, "--threshold", "2", "--pubkey",
                     keys["agency.pub"], "--pubkey", keys["witness.pub"])
    assert result.code == 1


def test_witness_refuses_a_report_the_evidence_does_not_back(
    agency_run: Path, tmp_path: Path, keys: dict[str, Path]
) -> None:
    """Re-issued for another applicant with the agency's own key: the signature is valid, the
    audit is not, and the witness does not sign."""
    forged = issue(agency_run, tmp_path / "forged", signing.load_private(keys["agency.key"]),
                   "Another Lab", "Another Chip", {"fp32_tflops": Figure(99, 98, 100)})
    assert run_cli("verify", forged, "--pubkey", keys["agency.pub"]).code == 0
    result = run_cli("cosign", forged, "--key", keys["witness.key"])
    assert result.code == 1
    assert_one_line_error(result, "the audit found", "not co-signed")
    assert len(json.loads((forged / "report.dsse.json").read_text())["signatures"]) == 1


def test_rank_counts_trusted_cosignatures(run_dir: Path, keys: dict[str, Path]) -> None:
    result = run_cli("rank", run_dir, "--pubkey", keys["agency.pub"], "--pubkey",
                     keys["witness.pub"], "--threshold", "2", "--format", "json")
    (apart,) = json.loads(result.stdout)["listed_apart"]
    assert "1 trusted signature(s), 2 required" in apart["reason"]
    assert run_cli("cosign", run_dir, "--key", keys["witness.key"]).code == 0
    result = run_cli("rank", run_dir, "--pubkey", keys["agency.pub"], "--pubkey",
                     keys["witness.pub"], "--threshold", "2", "--format", "json")
    (apart,) = json.loads(result.stdout)["listed_apart"]
    assert "not a suite the harness ships" in apart["reason"]  # past the signature check
