"""Co-signatures: a witness lab re-checks a report and adds its signature to the envelope.

The witness signs the same payload (the DSSE PAE of the same statement), so the statement
still names the issuer; `harness verify --threshold 2 --pubkey agency.pub --pubkey lab.pub`
then asks for both. The witness audits first: it co-signs only a report whose every figure
it recomputed from the evidence.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import jsonio, signing
from harness.audit import audit
from harness.errors import BadInput, VerificationFailed
from harness.verify import ENVELOPE_FILE, locate


@dataclass(frozen=True)
class Cosigned:
    envelope: Path
    keyid: str
    signatures: int


def cosign(path: Path, key: signing.SigningKey) -> Cosigned:
    """Audit the run at `path` (verify, then recompute everything from evidence/); when it is
    identical, add `key`'s signature to its envelope (replaced atomically)."""
    run_dir, envelope_path = locate(path)
    if envelope_path != run_dir / ENVELOPE_FILE:
        raise BadInput(
            path, None, f"co-sign a run directory (its {ENVELOPE_FILE}), not another envelope"
        )
    result = audit(run_dir)
    if result.differences:
        raise VerificationFailed(
            f"{run_dir}: the audit found {len(result.differences)} differences (first: "
            f"{result.differences[0]}); not co-signed"
        )
    raw = envelope_path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != result.verified.envelope_sha256:
        raise VerificationFailed(f"{envelope_path}: changed during the audit; not co-signed")
    signed = signing.cosign(json.loads(raw), key, str(envelope_path))
    fd, tmp = tempfile.mkstemp(dir=envelope_path.parent, prefix=".cosign-", suffix=".json")
    os.close(fd)
    try:
        jsonio.write(Path(tmp), signed)
        os.replace(tmp, envelope_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return Cosigned(envelope_path, key.keyid, len(signed["signatures"]))
