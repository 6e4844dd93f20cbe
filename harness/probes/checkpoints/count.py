"""The count from classified tensors (pure): the total (every counted tensor: weights and
packed weights at their logical size), the active parameters per token of a
mixture-of-experts model, the sums per class, and every claim the checkpoint makes
compared with the count.

Active per token = the total less the routed experts' parameters plus, in each MoE block,
those of the `per_token` largest experts (all experts of a block are the same size in
every known model, so this is k / E of the block's experts; a fused tensor holding E
experts gives 1 / E of itself to each). Shared experts, routers, attention and embeddings
are always active."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.probes.checkpoints.classify import CLASSES, COUNTED, Classified
from harness.probes.checkpoints.config import ModelConfig
from harness.probes.checkpoints.records import Claim

LABEL_TOLERANCE = 0.05  # a rounded size label agrees with the count within 5 %
LIST_AT_MOST = 20  # names listed per problem kind in the details


@dataclass
class Count:
    total: int
    active: int | None
    active_reason: str  # why `active` is None, or why it is uncertain
    active_invalid: str
    classes: dict[str, dict[str, int]]
    experts: dict[str, Any]
    claims: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)
    stored_bytes: int = 0


def count(items: list[Classified], config: ModelConfig, claims: list[Claim]) -> Count:
    total = sum(c.counted for c in items if c.cls in COUNTED)
    classes = {
        cls: {
            "tensors": sum(1 for c in items if c.cls == cls),
            "stored_elements": sum(c.tensor.elements for c in items if c.cls == cls),
            "counted": sum(c.counted for c in items if c.cls == cls),
        }
        for cls in CLASSES
    }
    classes["expert"] = {
        "tensors": sum(1 for c in items if c.expert is not None),
        "stored_elements": sum(c.tensor.elements for c in items if c.expert is not None),
        "counted": sum(c.counted for c in items if c.expert is not None),
    }
    problems = [c.problem for c in items if c.problem]
    active, reason, invalid, experts = _active(items, config, total)
    stored = sum(c.tensor.nbytes or 0 for c in items)
    compared = [_compare(claim, total, stored) for claim in claims]
    compared += [
        _compare(Claim("config.json", where, "parameters", value, raw), total, stored)
        for where, value, raw in config.claims
    ]
    return Count(total, active, reason, invalid, classes, experts, compared, problems, stored)


def _active(
    items: list[Classified], config: ModelConfig, total: int
) -> tuple[int | None, str, str, dict[str, Any]]:
    routed = [c for c in items if c.expert is not None]
    moe = config.moe
    if not routed:
        if moe is not None:
            return (
                None,
                (
                    f"{moe.source} declares {moe.experts} experts, but no tensor is "
                    "named as an expert"
                ),
                "",
                {"config": moe.source},
            )
        return total, "no experts: active = total", "", {}
    if moe is None or moe.per_token is None:
        return (
            None,
            (
                f"{len(routed)} expert tensors, but the config gives no experts per "
                "token (num_experts_per_tok or the like)"
            ),
            "",
            {},
        )
    per_block: dict[str, dict[int, int]] = {}
    uneven: list[str] = []
    for c in routed:
        assert c.expert is not None
        sums = per_block.setdefault(c.expert.block, {})
        if c.expert.index is not None:
            sums[c.expert.index] = sums.get(c.expert.index, 0) + c.counted
            continue
        share, rest = divmod(c.counted, c.expert.fused)
        if rest:
            uneven.append(c.tensor.name)
        for e in range(c.expert.fused):
            sums[e] = sums.get(e, 0) + share + (1 if e < rest else 0)
    k = moe.per_token
    active_experts = 0
    mismatched = []
    for block, sums in sorted(per_block.items()):
        if moe.experts is not None and len(sums) != moe.experts:
            mismatched.append(f"{block}: {len(sums)}")
        active_experts += sum(sorted(sums.values(), reverse=True)[:k])
    routed_total = sum(c.counted for c in routed)
    active = total - routed_total + active_experts
    invalid = ""
    if mismatched:
        invalid = (
            f"the config declares {moe.experts} experts, the tensors hold another "
            f"number in {len(mismatched)} blocks ({', '.join(mismatched[:5])})"
        )
    elif uneven:
        invalid = f"fused expert tensors not divisible by their experts: {uneven[:5]}"
    sizes = sorted({v for sums in per_block.values() for v in sums.values()})
    experts = {
        "config": moe.source,
        "experts_declared": moe.experts,
        "per_token": k,
        "blocks": len(per_block),
        "experts_found_per_block": sorted({len(s) for s in per_block.values()}),
        "expert_sizes": sizes[:10],
        "routed_parameters": routed_total,
        "active_routed_parameters": active_experts,
    }
    return active, f"{k} of the experts per block, plus every non-expert tensor", invalid, experts


def _compare(claim: Claim, total: int, stored_bytes: int) -> dict[str, Any]:
    out: dict[str, Any] = {**claim.to_json(), "counted_parameters": total}
    if claim.kind == "bytes":
        out["stored_bytes"] = stored_bytes
        out["difference_bytes"] = int(claim.value) - stored_bytes
        out["agrees"] = int(claim.value) == stored_bytes
        if claim.value == total:
            out["note"] = "equals the parameter count, not the bytes a total_size should be"
        return out
    out["difference"] = claim.value - total
    out["relative"] = (claim.value - total) / total if total else None
    if claim.kind == "label":
        out["agrees"] = total > 0 and abs(claim.value - total) <= LABEL_TOLERANCE * total
        out["note"] = f"a rounded size label: agrees when within {LABEL_TOLERANCE:.0%} of the count"
    else:
        out["agrees"] = int(claim.value) == total
    return out
