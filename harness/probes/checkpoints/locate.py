"""Which files a checkpoint path means, and which reader reads them.

A file is read by its name (`*.safetensors`, `*.safetensors.index.json`,
`*.bin.index.json`, `*.gguf`, `*.onnx`, `*.pt` / `*.pth` / `*.bin` / `*.ckpt`), else by its
first bytes (GGUF magic; a zip archive: torch). A folder is read as one checkpoint, the
first kind present winning: a safetensors index (only the shards it names), the
`*.safetensors` files, a torch index, the torch files, the GGUF file (or the shards of a
split one, `*-00001-of-00003.gguf`), the ONNX file; the files of the other kinds are listed
as ignored (a repository that ships both safetensors and .bin copies is counted once).
Beside the checkpoint, config.json and quantize_config.json are read (copied to the
evidence) and a README.md model card's front matter is read for a stated parameter count
(a claim, compared, never used)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.errors import BadInput
from harness.probes.checkpoints.formats import (
    gguf_reader,
    onnx_reader,
    safetensors_reader,
    torch_reader,
)
from harness.probes.checkpoints.records import CheckpointRead, Claim, at

CONFIG_FILES = ("config.json", "quantize_config.json")
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
CARD_KEYS = ("parameters", "num_parameters", "model_parameters", "parameter_count", "params")
_GGUF_SPLIT = re.compile(r"-\d{5}-of-\d{5}\.gguf$")


@dataclass(frozen=True)
class Located:
    root: Path  # the checkpoint's folder
    kind: str  # safetensors-index | safetensors | torch-index | torch | gguf | onnx
    files: list[Path]
    ignored: list[str] = field(default_factory=list)
    configs: dict[str, bytes] = field(default_factory=dict)
    card_claims: list[Claim] = field(default_factory=list)


def locate(path: Path) -> Located:
    if not path.exists():
        raise BadInput(path, None, "checkpoint not found")
    if path.is_dir():
        root = path
        kind, files, ignored = _in_folder(path)
    else:
        root = path.parent
        kind, files, ignored = _kind_of_file(path), [path], []
    return Located(root, kind, files, ignored, _configs(root), _card(root))


def read(located: Located) -> CheckpointRead:
    files, labels = located.files, [f.name for f in located.files]
    if located.kind == "safetensors-index":
        out = safetensors_reader.read_index(files[0])
    elif located.kind == "safetensors":
        out = CheckpointRead(format="safetensors")
        for f, label in zip(files, labels, strict=True):
            part = safetensors_reader.read_file(f, label)
            out.files += part.files
            out.tensors += part.tensors
            out.claims += part.claims
            out.metadata.update(part.metadata)
    elif located.kind == "torch-index":
        out = torch_reader.read_index(files[0])
    elif located.kind == "torch":
        out = torch_reader.read_files(files, labels)
    elif located.kind == "gguf":
        out = gguf_reader.read_files(files, labels)
    else:
        out = onnx_reader.read_file(files[0], labels[0])
    out.claims += located.card_claims
    return out


def _kind_of_file(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".safetensors.index.json"):
        return "safetensors-index"
    if name.endswith(".bin.index.json"):
        return "torch-index"
    for suffix, kind in ((".safetensors", "safetensors"), (".gguf", "gguf"), (".onnx", "onnx")):
        if name.endswith(suffix):
            return kind
    if name.endswith(TORCH_SUFFIXES):
        return "torch"
    with path.open("rb") as handle:
        head = handle.read(4)
    if head == gguf_reader.MAGIC:
        return "gguf"
    if head == b"PK\x03\x04":
        return "torch"
    raise BadInput(
        path,
        at(0),
        "not a checkpoint this probe reads (by its name or first bytes: "
        "safetensors, a shard index, GGUF, ONNX, or a torch.save archive)",
    )


def _in_folder(folder: Path) -> tuple[str, list[Path], list[str]]:
    entries = sorted(p for p in folder.iterdir() if p.is_file())
    by_kind: dict[str, list[Path]] = {}
    for p in entries:
        try:
            kind = _kind_of_file(p) if _looks_like_checkpoint(p) else ""
        except BadInput:
            kind = ""
        if kind:
            by_kind.setdefault(kind, []).append(p)
    for kind in ("safetensors-index", "safetensors", "torch-index", "torch", "gguf", "onnx"):
        files = by_kind.get(kind)
        if not files:
            continue
        files = _one_set(folder, kind, files)
        chosen = set(files)
        if kind.endswith("-index"):  # the shards are read through the index
            chosen |= _shards(files[0])
        ignored = sorted(p.name for ps in by_kind.values() for p in ps if p not in chosen)
        return kind, files, ignored
    raise BadInput(
        folder,
        None,
        "no checkpoint files in this folder (looked for "
        "*.safetensors, *.safetensors.index.json, *.gguf, *.onnx, *.pt, *.bin)",
    )


def _looks_like_checkpoint(p: Path) -> bool:
    name = p.name.lower()
    return name.endswith((".safetensors", ".index.json", ".gguf", ".onnx", *TORCH_SUFFIXES))


def _one_set(folder: Path, kind: str, files: list[Path]) -> list[Path]:
    if len(files) == 1 or kind in ("safetensors", "torch"):
        return files
    if kind == "gguf" and all(_GGUF_SPLIT.search(p.name) for p in files):
        stems = {_GGUF_SPLIT.sub("", p.name) for p in files}
        if len(stems) == 1:
            return files
    names = ", ".join(p.name for p in files)
    raise BadInput(
        folder,
        None,
        f"{len(files)} {kind} files ({names}): they may be copies or "
        "parts of different models; name one as --dataset checkpoint=FILE",
    )


def _shards(index: Path) -> set[Path]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
    except (ValueError, AttributeError):
        return set()
    if not isinstance(weight_map, dict):
        return set()
    return {index.parent / s for s in {str(v) for v in weight_map.values()}}


def _configs(root: Path) -> dict[str, bytes]:
    out = {}
    for name in CONFIG_FILES:
        path = root / name
        if path.is_file():
            data = path.read_bytes()
            parse_config(path, data)
            out[name] = data
    return out


def parse_config(path: Path | str, data: bytes) -> object:
    """A config file's JSON; BadInput naming the byte offset of the fault otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadInput(path, at(error.start), "not UTF-8") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        offset = len(text[: error.pos].encode("utf-8"))
        raise BadInput(path, at(offset), f"not JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise BadInput(path, at(0), "expected a JSON object")
    return value


def _card(root: Path) -> list[Claim]:
    path = root / "README.md"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    match = re.match(r"---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if match is None:
        return []
    try:
        front = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return []
    if not isinstance(front, dict):
        return []
    claims = []
    for key in CARD_KEYS:
        value = front.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            claims.append(Claim("README.md", key, "parameters", float(value), str(value)))
        elif isinstance(value, str):
            parsed = gguf_reader.parse_size_label(value)
            if parsed is not None:
                claims.append(Claim("README.md", key, "label", parsed, value))
    return claims
