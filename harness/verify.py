"""`harness verify`: the signature over the statement, and every subject's digest."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import jsonio, report, signing
from harness.errors import BadInput, VerificationFailed
from harness.evidence import sha256_file

ENVELOPE_FILE = "report.dsse.json"
STATEMENT_FILE = "statement.json"
RENDERED: dict[str, Callable[[dict[str, Any]], str]] = {
    "report.md": report.render_markdown,
    "report.html": report.render_html,
}


@dataclass(frozen=True)
class VerifyResult:
    keyid: str
    key_source: str  # "given" or "embedded (self-asserted)"
    subjects: int
    warnings: list[str]


def locate(path: Path) -> tuple[Path, Path]:
    """(run directory, envelope path) for a run directory or an envelope file."""
    if path.is_dir():
        envelope = path / ENVELOPE_FILE
        if not envelope.is_file():
            raise BadInput(path, None, f"no {ENVELOPE_FILE} in this directory")
        return path, envelope
    if path.is_file():
        return path.parent, path
    raise BadInput(path, None, "no such run directory or envelope")


def verify(path: Path, pubkey: Path | None) -> VerifyResult:
    run_dir, envelope_path = locate(path)
    try:
        data = json.loads(envelope_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise VerificationFailed(f"{envelope_path}: not readable JSON: {error}") from None
    if not isinstance(data, dict):
        raise VerificationFailed(f"{envelope_path}: not a DSSE envelope")
    envelope = signing.open_envelope(data, str(envelope_path))
    statement = signing.statement_of(envelope, str(envelope_path))
    warnings: list[str] = []
    if pubkey is not None:
        key = signing.load_public(pubkey)
        source = "given"
    else:
        try:
            pem = statement["predicate"]["signer"]["public_key"]
            key = signing.public_from_pem(pem)
        except (KeyError, TypeError, ValueError):
            raise VerificationFailed(
                f"{envelope_path}: no embedded public key; pass --pubkey"
            ) from None
        source = "embedded (self-asserted)"
        warnings.append(
            "the key is the one the report embeds (self-asserted): it proves integrity, not "
            "who signed; pass --pubkey with the agency's public key to check the signer"
        )
    signing.verify(envelope, key, str(envelope_path))

    statement_file = run_dir / STATEMENT_FILE
    if statement_file.is_file():
        if statement_file.read_bytes() != jsonio.dumps(statement).encode("utf-8"):
            raise VerificationFailed(f"{statement_file}: differs from the signed statement")
    else:
        warnings.append(f"{STATEMENT_FILE} is absent; checked the signed payload only")
    for name, render in RENDERED.items():
        rendered = run_dir / name
        if not rendered.is_file():
            warnings.append(f"{name} is absent")
        elif rendered.read_bytes() != render(statement).encode("utf-8"):
            raise VerificationFailed(
                f"{rendered}: differs from the report the signed statement renders"
            )

    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise VerificationFailed(f"{envelope_path}: the statement lists no subjects")
    listed: set[str] = set()
    for subject in subjects:
        name = subject.get("name", "")
        digest = subject.get("digest", {}).get("sha256")
        target = (run_dir / name).resolve()
        if run_dir.resolve() not in target.parents:
            raise VerificationFailed(f"{name}: subject lies outside the run directory")
        if not target.is_file():
            raise VerificationFailed(f"{name}: listed in the statement but missing")
        if sha256_file(target) != digest:
            raise VerificationFailed(f"{name}: sha256 does not match the signed statement")
        listed.add(name)
    evidence = run_dir / "evidence"
    if evidence.is_dir():
        for extra in sorted(p for p in evidence.rglob("*") if p.is_file()):
            name = extra.relative_to(run_dir).as_posix()
            if name not in listed:
                raise VerificationFailed(f"{name}: in evidence/ but not in the signed statement")
    return VerifyResult(key.keyid, source, len(subjects), warnings)
