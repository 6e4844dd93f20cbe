"""Shared by `framework.bindings` and `framework.backends`: the reference run (the model,
the inputs file and ONNX Runtime's Python CPU FP32 outputs, written to the evidence), a
command's run stored in the evidence, and the judgement of outputs against the reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.contracts.framework import CommandSpec
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext
from harness.probes.framework.args import CheckArgs
from harness.probes.framework.commands import format_inputs, parse_stdout, run_command
from harness.probes.framework.reference import load_reference
from harness.probes.framework.sessions import CPU_PROVIDER, input_facts
from harness.probes.framework.util import MB


def _prepare_reference(
    ctx: CollectContext, args: CheckArgs, workdir: Path, origin: str
) -> tuple[Path, Path, np.ndarray]:
    """Write the model (work copy, and to the evidence when small), the inputs and the
    reference outputs (ONNX Runtime Python, CPU, FP32); return model path, inputs path,
    reference outputs."""
    import onnxruntime as ort

    ref = load_reference(args, ctx.seed)
    x = ref.x_test[: args.inputs]
    io = input_facts(ref.model_bytes)
    model = workdir / "model.onnx"
    model.write_bytes(ref.model_bytes)
    stored = None
    if len(ref.model_bytes) <= args.store_model_max_mb * MB:
        stored = "model.onnx"
        ctx.evidence.write_bytes(stored, ref.model_bytes)
    inputs = ctx.evidence.write_text("inputs.txt", format_inputs(x)).resolve()
    session = ort.InferenceSession(ref.model_bytes, providers=[CPU_PROVIDER])
    outputs = np.asarray(session.run(None, {io["input"]: x})[0]).reshape(len(x), -1)
    ctx.evidence.write_json(
        "reference.json",
        {
            **ref.facts,
            "origin": origin,
            "io": io,
            "model_stored": stored,
            "inputs": len(x),
            "input_file": "inputs.txt",
            "reference": f"onnxruntime {ort.__version__} Python, CPUExecutionProvider, FP32",
            "outputs": outputs.astype(np.float64).tolist(),
        },
    )
    return model, inputs, outputs


def _reference_outputs(evidence: EvidenceReader) -> np.ndarray:
    return np.asarray(evidence.read_json("reference.json")["outputs"], dtype=np.float64)


def _run_and_store(
    writer: EvidenceWriter, stem: str, spec: CommandSpec, model: Path, inputs: Path
) -> dict[str, Any]:
    record, stdout = run_command(spec, model, inputs)
    writer.write_bytes(f"{stem}.stdout", stdout)
    record["stdout_file"] = f"{stem}.stdout"
    return record


def _judge_command(
    evidence: EvidenceReader, record: dict[str, Any], reference: np.ndarray, tolerance: float
) -> tuple[bool, str, dict[str, Any]]:
    if record.get("status") != "ran":
        return False, str(record.get("reason", record.get("status"))), {}
    if record.get("stdout_truncated"):
        return False, "bad output: stdout exceeded the harness's limit", {}
    raw = evidence.path(record["stdout_file"]).read_bytes()
    parsed, reason = parse_stdout(raw, len(reference), reference.shape[1], record["output"])
    if parsed is None:
        return False, reason, {}
    ok, detail = compare_outputs(parsed, reference, record["output"], tolerance)
    if ok:
        return True, "ok", detail
    if "reason" in detail:
        return False, f"bad output: {detail['reason']}", detail
    if record["output"] == "class":
        return False, f"wrong output: {detail['mismatches']} predicted classes differ", detail
    rel = detail["max_rel_err"]
    return (
        False,
        "wrong output: "
        + (
            "non-finite values"
            if rel is None
            else f"max error {rel:.3g} of max |reference| (tolerance {tolerance:g}), "
            f"{detail['top1_mismatches']} top-1 mismatches"
        ),
        detail,
    )


def _summary(details: dict[str, Any]) -> str:
    """One line for the report: which items counted, and why the others did not."""
    ok = [name for name, d in details.items() if d["status"] == "ok"]
    bad = [f"{name} ({d['status'][:120]})" for name, d in details.items() if d["status"] != "ok"]
    return f"Counted: {', '.join(ok) or 'none'}. Not counted: {'; '.join(bad) or 'none'}."


def compare_outputs(
    got: np.ndarray | list[int], reference: np.ndarray, output: str, tolerance: float
) -> tuple[bool, dict[str, Any]]:
    """Check a run's outputs against the reference outputs [N, C] (pure)."""
    scale = float(np.abs(reference).max()) if reference.size else 0.0
    limit = tolerance * scale if scale > 0 else tolerance
    ref_class = reference.argmax(axis=1)
    top2 = np.sort(reference, axis=1)[:, -2:] if reference.shape[1] > 1 else None
    margin = (top2[:, 1] - top2[:, 0]) if top2 is not None else np.full(len(reference), np.inf)
    near_tie = margin <= 2 * limit  # top-1 may legitimately differ within the tolerance
    if output == "class":
        classes = np.asarray(got, dtype=np.int64)
        mismatched = (classes != ref_class) & ~near_tie
        detail = {
            "compared": "predicted class vs the reference's argmax (near-ties excused)",
            "mismatches": int(mismatched.sum()),
            "near_ties": int(near_tie.sum()),
            "first_mismatch": int(np.argmax(mismatched)) if mismatched.any() else None,
        }
        return not mismatched.any(), detail
    values = np.asarray(got, dtype=np.float64)
    if values.shape != reference.shape:
        return False, {"reason": f"output shape {list(values.shape)} != {list(reference.shape)}"}
    finite = bool(np.isfinite(values).all())
    err = np.abs(values - reference)
    max_abs = float(err.max()) if err.size else 0.0
    class_mismatch = (values.argmax(axis=1) != ref_class) & ~near_tie
    detail = {
        "compared": "values vs the reference, max |diff| / max |reference|",
        "max_abs_err": max_abs if finite else None,
        "max_abs_reference": scale,
        "max_rel_err": (max_abs / scale if scale > 0 else max_abs) if finite else None,
        "tolerance": tolerance,
        "top1_mismatches": int(class_mismatch.sum()),
        "near_ties": int(near_tie.sum()),
    }
    return finite and max_abs <= limit and not class_mismatch.any(), detail
