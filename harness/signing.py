"""Ed25519 keys and DSSE envelopes (securesystemslib) around an in-toto Statement."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from harness import jsonio
from harness.errors import BadInput, VerificationFailed
from harness.schema import PREDICATE_TYPE

PAYLOAD_TYPE = "application/vnd.in-toto+json"
DRY_RUN_KEY_NAME = "dry-run"


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    path: Path
    self_generated: bool

    @property
    def public(self) -> SSlibKey:
        return SSlibKey.from_crypto(self.private.public_key())

    @property
    def keyid(self) -> str:
        return self.public.keyid

    def public_pem(self) -> str:
        return public_pem(self.private.public_key())


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def write_keypair(prefix: Path) -> tuple[Path, Path]:
    """PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (SubjectPublicKeyInfo PEM)."""
    private = Ed25519PrivateKey.generate()
    key_path = prefix.with_name(prefix.name + ".key")
    pub_path = prefix.with_name(prefix.name + ".pub")
    for path in (key_path, pub_path):
        if path.exists():
            raise BadInput(path, None, "exists already; refusing to overwrite a key")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    pub_path.write_text(public_pem(private.public_key()), encoding="utf-8")
    return key_path, pub_path


def load_private(path: Path, self_generated: bool = False) -> SigningKey:
    if not path.is_file():
        raise BadInput(path, None, "key file not found")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        raise BadInput(path, None, f"not an unencrypted PEM private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput(path, None, f"expected an Ed25519 key, got {type(key).__name__}")
    return SigningKey(key, path, self_generated)


def load_public(path: Path) -> SSlibKey:
    if not path.is_file():
        raise BadInput(path, None, "public key file not found")
    return _public_of(path, path.read_bytes())


@functools.lru_cache(maxsize=64)
def _public_of(path: Path, pem: bytes) -> SSlibKey:
    """The key in `pem` (cached by its bytes: ranking 10,000 reports reads one key file)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as error:
        raise BadInput(path, None, f"not a PEM public key: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BadInput(path, None, f"expected an Ed25519 key, got {type(key).__name__}")
    return SSlibKey.from_crypto(key)


def public_from_pem(pem: str) -> SSlibKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise VerificationFailed("the embedded public key is not an Ed25519 key")
    return SSlibKey.from_crypto(key)


def dry_run_key() -> SigningKey:
    """The self-generated key for unofficial runs, created once in the user's config dir."""
    prefix = Path(platformdirs.user_config_dir("harness")) / DRY_RUN_KEY_NAME
    key_path = prefix.with_name(prefix.name + ".key")
    if not key_path.exists():
        write_keypair(prefix)
    return load_private(key_path, self_generated=True)


def payload_bytes(statement: dict[str, Any]) -> bytes:
    """The exact bytes that are signed (and written as statement.json): sorted keys, no
    white space, no NaN."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sign(statement: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    payload = payload_bytes(statement)
    envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(CryptoSigner(key.private))
    return envelope.to_dict()


STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


def envelope_file_bytes(envelope: dict[str, Any]) -> bytes:
    """The bytes of report.dsse.json as the harness writes it (jsonio: sorted keys, one
    space indent). `verify` accepts no other spelling: the ledger and the index know a report
    by the sha256 of these bytes, so one envelope must have one file."""
    return jsonio.dumps(envelope).encode("utf-8")


ENVELOPE_FIELDS = {"payload", "payloadType", "signatures"}
SIGNATURE_FIELDS = {"keyid", "sig"}


def open_envelope(data: dict[str, Any], source: str) -> Envelope:
    if set(data) != ENVELOPE_FIELDS:
        raise VerificationFailed(
            f"{source}: a DSSE envelope has exactly the fields {sorted(ENVELOPE_FIELDS)}, "
            f"this one {sorted(data)}"
        )
    signatures = data.get("signatures")
    if not isinstance(signatures, list) or any(
        not isinstance(s, dict) or set(s) != SIGNATURE_FIELDS for s in signatures
    ):
        raise VerificationFailed(
            f"{source}: each signature has exactly the fields {sorted(SIGNATURE_FIELDS)}"
        )
    try:
        envelope = Envelope.from_dict(data)
    except Exception as error:
        raise VerificationFailed(f"{source}: not a DSSE envelope: {error}") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise VerificationFailed(f"{source}: payloadType is {envelope.payload_type!r}")
    if not envelope.signatures:
        raise VerificationFailed(f"{source}: carries no signature")
    return envelope


def verify(envelope: Envelope, key: SSlibKey, source: str) -> None:
    try:
        envelope.verify([key], 1)
    except Exception:
        ids = ", ".join(envelope.signatures)
        raise VerificationFailed(
            f"{source}: signature does not verify with key {key.keyid} (signed by {ids})"
        ) from None


def verifying_keys(envelope: Envelope, keys: list[SSlibKey]) -> list[SSlibKey]:
    """The given keys (each once, by key id) whose signature over the envelope verifies."""
    unique = {key.keyid: key for key in keys}
    accepted: list[SSlibKey] = []
    for key in unique.values():
        try:
            envelope.verify([key], 1)
        except Exception:
            continue
        accepted.append(key)
    return accepted


def cosign(data: dict[str, Any], key: SigningKey, source: str) -> dict[str, Any]:
    """The envelope with one more signature over the same payload (a witness lab's)."""
    envelope = open_envelope(data, source)
    if key.keyid in envelope.signatures:
        raise BadInput(key.path, None, f"key {key.keyid} has signed {source} already")
    envelope.sign(CryptoSigner(key.private))
    return envelope.to_dict()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def statement_of(envelope: Envelope, source: str) -> dict[str, Any]:
    """The signed in-toto Statement. Its payload must be exactly the canonical bytes the
    harness signs (payload_bytes): no NaN or infinities, no duplicated keys that two parsers
    could read differently, no other spelling of the same numbers."""
    try:
        statement = json.loads(envelope.payload, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise VerificationFailed(f"{source}: payload is not JSON: {error}") from None
    if not isinstance(statement, dict):
        raise VerificationFailed(f"{source}: payload is not an in-toto Statement")
    try:
        canonical = payload_bytes(statement) == envelope.payload
    except (ValueError, RecursionError):  # an overflowing number reads as infinity
        canonical = False
    if not canonical:
        raise VerificationFailed(
            f"{source}: the payload is not in the harness's canonical form (sorted keys, no "
            "white space, finite numbers, each key once)"
        )
    if statement.get("_type") != STATEMENT_TYPE:
        raise VerificationFailed(
            f"{source}: _type is {statement.get('_type')!r}, not {STATEMENT_TYPE}"
        )
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise VerificationFailed(
            f"{source}: predicateType is {statement.get('predicateType')!r}, not {PREDICATE_TYPE}"
        )
    extra = sorted(set(statement) - {"_type", "subject", "predicateType", "predicate"})
    if extra:
        raise VerificationFailed(f"{source}: the statement has unknown fields {extra}")
    if not isinstance(statement.get("predicate"), dict):
        raise VerificationFailed(f"{source}: the statement's predicate is not an object")
    return statement
