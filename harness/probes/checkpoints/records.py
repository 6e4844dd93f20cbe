"""What a checkpoint reader returns: the files it opened (and the header bytes it hashed),
one record per stored tensor (name, dtype, shape in numpy order, where its bytes lie), and
the claims the files make about themselves. Plain values, written to the evidence as JSON."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import BadInput


@dataclass(frozen=True)
class FileRecord:
    path: str  # relative to the checkpoint's folder
    format: str
    size: int  # bytes on disk (st_size)
    header_bytes: int  # how many bytes were read and hashed (never the tensor data)
    header_sha256: str
    header_what: str  # what those bytes are

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "size": self.size,
            "header_bytes": self.header_bytes,
            "header_sha256": self.header_sha256,
            "header_what": self.header_what,
        }


@dataclass(frozen=True)
class TensorRecord:
    """One stored tensor. `storage` names the bytes it lies in (a file, a torch storage, an
    ONNX external-data file) and [start, end) the byte range there: two records over the same
    range are one tensor stored once. `role` carries what the format itself says about the
    tensor (an ONNX graph: a DequantizeLinear scale, a MatMulNBits packed weight and its
    logical K x N)."""

    name: str
    file: str
    dtype: str
    shape: tuple[int, ...]
    storage: str | None = None
    start: int | None = None
    end: int | None = None
    role: dict[str, Any] | None = None

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int | None:
        return None if self.start is None or self.end is None else self.end - self.start

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "file": self.file,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "storage": self.storage,
            "start": self.start,
            "end": self.end,
        }
        if self.role is not None:
            out["role"] = self.role
        return out

    @staticmethod
    def from_json(raw: dict[str, Any]) -> TensorRecord:
        return TensorRecord(
            name=str(raw["name"]),
            file=str(raw["file"]),
            dtype=str(raw["dtype"]),
            shape=tuple(int(d) for d in raw["shape"]),
            storage=raw.get("storage"),
            start=raw.get("start"),
            end=raw.get("end"),
            role=raw.get("role"),
        )


@dataclass(frozen=True)
class Claim:
    """A figure the checkpoint states about itself (never trusted: compared with the count).
    kind: "bytes" (an index's total_size), "parameters" (a stated count), "label" (a rounded
    size label such as "70B")."""

    source: str
    field: str
    kind: str
    value: float
    raw: str

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "field": self.field,
            "kind": self.kind,
            "value": self.value,
            "raw": self.raw,
        }


@dataclass
class CheckpointRead:
    format: str
    files: list[FileRecord] = field(default_factory=list)
    tensors: list[TensorRecord] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    # scalar metadata the files carry (safetensors __metadata__, GGUF key-values)
    metadata: dict[str, Any] = field(default_factory=dict)
    # what a shard index says against what the shards hold
    index: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def read_prefix(path: Path, length: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(length)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as error:
        raise BadInput(path, None, f"cannot be read ({error.strerror})") from None


def at(offset: int) -> str:
    """The field part of a BadInput that names a byte offset."""
    return f"byte offset {offset}"
