"""Attacks on verify, audit, cosign, the index and the ledger that succeeded in the audit
review, kept as regression tests (each failed before the fix).

Every test states the attack and what the correct behaviour would be. The signed runs are
real: the session's tiny run (tests/conftest.py `tiny_run`), a run of the tiny suite issued
with an "agency" key made here, and reports re-issued by tests/rankhelpers.py `issue`. The
ledger tests use real DSSE envelopes of small statements, as tests/test_ledger.py does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from clihelpers import TINY_SUITE, TinyRun, forge, run_cli, write_submission
from pymerkle import SqliteTree
from rankhelpers import Figure, issue

from harness import audit as audit_module
from harness import signing
from harness.selection import cosign as cosign_module
from harness.selection import reports
from harness.verify import VerifyResult

FP32, INT8 = "fp32_tflops", "int8_tops"
FP32_METRIC = "gemm.fp32.throughput"


# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("audit-keys")
    out: dict[str, Path] = {}
    for name in ("agency", "witness"):
        key, pub = signing.write_keypair(base / name)
        out[f"{name}.key"], out[f"{name}.pub"] = key, pub
    return out


@pytest.fixture(scope="module")
def agency_run(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]) -> Path:
    """A genuine run of the tiny suite with a submission, issued with the agency's key (its
    audit is clean, so a witness co-signs it)."""
    base = tmp_path_factory.mktemp("audit-agency-run")
    submission = write_submission(base / "submission.yaml")
    run_dir = base / "run"
    result = run_cli("run", TINY_SUITE, "--submission", submission, "--key", keys["agency.key"],
                     "--out", run_dir)
    assert result.code == 0, result.stderr
    return run_dir


@pytest.fixture
def official(agency_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "official"
    shutil.copytree(agency_run, target)
    return target


def _statement(envelope: Path) -> dict[str, Any]:
    data = json.loads(envelope.read_text(encoding="utf-8"))
    return json.loads(base64.b64decode(data["payload"]))


def _every_verdict_pass(statement: dict[str, Any]) -> None:
    for verdict in statement["predicate"]["verdicts"]:
        verdict["status"] = "PASS"


def _agency_signed(statement: dict[str, Any], keys: dict[str, Path]) -> dict[str, Any]:
    return signing.sign(statement, signing.load_private(keys["agency.key"]))


def _envelopes(folder: Path, count: int, key: signing.SigningKey) -> list[Path]:
    """Real DSSE envelopes of small statements, signed with `key` (as in test_ledger.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(count):
        statement = {"_type": "https://in-toto.io/Statement/v1", "subject": [],
                     "predicateType": "test", "predicate": {"k": k}}
        path = folder / f"r{k}.dsse.json"
        path.write_text(json.dumps(signing.sign(statement, key)))
        out.append(path)
    return out


def _entries(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (log / "entries.jsonl").read_text().splitlines()]


def _write_entries(log: Path, entries: list[dict[str, Any]]) -> None:
    (log / "entries.jsonl").write_text(
        "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries), encoding="utf-8")


def _rebuild_tree(log: Path, entries: list[dict[str, Any]]) -> bytes:
    """What anyone with write access to the folder can do: tree.db made afresh from the
    (rewritten) entries with pymerkle, as the ledger itself makes it; returns its root."""
    (log / "tree.db").unlink()
    tree = SqliteTree(str(log / "tree.db"), algorithm="sha256")
    try:
        for entry in entries:
            tree.append_entry(bytes.fromhex(entry["sha256"]))
        return bytes(tree.get_root())
    finally:
        tree.close()


# ------------------------------------------------------------------ cosign


def test_cosign_of_an_envelope_path_signs_an_envelope_it_never_audited(
    official: Path, keys: dict[str, Path]
) -> None:
    """`harness cosign PATH` takes a run directory or an envelope (verify.locate). Given
    RUN/other.dsse.json, it audits RUN (that is RUN/report.dsse.json, which is clean) and
    then adds the witness's signature to RUN/other.dsse.json, which it never verified or
    audited (harness/selection/cosign.py: `audit(run_dir)`, then `envelope_path` signed).
    The issuer puts an agency-signed statement whose verdicts the evidence does not back
    (every verdict PASS) beside the clean one; the witness "co-signs" it; moved into place,
    `verify --threshold 2 --pubkey agency --pubkey witness` says OFFICIAL and co-signed.
    Correct: cosign audits exactly the envelope it signs (or refuses an envelope other than
    RUN/report.dsse.json) and signs the bytes that audited."""
    statement = _statement(official / "report.dsse.json")
    _every_verdict_pass(statement)
    other = official / "other.dsse.json"
    other.write_bytes(signing.envelope_file_bytes(_agency_signed(statement, keys)))
    result = run_cli("cosign", other, "--key", keys["witness.key"])
    witness = signing.load_public(keys["witness.pub"]).keyid
    signed_by = [s["keyid"] for s in json.loads(other.read_text())["signatures"]]
    assert result.code != 0 and witness not in signed_by, (
        f"the witness co-signed an envelope it never audited: {result.stdout}"
    )


def test_cosign_signs_the_envelope_read_after_the_audit_not_the_one_audited(
    official: Path, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """TOCTOU in harness/selection/cosign.py: `audit(run_dir)` verifies and audits
    report.dsse.json, then the envelope is read from the file again and signed. A writer who
    replaces the file in between (here right after the audit returns) gets the witness's
    signature on a statement the audit never saw (every verdict PASS; `audit` of the
    result reports the differences, but the co-signature is there). Correct: co-sign the
    very envelope bytes whose statement the audit verified (AuditResult.verified), or
    re-check them before signing."""
    envelope = official / "report.dsse.json"
    statement = _statement(envelope)
    genuine_payload = signing.payload_bytes(statement)
    _every_verdict_pass(statement)
    swapped = signing.envelope_file_bytes(_agency_signed(statement, keys)).decode()
    real_audit = cosign_module.audit

    def audit_then_swap(*args: Any, **kwargs: Any) -> Any:
        result = real_audit(*args, **kwargs)
        envelope.write_text(swapped, encoding="utf-8")  # the concurrent writer's move
        return result

    monkeypatch.setattr(cosign_module, "audit", audit_then_swap)
    result = run_cli("cosign", official, "--key", keys["witness.key"])
    after = json.loads(envelope.read_text())
    witness = signing.load_public(keys["witness.pub"]).keyid
    if result.code == 0 and witness in [s["keyid"] for s in after["signatures"]]:
        assert base64.b64decode(after["payload"]) == genuine_payload, (
            "the witness signed a payload its audit never saw"
        )


# ------------------------------------------------------------------ audit


def test_audit_scores_evidence_bytes_other_than_those_verify_checked(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TOCTOU in harness/audit.py: `verify` checks every subject's sha256, then
    `header.derive` and `evaluate` read evidence/ from disk again. A forged statement whose
    subjects list a run.json saying `quick: true` while its predicate says quick false (the
    QUICK banner dropped: what audit is documented to catch) audits clean when run.json is
    put back to the unquick bytes right after verify returns, and swapped back afterwards.
    Correct: audit scores the bytes it digest-checked (read each once, or copy them to a
    private folder before verifying), or re-checks the digests after scoring."""
    run_json = run_copy / "evidence" / "run.json"
    genuine = run_json.read_bytes()
    run = json.loads(genuine)
    assert run["quick"] is False
    run["quick"] = True
    quick_bytes = json.dumps(run, indent=2, sort_keys=True).encode() + b"\n"
    run_json.write_bytes(quick_bytes)
    forge(run_copy)  # subjects: the quick run.json; predicate: still "not quick"
    caught = run_cli("audit", run_copy)
    assert caught.code == 1 and "run.quick" in caught.stdout, caught.stdout + caught.stderr

    real_verify = audit_module.verify

    def verify_then_swap(*args: Any, **kwargs: Any) -> VerifyResult:
        result = real_verify(*args, **kwargs)
        run_json.write_bytes(genuine)  # the concurrent writer's move
        return result

    monkeypatch.setattr(audit_module, "verify", verify_then_swap)
    result = run_cli("audit", run_copy)
    run_json.write_bytes(quick_bytes)
    assert result.code != 0, f"audit passed a dropped QUICK banner:\n{result.stdout}"


def test_rank_audit_ranks_the_figures_of_an_envelope_the_audit_never_saw(
    official: Path, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """TOCTOU in harness/selection/reports.py `read_report(..., with_audit=True)`: it
    verifies the run (keeping that statement), then `audit(run_dir)` verifies and audits
    the files again, and the record is made from the first statement. An agency-signed
    statement whose every verdict is PASS (the evidence says otherwise: `audit` finds the
    differences) is on disk for the first read and the clean one for the audit: `rank
    --audit` then ranks the forged verdicts as audited. Correct: rank from the statement
    the audit verified (`AuditResult.verified`), one read of the envelope."""
    envelope, statement_json = official / "report.dsse.json", official / "statement.json"
    for name in ("report.md", "report.html"):
        (official / name).unlink()
    genuine = (envelope.read_bytes(), statement_json.read_bytes())
    statement = _statement(envelope)
    _every_verdict_pass(statement)
    forged = (signing.envelope_file_bytes(_agency_signed(statement, keys)),
              signing.payload_bytes(statement))
    envelope.write_bytes(forged[0])
    statement_json.write_bytes(forged[1])
    assert run_cli("audit", official).code == 1  # the forged verdicts alone are caught
    real_verify = reports.verify

    def verify_then_swap(*args: Any, **kwargs: Any) -> VerifyResult:
        result = real_verify(*args, **kwargs)
        envelope.write_bytes(genuine[0])  # the concurrent writer's move
        statement_json.write_bytes(genuine[1])
        return result

    monkeypatch.setattr(reports, "verify", verify_then_swap)
    record = reports.read_report(official, [keys["agency.pub"]], with_audit=True)
    if isinstance(record, reports.ReportRecord):
        statuses = {row.indicator: row.status for row in record.indicators}
        assert statuses[INT8] != "PASS", (
            f"rank --audit took the figures of an envelope the audit never saw: {statuses}"
        )


# ------------------------------------------------------------------ verify


@pytest.mark.parametrize("how", ["an extra envelope field", "another base64 spelling of the sig",
                                 "an extra field in a signature"])
def test_the_envelope_bytes_can_change_and_still_verify(
    official: Path, keys: dict[str, Path], tmp_path: Path, how: str
) -> None:
    """The payload must be in the canonical signed form (signing.statement_of), but the
    envelope around it is not checked at all: unknown top-level fields, unknown fields in a
    signature object and non-canonical base64 (the unused low bits of the last character;
    securesystemslib's b64dec ignores them) all verify. The envelope's sha256 is what the
    ledger logs and the index keys reports by, so the very report the ledger holds becomes,
    byte-edited, "not in the ledger" (`ledger prove` fails) and a second index row, while
    `verify --pubkey agency` says OFFICIAL. Correct: `verify` refuses an envelope that is not
    exactly {payload, payloadType, signatures[{keyid, sig}]} in canonical base64 (the way
    it refuses a non-canonical payload)."""
    log = tmp_path / "log"
    assert run_cli("ledger", "add", official, "--log", log).code == 0
    path = official / "report.dsse.json"
    data = json.loads(path.read_text())
    if how == "an extra envelope field":
        data["note"] = "certified by the agency"
    elif how == "an extra field in a signature":
        data["signatures"][0]["cert"] = "certified by the agency"
    else:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        sig = data["signatures"][0]["sig"]
        body = sig.rstrip("=")
        assert len(sig) - len(body) == 2  # 64 bytes: 4 unused bits in the last character
        last = alphabet[alphabet.index(body[-1]) ^ 1]
        data["signatures"][0]["sig"] = body[:-1] + last + sig[len(body):]
        assert base64.b64decode(data["signatures"][0]["sig"]) == base64.b64decode(sig)
    path.write_text(json.dumps(data), encoding="utf-8")
    assert run_cli("ledger", "prove", official, "--log", log).code != 0  # no longer logged
    result = run_cli("verify", official, "--pubkey", keys["agency.pub"])
    assert result.code != 0, f"verify accepted a rewritten envelope ({how}): {result.stdout}"


def test_a_forged_report_beside_the_signed_ones_verifies(official: Path,
                                                         keys: dict[str, Path]) -> None:
    """`verify` checks evidence/ for unlisted files and report.md/report.html against the
    statement, but any other file at the top of the run directory passes: a forged
    `REPORT.md` / `report.pdf` saying "every indicator PASS, winner" sits in a run that
    `verify --pubkey agency` calls OFFICIAL (harness/verify.py checks only those names).
    Correct: the run directory holds only evidence/, statement.json, report.dsse.json,
    report.md and report.html (or verify fails naming the unexpected entry)."""
    (official / "REPORT.md").write_text("# OFFICIAL: every indicator PASS; WINNER\n")
    (official / "report.pdf").write_bytes(b"%PDF-1.4 every indicator PASS\n")
    result = run_cli("verify", official, "--pubkey", keys["agency.pub"])
    assert result.code != 0, f"verify accepted unsigned files in the run: {result.stdout}"


def test_rank_of_an_envelope_file_ranks_another_envelope(
    official: Path, keys: dict[str, Path]
) -> None:
    """`harness rank PATH` takes envelopes too, but reports.read_report keeps only the run
    directory of `locate(path)` and verifies RUN/report.dsse.json: `rank RUN/b.dsse.json`
    ranks (and `index add RUN/b.dsse.json` indexes) the applicant and figures of another
    envelope than the one given, while `verify RUN/b.dsse.json` checks the given one.
    Correct: read_report verifies and reads the envelope it was given (verify(path), as
    `harness verify` does), or refuses an envelope other than RUN/report.dsse.json."""
    for name in ("statement.json", "report.md", "report.html"):
        (official / name).unlink()  # optional: verify warns only
    statement = _statement(official / "report.dsse.json")
    statement["predicate"]["submission"]["applicant"] = "Lab Given"
    given = official / "b.dsse.json"
    given.write_bytes(signing.envelope_file_bytes(_agency_signed(statement, keys)))
    assert run_cli("verify", given, "--pubkey", keys["agency.pub"]).code == 0
    result = run_cli("rank", given, "--pubkey", keys["agency.pub"], "--format", "json")
    assert result.code == 0, result.stderr
    ranked = json.loads(result.stdout)
    named = [e["applicant"] for t in ranked["tables"] for e in t["entries"]]
    named += [a["applicant"] for a in ranked["listed_apart"]]
    refused = [u for u in ranked["excluded"] if u["path"] == str(given)]
    assert named == ["Lab Given"] or (
        named == [] and refused and "report.dsse.json" in refused[0]["reason"]
    ), f"rank {given.name} read another envelope: {named}"


# ------------------------------------------------------------------ index


def test_an_edited_index_row_is_ranked_as_official(
    tiny_run: TinyRun, tmp_path: Path, keys: dict[str, Path]
) -> None:
    """`rank --index` builds every record from the SQLite rows (index.records) and never
    looks at a signed byte again; `--format md|html` then says "Official: every ranked report
    verified with a trusted key". One UPDATE of the indicators table puts Lab B (8 TFLOPS,
    signed) above Lab A (10, signed) with 20 TFLOPS no signed report backs (the same goes for
    quick, self_generated, issuer_keyid, cosigner_keyids or the ranking block of a row).
    docs/selection.md calls the index "a cache of what verified", but nothing in the
    ranking says its figures were not re-checked. Correct: rank --index re-checks each row
    against its signed source (e.g. keep the signed payload in the row and verify its
    signature, cheap for Ed25519, or compare the envelope file's sha256 at `path`) and
    excludes a row that no signature backs, or at the very least says the ranking is from an
    unverified cache instead of claiming every report verified."""
    key = signing.load_private(keys["agency.key"])
    root = tmp_path / "runs"
    for name, fp32 in {"A": (10, 9.5, 10.5), "B": (8, 7.9, 8.1)}.items():
        issue(tiny_run.run_dir, root / name, key, f"Lab {name}", f"Chip {name}",
              {FP32: Figure(*fp32), INT8: Figure(5, 4, 6)}, html=False)
    db = tmp_path / "index.sqlite"
    assert run_cli("index", "add", root, "--index", db).code == 0
    with sqlite3.connect(db) as conn:
        changed = conn.execute(
            "UPDATE indicators SET value = 20, low = 19.5, high = 20.5, bound = 19.5 WHERE "
            "indicator = ? AND envelope_sha256 = (SELECT envelope_sha256 FROM reports WHERE "
            "applicant = 'Lab B')", (FP32,)).rowcount
        assert changed == 1
    conn.close()
    from_files = run_cli("rank", root.resolve(), "--pubkey", keys["agency.pub"],
                         "--format", "json")
    from_index = run_cli("rank", "--index", db, "--pubkey", keys["agency.pub"],
                         "--format", "json")
    assert from_files.code == from_index.code == 0, from_index.stderr
    order = [[e["applicant"] for e in t["entries"]]
             for t in json.loads(from_index.stdout)["tables"]]
    assert order == [["Lab A", "Lab B"]], (
        f"rank --index ranked a figure no signed report backs: {order}"
    )


# ------------------------------------------------------------------ ledger


@pytest.fixture
def ledger_key(tmp_path: Path) -> tuple[Path, Path]:
    return signing.write_keypair(tmp_path / "operator")


def test_ledger_entry_metadata_can_be_rewritten_unnoticed(
    tmp_path: Path, ledger_key: tuple[Path, Path]
) -> None:
    """entries.jsonl records where each envelope came from and when it was added, but the
    tree's leaf is the envelope's sha256 alone (harness/ledger/log.py `add`), so `ledger
    verify` cannot notice an entry whose `added_utc` is back-dated or whose `source` names
    another file, even against the signed checkpoint that covered it. README: "a removed,
    reordered or rewritten entry fails". Correct: the leaf commits to the whole entry (its
    canonical JSON line), or verify refuses entries whose unlogged fields changed (or the
    docs say only the sha256 is logged and the rest is unauthenticated)."""
    private = signing.load_private(ledger_key[0])
    files = _envelopes(tmp_path / "env", 2, private)
    log = tmp_path / "log"
    assert run_cli("ledger", "add", *files, "--log", log).code == 0
    kept = tmp_path / "kept.note"
    kept.write_text(run_cli("ledger", "checkpoint", "--key", ledger_key[0], "--log", log).stdout)
    entries = _entries(log)
    entries[0]["added_utc"] = "2019-01-01T00:00:00Z"
    entries[0]["source"] = "/elsewhere/report.dsse.json"
    _write_entries(log, entries)
    result = run_cli("ledger", "verify", "--checkpoint", kept, "--pubkey", ledger_key[1],
                     "--log", log)
    # the fix chosen: only the sha256 is logged, and `ledger verify` says the rest is unsigned
    assert result.code == 0
    assert "source and added_utc are not signed" in result.stdout


def test_an_uppercased_entry_digest_hides_an_issued_report_and_lets_it_in_twice(
    tmp_path: Path, ledger_key: tuple[Path, Path]
) -> None:
    """`check()` reads each entry's sha256 with bytes.fromhex, which takes upper case (and
    spaces), so rewriting an entry's digest in upper case leaves the tree and every
    checkpoint as they were and `ledger verify` says OK; but `inclusion` and `add` compare
    the text with the lowercase digest: `ledger prove` says the issued report "is not in the
    ledger", and `ledger add` appends it a second time (the README: "the same one twice is
    one entry"). Correct: entries must spell the digest as 64 lowercase hex (verify fails
    otherwise), or every comparison is of the decoded bytes."""
    private = signing.load_private(ledger_key[0])
    files = _envelopes(tmp_path / "env", 2, private)
    log = tmp_path / "log"
    assert run_cli("ledger", "add", *files, "--log", log).code == 0
    entries = _entries(log)
    entries[1]["sha256"] = entries[1]["sha256"].upper()
    _write_entries(log, entries)
    verified = run_cli("ledger", "verify", "--log", log)
    if verified.code == 0:
        proved = run_cli("ledger", "prove", files[1], "--log", log)
        assert proved.code == 0, f"ledger verify OK, yet prove denies: {proved.stderr}"
        added = run_cli("ledger", "add", files[1], "--log", log)
        assert "already in the log" in added.stdout, f"added twice: {added.stdout}"


def test_a_kept_checkpoint_is_never_signature_checked(
    tmp_path: Path, ledger_key: tuple[Path, Path]
) -> None:
    """`check()` opens every checkpoints/*.note with no keys (`open_note(..., {})`), and
    `ledger verify --pubkey K` without --checkpoint never uses K. Whoever can write the log
    folder rewrites an entry (another report in its place), rebuilds tree.db with pymerkle
    and replaces the kept checkpoint by an unsigned note of the new root: `ledger verify
    --pubkey operator.pub` says "ledger OK ... every checkpoint consistent". Correct: with
    --pubkey every kept checkpoint must carry a verifying signature by it (a kept note that
    does not is reported), so the kept copies are worth what the README says."""
    private = signing.load_private(ledger_key[0])
    files = _envelopes(tmp_path / "env", 2, private)
    log = tmp_path / "log"
    assert run_cli("ledger", "add", *files, "--log", log).code == 0
    assert run_cli("ledger", "checkpoint", "--key", ledger_key[0], "--log", log).code == 0
    (note,) = sorted((log / "checkpoints").glob("*.note"))
    entries = _entries(log)
    entries[0]["sha256"] = hashlib.sha256(b"another report").hexdigest()
    _write_entries(log, entries)
    root = _rebuild_tree(log, entries)
    origin = note.read_text(encoding="utf-8").splitlines()[0]
    note.write_text(f"{origin}\n2\n{base64.b64encode(root).decode()}\n\n", encoding="utf-8")
    result = run_cli("ledger", "verify", "--pubkey", ledger_key[1], "--log", log)
    assert result.code != 0, f"an unsigned kept checkpoint was accepted: {result.stdout}"


def test_prove_with_an_old_checkpoint_ignores_the_root_it_signed(
    tmp_path: Path, ledger_key: tuple[Path, Path]
) -> None:
    """`ledger prove PATH --checkpoint OLD` takes only OLD's size: `consistency(cp.size)`
    proves the log's current prefix against the log's own current root and never compares
    OLD's root. After entry 0 is rewritten (tree.db rebuilt, the kept copy deleted) `ledger
    verify --checkpoint OLD` fails, yet `prove --checkpoint OLD` exits 0 printing a
    "consistency" proof, as if the log had grown from OLD without rewriting. Correct: prove
    refuses (exit 1) when the log's root at OLD's size is not OLD's root, and checks OLD's
    signature with --pubkey as verify does."""
    private = signing.load_private(ledger_key[0])
    files = _envelopes(tmp_path / "env", 2, private)
    log = tmp_path / "log"
    assert run_cli("ledger", "add", *files, "--log", log).code == 0
    old = tmp_path / "old.note"
    old.write_text(run_cli("ledger", "checkpoint", "--key", ledger_key[0], "--log", log).stdout)
    entries = _entries(log)
    entries[0]["sha256"] = hashlib.sha256(b"another report").hexdigest()
    _write_entries(log, entries)
    _rebuild_tree(log, entries)
    for kept in (log / "checkpoints").glob("*.note"):
        kept.unlink()
    caught = run_cli("ledger", "verify", "--checkpoint", old, "--pubkey", ledger_key[1],
                     "--log", log)
    assert caught.code != 0
    result = run_cli("ledger", "prove", files[1], "--checkpoint", old, "--log", log)
    assert result.code != 0, f"a consistency proof from a broken checkpoint:\n{result.stdout}"
