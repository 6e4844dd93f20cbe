"""Tensor classes, decided from the tensor records and the configuration alone (pure, so
`score` decides them again from the evidence):

- `weight`: a parameter; counted = its elements (the product of its dims). A GGUF
  block-quantised type (Q4_0, Q4_K, ...) and an ONNX INT4 tensor are weights too: their
  dims are logical elements.
- `packed`: low-bit values packed into an integer container (GPTQ/AWQ `qweight` int32 = 8
  int4 values; compressed-tensors `weight_packed`; MLX's U32 `weight` beside its `scales`;
  MXFP4 `*_blocks` in uint8; bitsandbytes 4-bit `weight` in uint8 beside its `absmax` or
  `quant_state`; ONNX MatMulNBits' B): counted = container bits x elements / the
  quantisation's bits (from the config; a per-module override first), or the node's
  K x N. Checked against its scales where the config gives a group size: scales x group
  must cover the logical count, less at most one group per scales row or column (a count
  off by a factor, wrong bits, is refused as invalid).
- `side`: a quantisation side tensor (scales, qzeros, g_idx, MLX biases beside scales,
  weight_scale(_inv), zero points, input/k/v scales, bitsandbytes absmax / quant_map /
  quant_state, ONNX (De)QuantizeLinear scales and zero points): listed, not counted.
- `shared`: the same stored bytes as a counted tensor (same file and byte range, one torch
  storage at one offset, one ONNX external range), or inside them (a view), or an LM head
  declared tied to the embedding (config.json tie_word_embeddings: true) with the
  embedding's shape: counted once, as the other.
- `buffer`: a module buffer, not a parameter (rotary inv_freq, BatchNorm running stats and
  num_batches_tracked, position_ids, a 1 x 1 x n x n attention mask): listed, not counted.
- `duplicate`: a name stored a second time (in another shard or file): counted once.

Experts: a counted tensor whose name has `experts.<i>.` (or `local_experts.<i>.`) is
expert i of the block named by what precedes it; one under `.experts.` without an index,
or a GGUF `*_exps` tensor, holds all the block's experts along its first (numpy) axis.
`shared_expert(s)` and GGUF `*_shexp` are always active, not routed experts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from harness.probes.checkpoints.config import ModelConfig
from harness.probes.checkpoints.records import TensorRecord

CLASSES = ("weight", "packed", "side", "shared", "buffer", "duplicate")
COUNTED = ("weight", "packed")

# integer containers: canonical dtype -> bits (safetensors, torch, ONNX and GGML spellings)
CONTAINER_BITS = {
    "I8": 8,
    "U8": 8,
    "I16": 16,
    "U16": 16,
    "I32": 32,
    "U32": 32,
    "I64": 64,
    "U64": 64,
}
_SPELLINGS = {
    "INT8": "I8",
    "UINT8": "U8",
    "INT16": "I16",
    "UINT16": "U16",
    "INT32": "I32",
    "UINT32": "U32",
    "INT64": "I64",
    "UINT64": "U64",
}
SIDE_LEAVES = {
    "scales",
    "qzeros",
    "g_idx",
    "weight_scale",
    "weight_scale_inv",
    "weight_zero_point",
    "weight_g_idx",
    "weight_shape",
    "weight_global_scale",
    "input_scale",
    "input_global_scale",
    "output_scale",
    "k_scale",
    "v_scale",
    "q_scale",
    "SCB",
    "weight_format",
    "absmax",
    "quant_map",
    "nested_absmax",
    "nested_quant_map",
}
BUFFER_LEAVES = {
    "inv_freq",
    "num_batches_tracked",
    "running_mean",
    "running_var",
    "position_ids",
    "masked_bias",
    "_float_tensor",
}
HEADS = ("lm_head.weight", "embed_out.weight")
EMBEDDINGS = (
    "embed_tokens.weight",
    "wte.weight",
    "word_embeddings.weight",
    "tok_embeddings.weight",
    "token_embd.weight",
)
_INDEXED = re.compile(r"\.(?:local_experts|experts)\.(\d+)\.")
_FUSED = re.compile(r"\.experts\.(?!\d)")
_GGUF_FUSED = re.compile(r"^(blk\.\d+)\.ffn_\w+_exps\.")


def canonical_dtype(dtype: str) -> str:
    upper = dtype.upper()
    return _SPELLINGS.get(upper, upper)


@dataclass(frozen=True)
class Expert:
    block: str  # the MoE block (layer) the expert belongs to
    index: int | None  # the expert's number; None: a fused tensor holding `fused` experts
    fused: int = 0


@dataclass(frozen=True)
class Classified:
    tensor: TensorRecord
    cls: str
    counted: int
    note: str = ""
    expert: Expert | None = None
    problem: str = ""  # what makes the count uncertain (the figure is then invalid)

    def to_json(self) -> dict[str, Any]:
        out = {
            **self.tensor.to_json(),
            "class": self.cls,
            "counted": self.counted,
            "elements": self.tensor.elements,
        }
        if self.note:
            out["note"] = self.note
        if self.problem:
            out["problem"] = self.problem
        if self.expert is not None:
            out["expert"] = {
                "block": self.expert.block,
                "index": self.expert.index,
                "fused": self.expert.fused,
            }
        return out


def classify(tensors: list[TensorRecord], config: ModelConfig) -> list[Classified]:
    """One class per tensor, in the records' order."""
    first: dict[str, int] = {}
    for k, t in enumerate(tensors):
        first.setdefault(t.name, k)
    names = set(first)
    out: list[Classified] = []
    for k, t in enumerate(tensors):
        if first[t.name] != k:
            keep = tensors[first[t.name]]
            same = keep.dtype == t.dtype and keep.shape == t.shape
            out.append(
                Classified(
                    t,
                    "duplicate",
                    0,
                    f"{t.name} is also stored in {keep.file}; counted there",
                    problem=""
                    if same
                    else f"{t.name} is stored twice with different dtype or shape",
                )
            )
            continue
        out.append(_one(t, names, tensors, first, config))
    out = _shared_storage(out)
    out = _declared_tie(out, config)
    return [_expert_tag(c) for c in out]


def _one(
    t: TensorRecord,
    names: set[str],
    tensors: list[TensorRecord],
    first: dict[str, int],
    config: ModelConfig,
) -> Classified:
    role = t.role or {}
    if "side" in role:
        return Classified(t, "side", 0, str(role["side"]))
    if "packed_logical" in role:
        return Classified(t, "packed", int(role["packed_logical"]), str(role.get("why", "")))
    module, _, leaf = t.name.rpartition(".")
    if leaf in BUFFER_LEAVES or (
        leaf == "bias" and len(t.shape) == 4 and t.shape[:2] == (1, 1) and t.shape[2] == t.shape[3]
    ):
        return Classified(t, "buffer", 0, "a module buffer, not a parameter")
    side = _side_reason(t.name, module, leaf, names)
    if side:
        return Classified(t, "side", 0, side)
    packed = _packed_kind(t, module, leaf, names)
    if packed is not None:
        bits_hint, scales_name, default_group = packed
        scales = tensors[first[scales_name]] if scales_name in first else None
        return _packed(t, module, config, bits_hint, scales, default_group)
    return Classified(t, "weight", t.elements)


def _side_reason(name: str, module: str, leaf: str, names: set[str]) -> str:
    if leaf in SIDE_LEAVES or ".quant_state." in f".{name}":
        return f"quantisation side tensor ({leaf})"
    if leaf == "biases" and f"{module}.scales" in names:
        return "quantisation biases beside scales (MLX), not a layer bias"
    if leaf.endswith("_scales") and f"{module}.{leaf[: -len('_scales')]}_blocks" in names:
        return "MXFP4 block scales"
    return ""


def _packed_kind(
    t: TensorRecord, module: str, leaf: str, names: set[str]
) -> tuple[int | None, str, int | None] | None:
    """(bits implied by the format, the scales tensor's name, a default group) where the
    tensor holds packed values; None where it is not packed."""
    if leaf == "qweight":
        return None, f"{module}.scales", None
    if leaf == "weight_packed":
        return None, f"{module}.weight_scale", None
    if leaf.endswith("_blocks") and f"{module}.{leaf[: -len('_blocks')]}_scales" in names:
        return None, f"{module}.{leaf[: -len('_blocks')]}_scales", 32
    if leaf == "weight" and canonical_dtype(t.dtype) in CONTAINER_BITS:
        if f"{module}.scales" in names:  # MLX
            return None, f"{module}.scales", None
        states = [n for n in names if n.startswith(f"{t.name}.quant_state.")]
        if states or f"{t.name}.absmax" in names:  # bitsandbytes 4-bit
            return 4, "", None
    return None


def _packed(
    t: TensorRecord,
    module: str,
    config: ModelConfig,
    bits_hint: int | None,
    scales: TensorRecord | None,
    default_group: int | None,
) -> Classified:
    container = CONTAINER_BITS.get(canonical_dtype(t.dtype))
    if container is None:
        return Classified(
            t,
            "weight",
            t.elements,
            f"named as packed but stored as {t.dtype}: one value per element",
        )
    bits, group = config.quant.for_module(module) if config.quant else (None, None)
    bits = bits_hint or bits
    group = group if group is not None else default_group
    if not bits:
        return Classified(
            t,
            "packed",
            t.elements,
            "storage elements counted",
            problem=f"{t.name}: packed {t.dtype} but no quantisation bits in the config: "
            "the logical count is unknown",
        )
    total_bits = t.elements * container
    counted = total_bits // bits
    note = f"{t.elements} {t.dtype} x {container} bits / {bits} bits = {counted} logical"
    if total_bits % bits:
        return Classified(
            t,
            "packed",
            counted,
            note,
            problem=f"{t.name}: {total_bits} bits are not a whole number of {bits}-bit values",
        )
    if scales is not None and group and group > 0:
        covered = scales.elements * group
        slack = group * max(scales.shape, default=1)
        if not covered - slack < counted <= covered:
            return Classified(
                t,
                "packed",
                counted,
                note,
                problem=f"{t.name}: {counted} logical values at {bits} bits, but its scales "
                f"({scales.elements} groups of {group}) cover {covered}: bits or group size "
                "disagree with the tensors",
            )
        note += f"; scales {list(scales.shape)} x group {group} agree"
    return Classified(t, "packed", counted, note)


def _shared_storage(items: list[Classified]) -> list[Classified]:
    """Counted tensors over the same bytes (or inside another's bytes) count once."""
    out = list(items)
    groups: dict[str, list[int]] = {}
    for k, c in enumerate(items):
        t = c.tensor
        if (
            c.cls in COUNTED
            and t.storage is not None
            and t.start is not None
            and t.end is not None
            and t.end > t.start
        ):
            groups.setdefault(t.storage, []).append(k)
    for members in groups.values():
        members.sort(key=lambda k: (items[k].tensor.start, -(items[k].tensor.end or 0), k))
        cover_end, cover = -1, -1
        for k in members:
            t = items[k].tensor
            assert t.start is not None and t.end is not None
            if cover >= 0 and t.end <= cover_end:
                other = items[cover].tensor
                how = (
                    "the same bytes as"
                    if (t.start, t.end) == (other.start, other.end)
                    else "bytes inside those of"
                )
                out[k] = Classified(t, "shared", 0, f"{how} {other.name}: counted once")
                continue
            if cover >= 0 and t.start < cover_end:
                out[k] = Classified(
                    t,
                    items[k].cls,
                    items[k].counted,
                    items[k].note,
                    problem=f"{t.name} overlaps part of the bytes of {items[cover].tensor.name}",
                )
            cover_end, cover = t.end, k
    return out


def _declared_tie(items: list[Classified], config: ModelConfig) -> list[Classified]:
    if not config.tie:
        return items
    counted = [k for k, c in enumerate(items) if c.cls in COUNTED]
    heads = [
        k
        for k in counted
        if items[k].tensor.name.endswith(HEADS) or items[k].tensor.name == "output.weight"
    ]
    embeddings = [k for k in counted if items[k].tensor.name.endswith(EMBEDDINGS)]
    out = list(items)
    for h in heads:
        head = items[h].tensor
        match = next((e for e in embeddings if items[e].tensor.shape == head.shape), None)
        if match is None:
            continue
        out[h] = Classified(
            head,
            "shared",
            0,
            f"declared tied to {items[match].tensor.name} ({config.tie_source}): counted once",
        )
    return out


def _expert_tag(c: Classified) -> Classified:
    if c.cls not in COUNTED:
        return c
    name = f".{c.tensor.name}"
    if "shared_expert" in name or "_shexp" in name:
        return c
    indexed = _INDEXED.search(name)
    if indexed:
        block = name[1 : indexed.start()]
        return _with(c, Expert(block, int(indexed.group(1))))
    fused = _FUSED.search(name) or _GGUF_FUSED.match(c.tensor.name)
    if fused and len(c.tensor.shape) >= 2:
        block = fused.group(1) if fused.re is _GGUF_FUSED else name[1 : fused.start()]
        return _with(c, Expert(block, None, c.tensor.shape[0]))
    return c


def _with(c: Classified, expert: Expert) -> Classified:
    return Classified(c.tensor, c.cls, c.counted, c.note, expert, c.problem)
