"""The harness's own check of one adversarial example: pure functions of the clean input,
the returned example and the threat model (score() runs them again on the evidence).

An example is valid when it is finite (as float32, the dtype the targets take), lies in the
target's domain, and its perturbation is within the budget:
- `linf`: max |adv - clean| <= epsilon, `l2`: sqrt(sum (adv - clean)^2) <= epsilon, both in
  float64 on the float32 values (no tolerance: one float32 ulp over is over);
- `l0`: the positions changed (pixels over the non-channel axes, any channel; features of a
  vector) number at most epsilon;
- `patch`: the changed positions lie in an axis-aligned box at most epsilon x epsilon;
- `spatial`: the declared move (|rotation| <= max_rotation_deg, |each shift| <=
  max_shift_px), rendered by the harness (harness.refengines.security_targets.transforms.
  spatial), equals the example within SPATIAL_TOLERANCE of the domain's width.
It is adversarial when the target's own label for it (the harness's query) is the goal
class (targeted) or any class but the true one (untargeted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.refengines.security_targets.transforms import SpatialMove, spatial

SPATIAL_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ThreatModel:
    norm: str
    epsilon: float | None = None
    max_rotation_deg: float | None = None
    max_shift_px: float | None = None

    @classmethod
    def from_record(cls, record: dict[str, object]) -> ThreatModel:
        def number(key: str) -> float | None:
            value = record.get(key)
            return None if value is None else float(value)  # type: ignore[arg-type]

        return cls(
            norm=str(record["norm"]),
            epsilon=number("epsilon"),
            max_rotation_deg=number("max_rotation_deg"),
            max_shift_px=number("max_shift_px"),
        )


def _positions(diff: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """Boolean array over positions: any element of that position changed."""
    changed = diff != 0
    if channel_axis is None:
        return changed
    return np.any(changed, axis=channel_axis)


def perturbation_reason(
    clean: np.ndarray,
    adv: np.ndarray,
    threat: ThreatModel,
    domain: tuple[float, float],
    channel_axis: int | None,
    move: SpatialMove | None = None,
) -> str:
    """'' when the example is valid under the threat model, else why not (one line)."""
    adv32 = np.asarray(adv, dtype=np.float32)
    if adv32.shape != clean.shape:
        return f"shape {list(adv32.shape)}, expected {list(clean.shape)}"
    if not np.all(np.isfinite(adv32)):
        return f"{int(np.sum(~np.isfinite(adv32)))} values are not finite"
    lo, hi = domain
    if adv32.min() < lo or adv32.max() > hi:
        return (
            f"values in [{float(adv32.min()):.9g}, {float(adv32.max()):.9g}] leave the domain "
            f"[{lo:g}, {hi:g}]"
        )
    diff = adv32.astype(np.float64) - np.asarray(clean, dtype=np.float32).astype(np.float64)
    eps = threat.epsilon
    if threat.norm == "linf":
        size = float(np.max(np.abs(diff))) if diff.size else 0.0
        return "" if eps is not None and size <= eps else f"L-inf {size:.9g} > epsilon {eps:g}"
    if threat.norm == "l2":
        size = float(np.sqrt(np.sum(diff * diff)))
        return "" if eps is not None and size <= eps else f"L2 {size:.9g} > epsilon {eps:g}"
    if threat.norm == "l0":
        count = int(np.sum(_positions(diff, channel_axis)))
        return "" if eps is not None and count <= eps else f"L0 {count} positions > {eps:g}"
    if threat.norm == "patch":
        where = np.argwhere(_positions(diff, channel_axis))
        if len(where) == 0:
            return ""
        extent = (where.max(axis=0) - where.min(axis=0) + 1).tolist()
        if eps is not None and max(extent) <= eps:
            return ""
        span = " x ".join(map(str, extent))
        return f"the changes span {span} positions, beyond a {eps:g}-wide patch"
    if threat.norm == "spatial":
        if move is None:
            return "no move (rotation_deg, shift_px) declared for a spatial example"
        max_rot, max_shift = threat.max_rotation_deg or 0.0, threat.max_shift_px or 0.0
        rotation, shift = move.rotation_deg, move.shift_px
        if not all(np.isfinite([rotation, *shift])):
            return "the declared move is not finite"
        if abs(rotation) > max_rot:
            return f"rotation {rotation:g} deg beyond +/- {max_rot:g}"
        if max(abs(shift[0]), abs(shift[1])) > max_shift:
            return f"shift {list(shift)} px beyond +/- {max_shift:g}"
        rendered = spatial(clean, move, domain, channel_axis)
        gap = float(np.max(np.abs(rendered.astype(np.float64) - adv32.astype(np.float64))))
        if gap > SPATIAL_TOLERANCE * (hi - lo):
            return f"the example differs from the declared move by up to {gap:.3g}"
        return ""
    return f"unknown norm {threat.norm!r}"


def succeeded(label: int, true_label: int, goal: int) -> bool:
    """The target's label reaches the goal class (goal >= 0) or leaves the true one."""
    return label == goal if goal >= 0 else label != true_label
