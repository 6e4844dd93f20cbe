"""Comparisons of outputs and training losses with the FP32 CPU reference, and the misses
of a comparison against its tolerance."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.probes.models.args import Tolerance


def compare(output: Any, reference: Any) -> dict[str, Any]:
    """Raw agreement numbers of an output with its reference (both array-likes, same shape)."""
    got = np.asarray(output, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if got.shape != ref.shape:
        raise ValueError(f"output shape {got.shape} differs from the reference {ref.shape}")
    decisions = ref.size // ref.shape[-1] if ref.ndim else 1
    record: dict[str, Any] = {
        "shape": list(ref.shape),
        "values": int(ref.size),
        "decisions": int(decisions),
        "max_abs_reference": float(np.abs(ref).max()),
        "finite": bool(np.isfinite(got).all()),
    }
    if not record["finite"]:
        bad = int((~np.isfinite(got)).sum())
        record.update(
            max_abs_err=None, max_rel_err=None, cosine=None, top1_agreement=None, non_finite=bad
        )
        return record
    max_abs = float(np.abs(got - ref).max())
    scale = record["max_abs_reference"]
    g, r = got.ravel(), ref.ravel()
    norms = float(np.linalg.norm(g)) * float(np.linalg.norm(r))
    cosine = float(np.dot(g, r) / norms) if norms > 0 else float(np.array_equal(g, r))
    agree = np.argmax(got, axis=-1) == np.argmax(ref, axis=-1)
    margins: list[float] = []
    if not agree.all():
        top2 = np.sort(ref, axis=-1)[..., -2:]
        gap = (top2[..., 1] - top2[..., 0]) / (scale if scale > 0 else 1.0)
        margins = sorted(float(g) for g in gap[~agree])
    record.update(
        max_abs_err=max_abs,
        max_rel_err=max_abs / scale if scale > 0 else max_abs,
        cosine=cosine,
        top1_agreement=float(np.mean(agree)),
        # for each decision whose argmax differs: the reference's top-two gap / max |ref|
        top1_disagreement_gaps=margins,
    )
    return record


def decisive_agreement(acc: dict[str, Any], tol: Tolerance) -> tuple[float, int]:
    """Top-1 agreement counting only flips where the reference's gap exceeds the tie margin;
    and how many flips were excused as near-ties."""
    gaps = acc.get("top1_disagreement_gaps", [])
    decisive = sum(1 for g in gaps if g > tol.tie_margin)
    return 1.0 - decisive / max(1, int(acc["decisions"])), len(gaps) - decisive


def accuracy_failures(acc: dict[str, Any], tol: Tolerance) -> list[str]:
    """Why a comparison misses its tolerance (empty when it passes)."""
    if not acc.get("finite"):
        return [f"{acc.get('non_finite', '?')} non-finite output values"]
    misses: list[str] = []
    if acc["cosine"] < tol.min_cosine:
        misses.append(f"cosine {acc['cosine']:.6f} < {tol.min_cosine:g}")
    agreement, excused = decisive_agreement(acc, tol)
    # From the gaps, or from the raw agreement plus the excused flips: the two are equal in
    # consistent evidence; the lower one counts.
    agreement = min(agreement, acc["top1_agreement"] + excused / max(1, acc["decisions"]))
    if agreement < tol.min_top1_agreement:
        misses.append(
            f"top-1 agreement {agreement:.4f} < {tol.min_top1_agreement:g} (excusing "
            f"{excused} flips at near-ties of the reference, gap <= {tol.tie_margin:g} of "
            "max |ref|)"
        )
    if acc["max_rel_err"] > tol.max_rel_err:
        misses.append(f"max rel error {acc['max_rel_err']:.3g} > {tol.max_rel_err:g}")
    return misses


def training_failures(record: dict[str, Any], tol: Tolerance) -> list[str]:
    losses = [*record["warmup_losses"], *record["losses"]]
    misses: list[str] = []
    bad = sum(1 for x in losses if x is None or not math.isfinite(x))
    if bad:
        misses.append(f"{bad} of {len(losses)} losses are not finite")
    first, ref = record["warmup_losses"][0], record["reference_loss"]
    if first is not None and math.isfinite(first) and ref:
        diff = abs(first - ref) / abs(ref)
        if diff > tol.max_loss_rel_diff:
            misses.append(
                f"first-step loss {first:.6g} differs from the FP32 CPU reference {ref:.6g} "
                f"by {diff:.3g} (relative) > {tol.max_loss_rel_diff:g}"
            )
    return misses
