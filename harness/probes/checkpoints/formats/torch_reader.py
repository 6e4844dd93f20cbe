"""PyTorch checkpoints (the zip archive `torch.save` writes), opened lazily with
`torch.load(path, mmap=True, weights_only=True)`: storages are memory-mapped, never read;
only dtypes, shapes, strides and storage identities are taken. Tensors that share one
storage (a tied embedding and LM head saved from one module) are recorded over the same
byte range, so they are counted once downstream.

Which tensors: a state dict (name -> tensor), or the model's part of a training checkpoint
(the first of `state_dict`, `model_state_dict`, `model`, `module` that holds tensors);
optimizer and scheduler state are never counted. Hashed: the archive's pickle
(`<archive>/data.pkl`, which holds names, dtypes, shapes and storage keys), not the
storages. A sharded `pytorch_model.bin.index.json` works as the safetensors index does."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
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

MODEL_KEYS = ("state_dict", "model_state_dict", "model", "module")
NOT_MODEL = ("optimizer", "optimizer_state_dict", "optim", "scheduler", "lr_scheduler")


def read_files(paths: list[Path], labels: list[str]) -> CheckpointRead:
    out = CheckpointRead(format="torch")
    for path, label in zip(paths, labels, strict=True):
        _read_into(out, path, label)
    return out


def read_index(index_path: Path) -> CheckpointRead:
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInput(index_path, None, f"not a JSON index ({error})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise BadInput(index_path, "weight_map", "missing or empty (expected {tensor: shard})")
    shards = sorted({str(s) for s in weight_map.values()})
    for shard in shards:
        if "/" in shard or not (index_path.parent / shard).is_file():
            raise BadInput(index_path, "weight_map", f"shard {shard} not found")
    out = read_files([index_path.parent / s for s in shards], shards)
    raw = index_path.read_bytes()
    out.files.insert(
        0,
        FileRecord(
            index_path.name,
            "torch-index",
            len(raw),
            len(raw),
            sha256_hex(raw),
            "the whole index file",
        ),
    )
    held = {(t.name, t.file) for t in out.tensors}
    out.index = {
        "file": index_path.name,
        "shards": shards,
        "listed": len(weight_map),
        "missing": sorted(n for n, s in weight_map.items() if (n, s) not in held),
        "unlisted": sorted(
            f"{t.name} ({t.file})" for t in out.tensors if weight_map.get(t.name) != t.file
        ),
        "named_nowhere": sorted(n for n in weight_map if n not in {t.name for t in out.tensors}),
    }
    metadata = index.get("metadata")
    total = metadata.get("total_size") if isinstance(metadata, dict) else None
    if isinstance(total, int | float) and not isinstance(total, bool):
        out.claims.append(
            Claim(index_path.name, "metadata.total_size", "bytes", float(total), str(total))
        )
    return out


def _read_into(out: CheckpointRead, path: Path, label: str) -> None:
    import torch

    size = file_size(path)
    pickle_bytes = _pickle_bytes(path, size)
    try:
        loaded = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, ...
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BadInput(
            path, None, f"torch.load(mmap=True, weights_only=True) refused it: {first}"
        ) from None
    root, where = _model_part(loaded)
    out.files.append(
        FileRecord(
            path=label,
            format="torch",
            size=size,
            header_bytes=len(pickle_bytes),
            header_sha256=sha256_hex(pickle_bytes),
            header_what="the archive's data.pkl (names, dtypes, shapes, storage keys); "
            "storages memory-mapped, not read",
        )
    )
    if where:
        out.notes.append(f"{label}: tensors taken from {where}")
    storages: dict[int, str] = {}
    for name, tensor in _tensors(root, ""):
        storage = tensor.untyped_storage()
        key = storages.setdefault(storage.data_ptr(), f"{label}#storage{len(storages)}")
        item = tensor.element_size()
        span = 1 + sum((d - 1) * s for d, s in zip(tensor.shape, tensor.stride(), strict=True))
        start = tensor.storage_offset() * item
        out.tensors.append(
            TensorRecord(
                name=name,
                file=label,
                dtype=str(tensor.dtype).removeprefix("torch."),
                shape=tuple(int(d) for d in tensor.shape),
                storage=key,
                start=start,
                end=start + (span * item if tensor.numel() else 0),
            )
        )


def _pickle_bytes(path: Path, size: int) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not names:
                raise BadInput(path, None, "a zip archive without data.pkl: not torch.save's")
            return archive.read(names[0])
    except zipfile.BadZipFile:
        raise BadInput(
            path,
            at(max(size - 22, 0)),
            f"not the zip archive torch.save writes (no end-of-central-directory record in "
            f"the last bytes of {size}): truncated, or the legacy format mmap cannot open",
        ) from None


def _model_part(loaded: Any) -> tuple[Any, str]:
    """The subtree that holds the model's tensors, and how it was chosen ("" for the root)."""
    if isinstance(loaded, dict):
        for key in MODEL_KEYS:
            if isinstance(loaded.get(key), dict) and any(True for _ in _tensors(loaded[key], "")):
                return loaded[key], f"the {key!r} entry"
    return loaded, ""


def _tensors(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    import torch

    if isinstance(node, torch.Tensor):
        yield prefix, node
    elif isinstance(node, dict):
        for key, value in node.items():
            if prefix == "" and str(key) in NOT_MODEL:
                continue
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list | tuple):
        for k, value in enumerate(node):
            yield from _tensors(value, f"{prefix}.{k}" if prefix else str(k))
