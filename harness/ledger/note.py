"""C2SP signed notes (https://c2sp.org/signed-note) holding tlog checkpoints
(https://c2sp.org/tlog-checkpoint), signed with Ed25519.

A checkpoint's text is three lines: the log's origin, the tree size in decimal, the root
hash in standard base64. The signed note is that text, an empty line, and one signature line
per signer: an em dash, a space, the key name, a space, and base64 of the 4-byte key hash
followed by the 64-byte Ed25519 signature of the text. The key hash is the first 4 bytes of
SHA-256(key name || 0x0A || 0x01 || the 32-byte public key)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DASH = "\u2014"
ED25519 = b"\x01"


def key_hash(name: str, public: Ed25519PublicKey) -> bytes:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + raw).digest()[:4]


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    if not origin or "\n" in origin:
        raise ValueError("the origin must be one non-empty line")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_note(text: str, name: str, key: Ed25519PrivateKey) -> str:
    """The signed note of `text` (which ends with a newline) by key `name`."""
    if not text.endswith("\n") or " " in name or "+" in name or not name:
        raise ValueError("a note's text ends with a newline; a key name has no space or '+'")
    signature = key.sign(text.encode())
    blob = base64.b64encode(key_hash(name, key.public_key()) + signature).decode()
    return f"{text}\n{DASH} {name} {blob}\n"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    text: str
    signers: list[str]  # names of the keys whose signatures verified


def open_note(note: str, keys: dict[str, Ed25519PublicKey]) -> Checkpoint:
    """The checkpoint a signed note holds, with the signers among `keys` (name -> public key)
    whose signatures verify; ValueError for a malformed note or checkpoint."""
    text, sep, signatures = note.partition("\n\n")
    if not sep:
        raise ValueError("not a signed note: no empty line before the signatures")
    text += "\n"
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise ValueError("not a checkpoint: origin, size and root hash lines expected")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise ValueError(f"checkpoint size {size_text!r} is not a decimal number")
    root = base64.b64decode(root_text, validate=True)
    signers: list[str] = []
    for line in signatures.split("\n"):
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            raise ValueError(f"malformed signature line {line!r}")
        name, blob = parts[1], base64.b64decode(parts[2], validate=True)
        public = keys.get(name)
        if public is None or len(blob) != 68 or blob[:4] != key_hash(name, public):
            continue  # a signer we do not know (a witness's): ignored
        try:
            public.verify(blob[4:], text.encode())
        except InvalidSignature:
            continue
        signers.append(name)
    return Checkpoint(origin, int(size_text), root, text, signers)
