"""safetensors headers, parsed here: an 8-byte little-endian header length N, then N bytes
of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`,
then the data, whose offsets count from byte 8 + N. Only the 8 + N header bytes are read
(and hashed); the data is checked against the file's size, never read.

A sharded checkpoint is a `*.safetensors.index.json` (`{"metadata": {"total_size": bytes},
"weight_map": {tensor: shard file}}`): every shard's header is read; the index's
weight_map is compared with what the headers hold and its total_size with the byte sizes
the headers give (a claim, never the count).

Unlike the safetensors library, a header whose tensors alias one byte range is read (and
the alias is counted once downstream); the library itself refuses such a file."""

from __future__ import annotations

import json
import math
import struct
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
    read_prefix,
    sha256_hex,
)

# bits per element of each safetensors dtype
DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}
MAX_HEADER = 100_000_000  # the safetensors library's own limit on the header's length
CLAIM_KEYS = (
    "total_parameters",
    "total_params",
    "num_parameters",
    "num_params",
    "n_params",
    "parameters",
    "parameter_count",
    "param_count",
)


def read_file(path: Path, label: str) -> CheckpointRead:
    """One .safetensors file; `label` is its name in the evidence."""
    out = CheckpointRead(format="safetensors")
    _read_into(out, path, label)
    return out


def read_index(index_path: Path) -> CheckpointRead:
    """A sharded checkpoint: its index and every shard it names (in the folder it lies in)."""
    raw = index_path.read_bytes()
    index = _json_object(index_path, raw, 0)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise BadInput(index_path, "weight_map", "missing or empty (expected {tensor: shard})")
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard or "/" in shard or "\\" in shard:
            raise BadInput(index_path, f"weight_map.{name}", f"not a shard file name: {shard!r}")
    out = CheckpointRead(format="safetensors")
    out.files.append(
        FileRecord(
            path=index_path.name,
            format="safetensors-index",
            size=len(raw),
            header_bytes=len(raw),
            header_sha256=sha256_hex(raw),
            header_what="the whole index file",
        )
    )
    folder = index_path.parent
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        if not (folder / shard).is_file():
            first = next(n for n, s in weight_map.items() if s == shard)
            raise BadInput(index_path, f"weight_map.{first}", f"shard {shard} not found")
        _read_into(out, folder / shard, shard)
    held = {(t.name, t.file) for t in out.tensors}
    names = {t.name for t in out.tensors}
    out.index = {
        "file": index_path.name,
        "shards": shards,
        "listed": len(weight_map),
        # the index names a tensor its shard does not hold
        "missing": sorted(n for n, s in weight_map.items() if (n, s) not in held),
        # a shard holds a tensor the index does not name (or names in another shard)
        "unlisted": sorted(
            f"{t.name} ({t.file})" for t in out.tensors if weight_map.get(t.name) != t.file
        ),
        "named_nowhere": sorted(n for n in weight_map if n not in names),
    }
    metadata = index.get("metadata")
    total = metadata.get("total_size") if isinstance(metadata, dict) else None
    if total is not None:
        if isinstance(total, bool) or not isinstance(total, int | float):
            raise BadInput(index_path, "metadata.total_size", f"not a number: {total!r}")
        out.claims.append(
            Claim(index_path.name, "metadata.total_size", "bytes", float(total), str(total))
        )
    return out


def _read_into(out: CheckpointRead, path: Path, label: str) -> None:
    size = file_size(path)
    head = read_prefix(path, 8)
    if len(head) < 8:
        raise BadInput(
            path,
            at(len(head)),
            f"truncated: the 8-byte header length needs 8 bytes, the file has {size}",
        )
    (length,) = struct.unpack("<Q", head)
    if length > MAX_HEADER:
        raise BadInput(path, at(0), f"header length {length} exceeds {MAX_HEADER} bytes")
    if 8 + length > size:
        raise BadInput(
            path,
            at(size),
            f"truncated header: {length} header bytes from offset 8 end at byte offset "
            f"{8 + length}, the file ends at {size}",
        )
    data = read_prefix(path, 8 + length)
    header = _json_object(path, data[8:], 8)
    out.files.append(
        FileRecord(
            path=label,
            format="safetensors",
            size=size,
            header_bytes=8 + length,
            header_sha256=sha256_hex(data),
            header_what="the 8-byte length and the JSON header (tensor data not read)",
        )
    )
    data_size = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            _metadata(out, path, label, entry, data)
            continue
        out.tensors.append(_tensor(path, label, name, entry, data, length, data_size))


def _tensor(
    path: Path, label: str, name: str, entry: Any, data: bytes, length: int, data_size: int
) -> TensorRecord:
    def bad(message: str) -> BadInput:  # the byte offset is looked up only on a fault
        return BadInput(path, at(_name_offset(data, name)), f"tensor {name}: {message}")

    if not isinstance(entry, dict):
        raise bad(f"expected an object, got {entry!r}")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str):
        raise bad("dtype missing or not a string")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise bad("shape must be a list of integers >= 0")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise bad("data_offsets must be [begin, end], 0 <= begin <= end")
    begin, end = offsets
    if end > data_size:
        raise BadInput(
            path,
            at(8 + length + end),
            f"tensor {name}: its data ends at byte offset {8 + length + end}, beyond the "
            f"file's end at {8 + length + data_size} (truncated data)",
        )
    bits = DTYPE_BITS.get(dtype)
    if bits is not None:
        expected = math.prod(shape) * bits
        if expected % 8 or expected // 8 != end - begin:
            raise bad(
                f"{dtype} {shape} needs {expected / 8:g} bytes, data_offsets give {end - begin}"
            )
    return TensorRecord(
        name=name,
        file=label,
        dtype=dtype,
        shape=tuple(shape),
        storage=label,
        start=8 + length + begin,
        end=8 + length + end,
    )


def _metadata(out: CheckpointRead, path: Path, label: str, entry: Any, data: bytes) -> None:
    if not isinstance(entry, dict):
        raise BadInput(
            path,
            at(_name_offset(data, "__metadata__")),
            "__metadata__ must be an object of strings",
        )
    scalars = {str(k): v for k, v in entry.items() if isinstance(v, str | int | float)}
    if scalars:
        out.metadata[label] = scalars
    for key in CLAIM_KEYS:
        value = scalars.get(key)
        number = _number(value)
        if number is not None:
            out.claims.append(Claim(label, f"__metadata__.{key}", "parameters", number, str(value)))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").replace("_", ""))
        except ValueError:
            return None
    return None


def _json_object(path: Path, raw: bytes, base: int) -> dict[str, Any]:
    """`raw` (read from byte offset `base` of `path`) as a JSON object; BadInput naming the
    byte offset of the first fault otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadInput(path, at(base + error.start), "header is not UTF-8") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        offset = base + len(text[: error.pos].encode("utf-8"))
        raise BadInput(path, at(offset), f"header is not JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise BadInput(path, at(base), "header must be a JSON object")
    return value


def _name_offset(data: bytes, name: str) -> int:
    """The byte offset of a key in the header (where a fault in its entry is reported)."""
    found = data.find(json.dumps(name).encode("utf-8"), 8)
    if found < 0:
        found = data.find(json.dumps(name, ensure_ascii=False).encode("utf-8"), 8)
    return max(found, 8)
