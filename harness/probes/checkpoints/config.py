"""What a checkpoint's configuration says that changes the count: how packed weights are
quantised (bits, group size, per-module overrides), whether the embedding and the LM head
are declared tied, and how many experts there are and how many each token uses. Pure:
read from the copies of config.json / quantize_config.json in the evidence and from the
GGUF key-values the reader recorded.

Keys read (the first found wins; a nested text_config / language_config / llm_config is
read where the top level has none):
- quantisation: config.json `quantization_config` (GPTQ/AWQ `bits` or `w_bit`,
  `group_size` or `q_group_size`; compressed-tensors `config_groups.*.weights.num_bits`;
  `quant_method: mxfp4` = 4 bits in groups of 32), MLX's `quantization` (`bits`,
  `group_size`, and per-module overrides `{module: {bits, group_size}}`), AutoGPTQ's
  quantize_config.json;
- tie: `tie_word_embeddings` (only an explicit true declares a tie);
- experts: `num_local_experts`, `num_experts`, `n_routed_experts`, `moe_num_experts`,
  `num_routed_experts`, `n_experts`; per token: `num_experts_per_tok`,
  `num_experts_per_token`, `moe_top_k`, `n_experts_per_tok`, `experts_per_token`,
  `top_k`; GGUF `<arch>.expert_count` / `<arch>.expert_used_count`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NESTED = ("text_config", "language_config", "llm_config")
EXPERT_KEYS = (
    "num_local_experts",
    "num_experts",
    "n_routed_experts",
    "moe_num_experts",
    "num_routed_experts",
    "n_experts",
)
PER_TOKEN_KEYS = (
    "num_experts_per_tok",
    "num_experts_per_token",
    "moe_top_k",
    "n_experts_per_tok",
    "experts_per_token",
    "top_k",
)
PARAMETER_CLAIM_KEYS = (
    "num_parameters",
    "num_params",
    "n_params",
    "total_params",
    "total_parameters",
    "parameter_count",
)


@dataclass(frozen=True)
class QuantConfig:
    method: str
    bits: int | None
    group_size: int | None
    overrides: dict[str, tuple[int | None, int | None]]  # module -> (bits, group size)
    source: str

    def for_module(self, module: str) -> tuple[int | None, int | None]:
        """(bits, group size) of the module: an override by its path, else the default."""
        if module in self.overrides:
            bits, group = self.overrides[module]
            return bits or self.bits, group or self.group_size
        return self.bits, self.group_size


@dataclass(frozen=True)
class MoeConfig:
    experts: int | None
    per_token: int | None
    source: str


@dataclass(frozen=True)
class ModelConfig:
    quant: QuantConfig | None = None
    tie: bool = False
    tie_source: str = ""
    moe: MoeConfig | None = None
    # parameter counts the config states about the model (claims, compared, never used)
    claims: list[tuple[str, float, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        quant = None
        if self.quant is not None:
            quant = {
                "method": self.quant.method,
                "bits": self.quant.bits,
                "group_size": self.quant.group_size,
                "overrides": {k: list(v) for k, v in sorted(self.quant.overrides.items())},
                "source": self.quant.source,
            }
        moe = None
        if self.moe is not None:
            moe = {
                "experts": self.moe.experts,
                "per_token": self.moe.per_token,
                "source": self.moe.source,
            }
        return {
            "quantisation": quant,
            "tie_word_embeddings": self.tie,
            "tie_source": self.tie_source,
            "experts": moe,
        }


def model_config(configs: dict[str, Any], gguf_kv: dict[str, Any]) -> ModelConfig:
    """`configs`: file name -> parsed JSON (config.json, quantize_config.json);
    `gguf_kv`: the GGUF key-values of the first file (empty for other formats)."""
    main = configs.get("config.json")
    main = main if isinstance(main, dict) else {}
    layers = [("config.json", main)] + [
        (f"config.json {key}", main[key]) for key in NESTED if isinstance(main.get(key), dict)
    ]
    quant = _quant(layers, configs.get("quantize_config.json"))
    tie, tie_source = False, ""
    for where, cfg in layers:
        if cfg.get("tie_word_embeddings") is True:
            tie, tie_source = True, f"{where}: tie_word_embeddings"
            break
    moe = _moe(layers, gguf_kv)
    claims = []
    for where, cfg in layers:
        for key in PARAMETER_CLAIM_KEYS:
            value = cfg.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                claims.append((f"{where}: {key}", float(value), str(value)))
    return ModelConfig(quant, tie, tie_source, moe, claims)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _quant(layers: list[tuple[str, dict[str, Any]]], extra: Any) -> QuantConfig | None:
    for where, cfg in layers:
        for key in ("quantization_config", "quantization"):
            block = cfg.get(key)
            if isinstance(block, dict):
                return _quant_block(block, f"{where}: {key}")
    if isinstance(extra, dict):
        return _quant_block(extra, "quantize_config.json")
    return None


def _quant_block(block: dict[str, Any], source: str) -> QuantConfig:
    method = str(block.get("quant_method", block.get("method", "")) or "")
    bits = _int(block.get("bits")) or _int(block.get("w_bit")) or _int(block.get("num_bits"))
    group = _int(block.get("group_size"))
    if group is None:
        group = _int(block.get("q_group_size"))
    groups = block.get("config_groups")
    if bits is None and isinstance(groups, dict):  # compressed-tensors
        for spec in groups.values():
            weights = spec.get("weights") if isinstance(spec, dict) else None
            if isinstance(weights, dict) and _int(weights.get("num_bits")):
                bits = _int(weights.get("num_bits"))
                group = _int(weights.get("group_size")) if group is None else group
                break
    if method == "mxfp4":
        bits, group = bits or 4, group or 32
    if bits is None and block.get("load_in_4bit") is True:
        bits = 4
    overrides = {
        str(k): (_int(v.get("bits")), _int(v.get("group_size")))
        for k, v in block.items()
        if isinstance(v, dict) and ("bits" in v or "group_size" in v)
    }
    return QuantConfig(method, bits, group, overrides, source)


def _moe(layers: list[tuple[str, dict[str, Any]]], kv: dict[str, Any]) -> MoeConfig | None:
    for where, cfg in layers:
        experts = next(((k, cfg[k]) for k in EXPERT_KEYS if _int(cfg.get(k))), None)
        per_token = next(((k, cfg[k]) for k in PER_TOKEN_KEYS if _int(cfg.get(k))), None)
        if experts is not None and experts[1] > 1:
            source = f"{where}: {experts[0]}" + (f", {per_token[0]}" if per_token else "")
            return MoeConfig(experts[1], per_token[1] if per_token else None, source)
    arch = kv.get("general.architecture")
    if isinstance(arch, str):
        experts_kv = _int(kv.get(f"{arch}.expert_count"))
        used = _int(kv.get(f"{arch}.expert_used_count"))
        if experts_kv is not None and experts_kv > 1:
            return MoeConfig(
                experts_kv, used, f"GGUF {arch}.expert_count, {arch}.expert_used_count"
            )
    return None
