"""`framework.precisions`: the reference model in FP32, FP16, INT8 and INT4 on ONNX Runtime.

collect: builds each variant with onnxruntime's own tools, records the variant's file size
and op counts (the quantised ops must really be there), its top-1 prediction for every
held-out sample, and interleaved timings: per repeat and precision, N single-sample calls
(latency) and M batched calls (throughput), the precisions' order rotated every repeat.
score: accuracy with exact Clopper-Pearson bounds, accuracy drop vs FP32 (pp, bounded by
the share of samples FP32 gets right and the variant wrong), latency and throughput with
order-statistic bounds on the median, speed-ups from the paired per-repeat ratios,
compression = FP32 file size / variant file size, and the count of verified precisions.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.framework.args import DEFAULT_TOLERANCE_PP, PrecisionsArgs
from harness.probes.framework.reference import load_reference
from harness.probes.framework.sessions import CPU_PROVIDER, input_facts, predict, session_options
from harness.probes.framework.submission import _reference_note, _submitted, _with_reference
from harness.probes.framework.timing import (
    _batch,
    _speedups,
    _time_interleaved,
    _timing_measurements,
)
from harness.probes.framework.util import MB, sha256_bytes
from harness.probes.framework.variants import REQUIRED_OPS, graph_facts, make_variant
from harness.registry import probes
from harness.schema import Measurement, Unmeasured
from harness.scoring.accuracy import accuracy_percent, paired_drop_pp


def _precision_metrics(p: str) -> dict[str, str]:
    names = {
        f"{p}.accuracy": "%",
        f"{p}.latency": "ms",
        f"{p}.throughput": "samples/s",
        f"{p}.model_size": "MB",
    }
    if p != "fp32":
        names.update(
            {
                f"{p}.accuracy_drop": "pp",
                f"{p}.speedup": "ratio",
                f"{p}.throughput_speedup": "ratio",
                f"{p}.compression": "ratio",
            }
        )
    return names


@probes.register("framework.precisions")
class PrecisionsProbe:
    name: ClassVar[str] = "framework.precisions"
    Args: ClassVar[type[BaseModel]] = PrecisionsArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, PrecisionsArgs)
        names: dict[str, str] = {}
        for p in args.precisions:
            names.update(_precision_metrics(p))
        names["verified_precisions"] = "count"
        return names

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, PrecisionsArgs)
        return 1 + len(args.precisions) + args.repeats

    # ---------------------------------------------------------------- collect

    def collect(self, ctx: CollectContext) -> list[str]:
        import onnxruntime as ort

        assert isinstance(ctx.args, PrecisionsArgs)
        args, origin = _with_reference(ctx, _submitted(ctx), ctx.args)
        ctx.progress("reference model")
        ref = load_reference(args, ctx.seed)
        io = input_facts(ref.model_bytes)
        if io["input_type"] != "tensor(float)":
            raise ValueError(f"the reference model's input is {io['input_type']}, not float32")
        calib = ref.x_calib[: args.calibration_samples]
        ctx.evidence.write_json(
            "reference.json",
            {
                **ref.facts,
                "origin": origin,
                "io": io,
                "onnxruntime": ort.__version__,
                "provider": args.provider,
                "intra_op_threads": args.intra_op_threads,
                "int8_calibration_samples": len(calib) if args.int8_method == "static" else 0,
            },
        )
        ctx.evidence.write_json("labels.json", ref.y_test.tolist())
        failures: list[str] = []
        records: dict[str, dict[str, Any]] = {}
        sessions: dict[str, Any] = {}
        stored_bytes = 0
        for p in args.precisions:
            ctx.progress(f"{p}: build and predict")
            variant = make_variant(
                p,
                ref.model_bytes,
                int8_method=args.int8_method,
                calibration=calib,
                input_name=io["input"],
                int4_block_size=args.int4_block_size,
                int4_symmetric=args.int4_symmetric,
                int4_accuracy_level=args.int4_accuracy_level,
                int4_quantizer=args.int4_quantizer,
            )
            record: dict[str, Any] = {"precision": p, "method": variant.method}
            if variant.log:
                record["tool_log"] = variant.log[-50:]
            records[p] = record
            if variant.model_bytes is None:
                record.update(status="not_produced", reason=f"{p} model: {variant.reason}")
                failures.append(record["reason"])
                continue
            data = variant.model_bytes
            record["graph"] = graph_facts(data)
            record["file"] = {"bytes": len(data), "sha256": sha256_bytes(data), "stored": None}
            if stored_bytes + len(data) <= args.store_models_max_mb * MB:
                name = f"models/{p}.onnx"
                ctx.evidence.write_bytes(name, data)
                record["file"]["stored"] = name
                stored_bytes += len(data)
            try:
                # fallback off: a provider failing mid-run (EPFail) must not move the
                # remaining predictions and timings to the CPU
                session = ort.InferenceSession(
                    data,
                    session_options(args.intra_op_threads),
                    providers=[args.provider],
                    **({} if args.provider == CPU_PROVIDER else {"enable_fallback": 0}),
                )
                if session.get_providers()[0] != args.provider:
                    raise RuntimeError(
                        f"session runs on {session.get_providers()}, not {args.provider}"
                    )
                batch = _batch(session, args.batch_size, len(ref.x_test))
                logits = predict(session, ref.x_test, batch)
            except Exception as error:
                record.update(status="not_run", reason=f"{p}: {type(error).__name__}: {error}")
                failures.append(record["reason"])
                continue
            record.update(
                status="measured",
                predictions=logits.argmax(axis=1).tolist(),
                output_width=int(logits.shape[1]),
            )
            sessions[p] = session
        timing = _time_interleaved(ctx, args, sessions, ref)
        for timed, result in timing.items():
            records[timed]["timing"] = result
        ctx.evidence.write_json(
            "timing.json",
            {
                "repeats": args.repeats,
                "warmup_calls": args.warmup_calls,
                "min_repeat_s": args.min_repeat_s,
                "order": "precisions interleaved within each repeat, rotated by one per repeat",
                "timed": sorted(sessions),
            },
        )
        for p in args.precisions:
            ctx.evidence.write_json(f"{p}.json", records[p])
        return failures

    # ---------------------------------------------------------------- score

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, PrecisionsArgs)
        labels = np.asarray(evidence.read_json("labels.json"), dtype=np.int64)
        n = len(labels)
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        usable: dict[str, dict[str, Any]] = {}
        status: dict[str, str] = {}
        for requested in args.precisions:
            record = evidence.read_json(f"{requested}.json")
            reason = _unusable_reason(requested, record, args, evidence)
            if reason:
                status[requested] = reason
                unmeasured += [
                    Unmeasured(id=m, reason=reason) for m in _precision_metrics(requested)
                ]
                continue
            usable[requested] = record
        fp32 = usable.get("fp32")
        fp32_correct = None
        if fp32 is not None:
            fp32_correct = np.asarray(fp32["predictions"]) == labels
        for p, record in usable.items():
            correct = np.asarray(record["predictions"]) == labels
            measurements.append(_accuracy(p, correct, ctx.confidence))
            measurements += _timing_measurements(p, record, ctx.confidence)
            measurements.append(_size(p, record))
            if p == "fp32":
                status[p] = "ok"
                continue
            if fp32 is None or fp32_correct is None:
                reason = f"no FP32 reference: {status.get('fp32', 'not measured')}"
                for m in ("accuracy_drop", "speedup", "throughput_speedup", "compression"):
                    unmeasured.append(Unmeasured(id=f"{p}.{m}", reason=reason))
                status[p] = reason
                continue
            drop = _accuracy_drop(p, fp32_correct, correct, ctx.confidence)
            measurements.append(drop)
            measurements += _speedups(p, fp32, record, ctx.confidence)
            measurements.append(_compression(p, fp32, record))
            tolerance = args.tolerance_pp.get(p, DEFAULT_TOLERANCE_PP[p])
            high = drop.ci.high if drop.ci is not None else None
            if high is not None and high <= tolerance:
                status[p] = "ok"
            else:
                status[p] = (
                    f"accuracy drop {drop.value:.3g} pp (upper bound {high:.3g} pp) exceeds "
                    f"the tolerance {tolerance:g} pp"
                )
        verified = sum(1 for p in args.precisions if status.get(p) == "ok")
        facts = evidence.read_json("reference.json")
        measurements.append(
            Measurement(
                id="verified_precisions",
                value=float(verified),
                unit="count",
                n=len(args.precisions),
                repeats=1,
                method=(
                    "precisions whose variant was produced, holds its quantised ops, ran, and "
                    f"whose accuracy drop vs FP32 on the {n} held-out samples has a "
                    f"{ctx.confidence:.0%} upper bound within the tolerance (harness defaults "
                    "fp16 1 pp, int8 2 pp, int4 5 pp); FP32 counts when it ran. "
                    + _reference_note(evidence)
                ),
                details={
                    "reference_model": {
                        "origin": facts.get("origin", facts.get("source")),
                        "sha256": facts.get("model_sha256"),
                        "data_sha256": facts.get("data_sha256"),
                    },
                    "per_precision": {p: status.get(p, "not requested") for p in args.precisions},
                    "tolerance_pp": {
                        p: args.tolerance_pp.get(p, DEFAULT_TOLERANCE_PP[p])
                        for p in args.precisions
                        if p != "fp32"
                    },
                },
            )
        )
        return ScoreResult(measurements, unmeasured)


def _unusable_reason(
    p: str, record: dict[str, Any], args: PrecisionsArgs, evidence: EvidenceReader
) -> str:
    if record.get("status") != "measured":
        return str(record.get("reason", "not measured"))
    stored = record["file"].get("stored")
    if stored:
        actual = os.path.getsize(evidence.path(stored))
        if actual != record["file"]["bytes"]:
            raise ValueError(
                f"{stored} holds {actual} bytes, the record says {record['file']['bytes']}"
            )
    graph = record["graph"]
    ops = graph["ops"]
    key = f"int8:{args.int8_method}" if p == "int8" else p
    missing = [op for op in REQUIRED_OPS.get(key, ()) if not ops.get(op)]
    if missing:
        return (
            f"the {p.upper()} graph holds no {', '.join(missing)}: the model was not quantised "
            f"(ops: {ops})"
        )
    if p == "fp16" and not graph["initializer_types"].get("float16"):
        return f"the FP16 graph holds no float16 weights ({graph['initializer_types']})"
    if "timing" not in record:
        return f"{p} ran but was not timed"
    return ""


def _accuracy(p: str, correct: np.ndarray, confidence: float) -> Measurement:
    n, right = len(correct), int(correct.sum())
    return accuracy_percent(
        f"{p}.accuracy",
        right,
        n,
        confidence,
        f"top-1 accuracy of the {p.upper()} model on the {n} held-out samples",
        {"correct": right, "samples": n},
    )


def _accuracy_drop(
    p: str, ref_correct: np.ndarray, correct: np.ndarray, confidence: float
) -> Measurement:
    return paired_drop_pp(
        f"{p}.accuracy_drop",
        ref_correct,
        correct,
        confidence,
        f"FP32 top-1 accuracy minus {p.upper()} top-1 accuracy, same {len(correct)} samples",
    )


def _size(p: str, record: dict[str, Any]) -> Measurement:
    size = record["file"]["bytes"]
    return Measurement(
        id=f"{p}.model_size",
        value=size / MB,
        unit="MB",
        n=1,
        repeats=1,
        method=f"size of the {p.upper()} .onnx file (10^6 bytes)",
        details={"bytes": size, "sha256": record["file"]["sha256"]},
        exact="a file size recorded in the evidence",
    )


def _compression(p: str, fp32: dict[str, Any], record: dict[str, Any]) -> Measurement:
    ref_size, size = fp32["file"]["bytes"], record["file"]["bytes"]
    return Measurement(
        id=f"{p}.compression",
        value=ref_size / size,
        unit="ratio",
        n=1,
        repeats=1,
        method=f"FP32 .onnx file size / {p.upper()} .onnx file size",
        details={"fp32_bytes": ref_size, "bytes": size, "method": record["method"]},
        exact="a ratio of two file sizes recorded in the evidence (the quantisers are "
        "deterministic on the seeded model and calibration set)",
    )
