"""The evidence directory: raw, append-only files that every measurement is computed from."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from harness import jsonio


class EvidenceWriter:
    """Writes one task's (or the run's) raw evidence under a directory; never overwrites."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _target(self, name: str) -> Path:
        path = self.root / name
        if path.exists():
            raise FileExistsError(f"evidence is append-only: {path} exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_json(self, name: str, value: Any) -> Path:
        return jsonio.write(self._target(name), value)

    def write_text(self, name: str, text: str) -> Path:
        path = self._target(name)
        path.write_text(text, encoding="utf-8")
        return path

    def write_bytes(self, name: str, data: bytes) -> Path:
        path = self._target(name)
        path.write_bytes(data)
        return path

    def child(self, name: str) -> EvidenceWriter:
        return EvidenceWriter(self.root / name)


class EvidenceReader:
    """Read-only view of a directory of evidence."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    def read_json(self, name: str) -> Any:
        return jsonio.read(self.root / name)

    def read_text(self, name: str) -> str:
        return (self.root / name).read_text(encoding="utf-8")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_tree(evidence_dir: Path) -> list[tuple[str, str]]:
    """(name relative to the run directory, sha256) for every file, sorted by name."""
    run_dir = evidence_dir.parent
    files = sorted(p for p in evidence_dir.rglob("*") if p.is_file())
    return [(p.relative_to(run_dir).as_posix(), sha256_file(p)) for p in files]
