"""GGUF headers: first walked here field by field (magic "GGUF", version, tensor and
key-value counts, every key-value, every tensor info, the alignment padding), so that a
truncated or malformed header is refused naming the byte offset of the first fault; then
read with the `gguf` package's GGUFReader (which memory-maps the file: no tensor data is
read), and the two readings compared.

GGUF shapes are in GGML order (ne[0], the fastest-varying dimension, first): the records
hold them reversed, in numpy order. A block-quantised type (Q4_0, Q8_0, Q4_K, ...) stores
blocks of values with their scales inside: its dims are logical elements, so the count is
the product of the dims, never the bytes. Hashed: the bytes from 0 to the start of the
tensor data (the whole header), not the data."""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import BadInput
from harness.probes.checkpoints.records import (
    CheckpointRead,
    Claim,
    FileRecord,
    TensorRecord,
    at,
    file_size,
    sha256_hex,
)

MAGIC = b"GGUF"
SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
STRING, ARRAY = 8, 9
MAX_DIMS = 8
KEEP_STRING = 200  # string metadata kept in the evidence up to this many characters


@dataclass(frozen=True)
class TensorInfo:
    name: str
    ggml_dims: tuple[int, ...]
    type_id: int
    offset: int  # from the start of the data section
    at: int  # byte offset of its info record


@dataclass(frozen=True)
class Walked:
    version: int
    data_start: int
    alignment: int
    kv: dict[str, Any]  # scalar key-values (arrays summarised by length)
    tensors: list[TensorInfo]


class _Cursor:
    def __init__(self, path: Path, buf: mmap.mmap | bytes, order: str) -> None:
        self.path, self.buf, self.order, self.pos = path, buf, order, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.buf):
            raise BadInput(
                self.path,
                at(self.pos),
                f"truncated header: {what} needs {n} bytes, the file ends at {len(self.buf)}",
            )
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def scalar(self, code: str, what: str) -> Any:
        return struct.unpack(self.order + code, self.take(struct.calcsize(code), what))[0]

    def string(self, what: str) -> str:
        start = self.pos
        length = self.scalar("Q", f"{what} length")
        if length > len(self.buf):
            raise BadInput(self.path, at(start), f"{what}: length {length} exceeds the file")
        raw = self.take(length, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(self.path, at(start + 8), f"{what} is not UTF-8") from None

    def value(self, type_id: int, what: str) -> Any:
        if type_id in SCALARS:
            return self.scalar(SCALARS[type_id], what)
        if type_id == STRING:
            return self.string(what)
        if type_id == ARRAY:
            start = self.pos
            item_type = self.scalar("I", f"{what} item type")
            count = self.scalar("Q", f"{what} item count")
            if item_type in SCALARS:
                size = struct.calcsize(SCALARS[item_type])
                if count * size > len(self.buf):
                    raise BadInput(self.path, at(start), f"{what}: {count} items exceed the file")
                self.take(count * size, f"{what} items")
            elif item_type in (STRING, ARRAY):
                if count > len(self.buf):
                    raise BadInput(self.path, at(start), f"{what}: {count} items exceed the file")
                for k in range(count):
                    self.value(item_type, f"{what}[{k}]")
            else:
                raise BadInput(self.path, at(start), f"{what}: unknown array item type {item_type}")
            return {"array_of": item_type, "length": count}
        raise BadInput(self.path, at(self.pos - 4), f"{what}: unknown value type {type_id}")


def walk(path: Path, buf: mmap.mmap | bytes) -> Walked:
    """The header's structure, or BadInput naming the byte offset of the first fault."""
    if len(buf) < 4:
        raise BadInput(
            path,
            at(len(buf)),
            f"truncated: the 4-byte magic needs 4 bytes, the file has {len(buf)}",
        )
    if bytes(buf[:4]) != MAGIC:
        raise BadInput(
            path, at(0), f"not a GGUF file: magic {bytes(buf[:4])!r}, expected {MAGIC!r}"
        )
    cursor = _Cursor(path, buf, "<")
    cursor.pos = 4
    version = cursor.scalar("I", "version")
    if version & 0xFFFF == 0:  # written for the other byte order
        cursor.order = ">"
        version = struct.unpack(">I", bytes(buf[4:8]))[0]
    if version not in (2, 3):
        raise BadInput(path, at(4), f"GGUF version {version}: only versions 2 and 3 are read")
    n_tensors = cursor.scalar("Q", "tensor count")
    n_kv = cursor.scalar("Q", "key-value count")
    if n_tensors > len(buf) or n_kv > len(buf):
        raise BadInput(
            path, at(8), f"counts ({n_tensors} tensors, {n_kv} key-values) exceed the file"
        )
    kv: dict[str, Any] = {}
    for k in range(n_kv):
        key = cursor.string(f"key {k}")
        type_id = cursor.scalar("I", f"{key}: value type")
        kv[key] = cursor.value(type_id, key)
    tensors = []
    for k in range(n_tensors):
        start = cursor.pos
        name = cursor.string(f"tensor {k} name")
        n_dims = cursor.scalar("I", f"{name}: dimension count")
        if n_dims > MAX_DIMS:
            raise BadInput(path, at(cursor.pos - 4), f"tensor {name}: {n_dims} dimensions")
        dims = tuple(cursor.scalar("Q", f"{name}: dimension") for _ in range(n_dims))
        type_id = cursor.scalar("I", f"{name}: type")
        offset = cursor.scalar("Q", f"{name}: data offset")
        tensors.append(TensorInfo(name, dims, type_id, offset, start))
    alignment = kv.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise BadInput(path, "general.alignment", f"not a power of two: {alignment!r}")
    data_start = -(-cursor.pos // alignment) * alignment
    return Walked(version, data_start, alignment, kv, tensors)


def read_files(paths: list[Path], labels: list[str]) -> CheckpointRead:
    """One GGUF file, or the shards of a split one (each with its own header)."""
    out = CheckpointRead(format="gguf")
    for path, label in zip(paths, labels, strict=True):
        _read_into(out, path, label)
    return out


def _read_into(out: CheckpointRead, path: Path, label: str) -> None:
    import gguf

    size = file_size(path)
    with path.open("rb") as handle:
        buf: mmap.mmap | bytes = (
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        )
    try:
        walked = walk(path, buf)
        header = bytes(buf[: walked.data_start])
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
    for t in walked.tensors:
        if t.type_id not in gguf.GGML_QUANT_SIZES:
            raise BadInput(path, at(t.at), f"tensor {t.name}: unknown GGML type {t.type_id}")
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(t.type_id)]
        n = _prod(t.ggml_dims)
        if t.ggml_dims and t.ggml_dims[0] % block:
            raise BadInput(
                path,
                at(t.at),
                f"tensor {t.name}: ne[0]={t.ggml_dims[0]} is not a "
                f"multiple of the type's block of {block}",
            )
        end = walked.data_start + t.offset + n // block * type_size
        if end > size:
            raise BadInput(
                path,
                at(end),
                f"tensor {t.name}: its data ends at byte offset {end}, beyond the file's end "
                f"at {size} (truncated data)",
            )
    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, IndexError, OSError) as error:
        raise BadInput(path, None, f"gguf.GGUFReader refused it: {error}") from None
    _compare(path, walked, reader)
    out.files.append(
        FileRecord(
            path=label,
            format="gguf",
            size=size,
            header_bytes=len(header),
            header_sha256=sha256_hex(header),
            header_what=f"GGUF v{walked.version} header: magic, key-values, tensor infos and "
            "the alignment padding, up to the tensor data (not read)",
        )
    )
    for rt in reader.tensors:
        type_id = int(rt.tensor_type)
        out.tensors.append(
            TensorRecord(
                name=str(rt.name),
                file=label,
                dtype=gguf.GGMLQuantizationType(type_id).name,
                shape=tuple(int(d) for d in reversed(list(rt.shape))),  # numpy order
                storage=label,
                start=int(rt.data_offset),
                end=int(rt.data_offset) + int(rt.n_bytes),
            )
        )
    scalars = {
        k: (v[:KEEP_STRING] if isinstance(v, str) else v)
        for k, v in walked.kv.items()
        if not isinstance(v, dict) and not k.startswith("tokenizer.")
    }
    out.metadata[label] = scalars
    label_value = scalars.get("general.size_label")
    if isinstance(label_value, str):
        parsed = parse_size_label(label_value)
        if parsed is not None:
            out.claims.append(Claim(label, "general.size_label", "label", parsed, label_value))


def _compare(path: Path, walked: Walked, reader: Any) -> None:
    """GGUFReader's reading against the walk: the same tensors, dims and data start."""
    mine = [(t.name, t.ggml_dims) for t in walked.tensors]
    theirs = [(str(t.name), tuple(int(d) for d in t.shape)) for t in reader.tensors]
    if mine != theirs or int(reader.data_offset) != walked.data_start:
        raise BadInput(
            path,
            None,
            "gguf.GGUFReader and the header walk disagree on the tensors or the data start",
        )


def parse_size_label(label: str) -> float | None:
    """ "70B" -> 7e10, "8x7B" -> 5.6e10 (a rounded label: experts x size), "1.5T" -> 1.5e12."""
    import re

    match = re.fullmatch(r"(?:(\d+)x)?(\d+(?:\.\d+)?)([KMBT])", label.strip())
    if match is None:
        return None
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[match.group(3)]
    return float(match.group(1) or 1) * float(match.group(2)) * scale


def _prod(dims: tuple[int, ...]) -> int:
    out = 1
    for d in dims:
        out *= d
    return out
