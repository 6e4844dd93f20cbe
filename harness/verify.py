"""`harness verify`: the signature over the statement, and every subject's digest."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from harness import signing
from harness.errors import BadInput, VerificationFailed
from harness.evidence import sha256_file
from harness.rendering import check_rendered

ENVELOPE_FILE = "report.dsse.json"
STATEMENT_FILE = "statement.json"
# report.md and report.html must be what the signed statement renders (harness.rendering)
RENDERED: Callable[[Path, dict[str, Any]], list[str]] = check_rendered


@dataclass(frozen=True)
class VerifyResult:
    keyid: str
    key_source: str  # "given (trusted)" or "embedded (self-asserted)"
    trusted: bool  # verified against a key the verifier gave: the signer is who they trust
    self_generated: bool  # the statement says a dry-run key signed it
    subjects: int
    warnings: list[str]
    cosigners: list[str] = field(default_factory=list)  # trusted keys that signed besides
    signatures: int = 1  # signatures the envelope carries (trusted or not)
    issuer: str = ""  # the key id the statement names as its signer
    envelope_sha256: str = ""
    # the statement that verified, parsed from the very bytes whose signature was checked:
    # callers read figures from it, never from the file again (it may have changed since)
    statement: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    envelope_bytes: bytes = field(default=b"", repr=False, compare=False)  # what verified


def locate(path: Path) -> tuple[Path, Path]:
    """(run directory, envelope path) for a run directory or an envelope file."""
    if path.is_symlink():
        raise VerificationFailed(f"{path}: a symbolic link; give the run directory itself")
    if path.is_dir():
        envelope = path / ENVELOPE_FILE
        if not envelope.is_file():
            raise BadInput(path, None, f"no {ENVELOPE_FILE} in this directory")
        return path, envelope
    if path.is_file():
        return path.parent, path
    raise BadInput(path, None, "no such run directory or envelope")


def refuse_links(run_dir: Path) -> None:
    """No symbolic link anywhere in the run directory: every byte a report stands on must
    lie inside it (a linked file or folder could point anywhere and change later)."""
    for top, dirs, files in os.walk(run_dir, followlinks=False):
        for name in [*dirs, *files]:
            entry = Path(top) / name
            if entry.is_symlink():
                raise VerificationFailed(
                    f"{entry.relative_to(run_dir).as_posix()}: a symbolic link inside the run "
                    "directory (refused: evidence must be plain files)"
                )


def _subject_path(run_dir: Path, name: Any) -> Path:
    if not isinstance(name, str) or not name.startswith("evidence/"):
        raise VerificationFailed(f"{name!r}: a subject must name a file under evidence/")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\\" in name:
        raise VerificationFailed(f"{name}: a subject name must be a plain relative path")
    target = run_dir.joinpath(*parts)
    if run_dir.resolve() not in target.resolve().parents:
        raise VerificationFailed(f"{name}: subject lies outside the run directory")
    return target


def _check_signer(statement: dict[str, Any], key: SSlibKey, envelope_path: Path) -> bool:
    """The statement's signer block must name the key that verified the signature; returns
    whether the statement says the key was a self-generated dry-run key."""
    signer = statement.get("predicate", {}).get("signer")
    if not isinstance(signer, dict):
        raise VerificationFailed(f"{envelope_path}: the statement names no signer")
    if signer.get("keyid") != key.keyid:
        raise VerificationFailed(
            f"{envelope_path}: the statement names signer key {signer.get('keyid')}, "
            f"but key {key.keyid} signed it"
        )
    try:
        embedded = signing.public_from_pem(str(signer.get("public_key")))
    except (ValueError, TypeError, VerificationFailed):
        raise VerificationFailed(
            f"{envelope_path}: the embedded public key is unreadable"
        ) from None
    if embedded.keyid != key.keyid:
        raise VerificationFailed(
            f"{envelope_path}: the embedded public key ({embedded.keyid}) is not the key that "
            f"signed ({key.keyid})"
        )
    return bool(signer.get("self_generated"))


def _trusted_signers(
    envelope: Envelope,
    statement: dict[str, Any],
    pubkeys: Sequence[Path],
    threshold: int,
    envelope_path: Path,
) -> tuple[SSlibKey, list[str]]:
    """(the issuer's key, the co-signers' key ids): at least `threshold` of the trusted keys
    must have signed, the issuer (the key the statement names) among them."""
    keys = [signing.load_public(path) for path in pubkeys]
    if threshold < 1:
        raise BadInput("command line", "--threshold", f"must be at least 1, got {threshold}")
    distinct = {key.keyid for key in keys}
    if threshold > len(distinct):
        raise BadInput(
            "command line",
            "--threshold",
            f"{threshold} signatures asked for, but {len(distinct)} distinct --pubkey given",
        )
    accepted = signing.verifying_keys(envelope, keys)
    signer = statement.get("predicate", {}).get("signer")
    issuer_id = signer.get("keyid") if isinstance(signer, dict) else None
    issuer = next((key for key in accepted if key.keyid == issuer_id), None)
    if issuer is None:
        if not accepted and len(keys) == 1:
            signing.verify(envelope, keys[0], str(envelope_path))  # the usual message
        raise VerificationFailed(
            f"{envelope_path}: the issuing key {issuer_id} (named in the statement) is not "
            f"among the trusted keys that signed ({len(accepted)} of {len(distinct)} verified)"
        )
    if len(accepted) < threshold:
        raise VerificationFailed(
            f"{envelope_path}: {len(accepted)} of the trusted keys signed, {threshold} required "
            f"(signed by {', '.join(envelope.signatures)})"
        )
    return issuer, [key.keyid for key in accepted if key.keyid != issuer.keyid]


def verify_envelope(
    envelope_bytes: bytes, envelope_path: Path, pubkeys: Sequence[Path] = (), threshold: int = 1
) -> VerifyResult:
    """The checks that need the envelope's bytes alone: its canonical form, the signatures
    (against `pubkeys`, at least `threshold` of them, the issuer among them; without any, the
    key the statement embeds, integrity only), the canonical statement and its signer block.
    `subjects` counts the statement's subjects; their files are not looked at here."""
    try:
        data = json.loads(envelope_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise VerificationFailed(f"{envelope_path}: not readable JSON: {error}") from None
    if not isinstance(data, dict):
        raise VerificationFailed(f"{envelope_path}: not a DSSE envelope")
    envelope = signing.open_envelope(data, str(envelope_path))
    if envelope_bytes != signing.envelope_file_bytes(envelope.to_dict()):
        raise VerificationFailed(
            f"{envelope_path}: not the bytes the harness writes for this envelope (another "
            "spelling of its JSON or base64; the ledger and the index know a report by them)"
        )
    statement = signing.statement_of(envelope, str(envelope_path))
    warnings: list[str] = []
    cosigners: list[str] = []
    if pubkeys:
        key, cosigners = _trusted_signers(envelope, statement, pubkeys, threshold, envelope_path)
        source = "given (trusted)"
    else:
        if threshold != 1:
            raise BadInput("command line", "--threshold", "needs the trusted keys: pass --pubkey")
        try:
            pem = statement["predicate"]["signer"]["public_key"]
            key = signing.public_from_pem(pem)
        except (KeyError, TypeError, ValueError):
            raise VerificationFailed(
                f"{envelope_path}: no embedded public key; pass --pubkey"
            ) from None
        source = "embedded (self-asserted)"
        signing.verify(envelope, key, str(envelope_path))
    self_generated = _check_signer(statement, key, envelope_path)
    if not pubkeys:
        warnings.append(
            "UNVERIFIED SIGNER: checked with the key the report embeds (self-asserted); this "
            "proves integrity, not who signed. The report is official only when it verifies "
            "with --pubkey and the agency's public key"
        )
    if self_generated:
        warnings.append("UNOFFICIAL: the statement says a self-generated dry-run key signed it")
    subjects = statement.get("subject")
    return VerifyResult(
        key.keyid,
        source,
        bool(pubkeys),
        self_generated,
        len(subjects) if isinstance(subjects, list) else 0,
        warnings,
        cosigners,
        len(envelope.signatures),
        str(statement["predicate"].get("signer", {}).get("keyid", "")),
        hashlib.sha256(envelope_bytes).hexdigest(),
        statement,
        envelope_bytes,
    )


def verify(
    path: Path, pubkeys: Sequence[Path] = (), threshold: int = 1, rendered: bool = True
) -> VerifyResult:
    """`pubkeys`: the keys the verifier trusts (the agency's, a witness lab's); at least
    `threshold` of them must have signed, the issuing key among them. Without any, the key the
    statement embeds checks integrity only. `rendered=False` leaves report.md and report.html
    unchecked (`harness render` is about to rewrite them)."""
    run_dir, envelope_path = locate(path)
    refuse_links(run_dir)
    try:
        envelope_bytes = envelope_path.read_bytes()
    except OSError as error:
        raise VerificationFailed(f"{envelope_path}: not readable: {error}") from None
    result = verify_envelope(envelope_bytes, envelope_path, pubkeys, threshold)
    statement = result.statement
    refuse_unsigned_files(run_dir, envelope_path)
    warnings = list(result.warnings)
    signed_payload = signing.payload_bytes(statement)

    statement_file = run_dir / STATEMENT_FILE
    if statement_file.is_file():
        if statement_file.read_bytes() != signed_payload:
            raise VerificationFailed(
                f"{statement_file}: differs from the signed payload (it must be its exact bytes)"
            )
    else:
        warnings.append(f"{STATEMENT_FILE} is absent; checked the signed payload only")

    subjects = check_subjects(run_dir / "evidence", statement, envelope_path)
    if rendered:  # after the evidence: figures are drawn from digest-checked files
        warnings += RENDERED(run_dir, statement)
    return replace(result, subjects=subjects, warnings=warnings)


def check_subjects(evidence: Path, statement: dict[str, Any], envelope_path: Path) -> int:
    """Every subject of the statement is a file under `evidence` with its signed sha256, and
    `evidence` holds no other file; returns the number of subjects. `evidence` is the run
    directory's own folder, or a private copy of it (audit scores the copy it checked)."""
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise VerificationFailed(f"{envelope_path}: the statement lists no subjects")
    listed: set[str] = set()
    for subject in subjects:
        if not isinstance(subject, dict):
            raise VerificationFailed(f"{envelope_path}: a subject is not an object")
        name = subject.get("name", "")
        digest = (
            subject.get("digest", {}).get("sha256")
            if isinstance(subject.get("digest"), dict)
            else None
        )
        target = _subject_path(evidence.parent, name)
        if name in listed:
            raise VerificationFailed(f"{name}: listed twice in the statement")
        if not target.is_file():
            raise VerificationFailed(f"{name}: listed in the statement but missing")
        if sha256_file(target) != digest:
            raise VerificationFailed(f"{name}: sha256 does not match the signed statement")
        listed.add(name)
    if evidence.is_dir():
        for extra in sorted(evidence.rglob("*")):
            name = extra.relative_to(evidence.parent).as_posix()
            if not extra.is_dir() and name not in listed:
                raise VerificationFailed(f"{name}: in evidence/ but not in the signed statement")
    return len(subjects)


RUN_FILES = {"evidence", ENVELOPE_FILE, STATEMENT_FILE, "report.md", "report.html"}


def refuse_unsigned_files(run_dir: Path, envelope_path: Path) -> None:
    """A run directory holds its evidence, the envelope, statement.json and the two rendered
    reports, nothing else: any other file beside them (a forged REPORT.md, a report.pdf) would
    sit in a run that verifies. An envelope given by path is checked the same way."""
    if envelope_path.parent != run_dir or envelope_path.name != ENVELOPE_FILE:
        return  # an envelope file given alone: no run directory around it is vouched for
    for entry in sorted(run_dir.iterdir()):
        if entry.name not in RUN_FILES:
            raise VerificationFailed(
                f"{entry}: not part of a run directory (only evidence/, {ENVELOPE_FILE}, "
                f"{STATEMENT_FILE}, report.md and report.html are); remove it"
            )
