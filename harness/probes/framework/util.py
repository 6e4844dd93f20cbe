"""Small helpers shared by the D04 framework modules: the size unit and sha256 digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

MB = 1e6


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_path(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
