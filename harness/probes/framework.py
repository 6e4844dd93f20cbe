"""D04 terminal AI inference framework: precisions, language bindings and backends.

`framework.precisions`: the reference model in FP32, FP16, INT8 and INT4 on ONNX Runtime.
collect: builds each variant with onnxruntime's own tools, records the variant's file size
and op counts (the quantised ops must really be there), its top-1 prediction for every
held-out sample, and interleaved timings: per repeat and precision, N single-sample calls
(latency) and M batched calls (throughput), the precisions' order rotated every repeat.
score: accuracy with exact Clopper-Pearson bounds, accuracy drop vs FP32 (pp, bounded by
the share of samples FP32 gets right and the variant wrong), latency and throughput with
order-statistic bounds on the median, speed-ups from the paired per-repeat ratios,
compression = FP32 file size / variant file size, and the count of verified precisions.

`framework.bindings`: per language (c, cpp, java, python) a command that runs the reference
model through that binding (contract: `CommandSpec`); the outputs are compared with ONNX
Runtime's Python FP32 outputs on the same inputs. Without declared bindings the harness's
own Python check is the one binding run (a dry run measures 1 honestly).

`framework.backends`: each declared backend (an ONNX Runtime execution provider, or a
command like a binding) runs the reference model; it counts when its outputs match the
reference and, for an execution provider, when ORT's profiler shows that provider executed
at least `min_node_share` of the nodes (a provider that hands every node to the CPU, like
AzureExecutionProvider, is not a compute backend). Default: every provider onnxruntime
reports available.

Where these come from: a submission whose `sut:` block is the `framework` adapter
(`harness.adapters.framework_sut`) gives the reference `model`/`data` (paths from the
submission's folder), the `bindings` and the `backends`; what it leaves out comes from the
task's suite args, then from the defaults above. collect() writes what it took, and from
where, into the evidence (the model's sha256 and origin in reference.json, each command's
argv, the backend list); score() reads only the evidence and the suite's args.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from harness.adapters._support import one_line
from harness.adapters.framework_sut import FrameworkAdapter, reference_args, submitted_command
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.models import Interval, Measurement, Unmeasured
from harness.probes.accuracy import accuracy_percent, paired_drop_pp
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.framework_support import (
    CPU_PROVIDER,
    HARNESS_PYTHON_BINDING,
    BackendSpec,
    CommandSpec,
    Language,
    Reference,
    ReferenceArgs,
    batch_capacity,
    compare_outputs,
    format_inputs,
    graph_facts,
    input_facts,
    load_reference,
    make_variant,
    parse_stdout,
    predict,
    run_command,
    run_provider,
    session_options,
    sha256_bytes,
    unique_backends,
)
from harness.registry import probes
from harness.stats import median_bounds

Precision = Literal["fp32", "fp16", "int8", "int4"]
ALL_PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8", "int4")

# Harness defaults (the guide says only "meets application needs"): the largest accuracy
# drop vs FP32, in percentage points, for a precision to count as verified.
DEFAULT_TOLERANCE_PP: dict[str, float] = {"fp16": 1.0, "int8": 2.0, "int4": 5.0}

# The ops a variant's graph must hold to be the precision it claims.
REQUIRED_OPS: dict[str, tuple[str, ...]] = {
    "int8:dynamic": ("MatMulInteger", "DynamicQuantizeLinear"),
    "int8:static": ("QLinearMatMul", "QuantizeLinear"),
    "int4": ("com.microsoft.MatMulNBits",),
}
MB = 1e6
FRAMEWORK_ADAPTER = "framework"
HARNESS_SELF_CHECK = "harness self-check (no bindings given)"

A = TypeVar("A", bound=ReferenceArgs)


# ======================================================================== the submission


def _submitted(ctx: CollectContext) -> FrameworkAdapter.Args | None:
    """The submission's `sut:` block, validated with the `framework` adapter's Args, when
    that is its adapter; None otherwise (the suite's args and the defaults apply)."""
    if ctx.sut.adapter != FRAMEWORK_ADAPTER:
        return None
    return FrameworkAdapter.Args.model_validate(ctx.sut.model_dump())


def _with_reference(
    ctx: CollectContext, submitted: FrameworkAdapter.Args | None, args: A
) -> tuple[A, str]:
    """The task's args with the submission's `model`, `data` and `calibration` (absolute
    paths, from the submission's folder) in place of the suite's when the submission gives
    a model; and where the reference model comes from, for the evidence."""
    if submitted is not None and submitted.model is not None:
        label = ctx.sut_base_dir if ctx.sut_base_dir is not None else "(submission)"
        paths = reference_args(submitted, ctx.sut_base_dir, label)
        try:
            merged = type(args).model_validate({**args.model_dump(), **paths})
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "args"
            raise ValueError(
                f"the submission's sut.model with the task's args: {where}: "
                f"{one_line(first['msg'])}"
            ) from None
        return merged, "submission (sut.model, sut.data)"
    if args.model is not None:
        return args, "suite (task args model, data)"
    return args, "harness (seeded scikit-learn digits MLP)"


def _reference_note(evidence: EvidenceReader) -> str:
    """Which reference model the evidence was measured with, for a measurement's method."""
    facts = evidence.read_json("reference.json")
    origin = facts.get("origin", facts.get("source", "unrecorded"))
    return f"Reference model: {origin}, sha256 {facts.get('model_sha256')}."


def _default_tolerances() -> dict[str, float]:
    return dict(DEFAULT_TOLERANCE_PP)


# ======================================================================== precisions


class PrecisionsArgs(ReferenceArgs):
    precisions: list[Precision] = Field(default_factory=lambda: list(ALL_PRECISIONS))
    int8_method: Literal["dynamic", "static"] = "dynamic"
    calibration_samples: int = Field(default=128, ge=1)
    int4_block_size: int = Field(default=32, ge=16)
    int4_symmetric: bool = True
    int4_accuracy_level: int | None = Field(default=None, ge=0, le=4)
    int4_quantizer: Literal["auto", "onnxruntime", "harness"] = "auto"
    tolerance_pp: dict[str, float] = Field(default_factory=_default_tolerances)
    provider: str = CPU_PROVIDER
    intra_op_threads: int | None = Field(default=1, ge=1)
    repeats: int = Field(default=10, ge=5)
    warmup_calls: int = Field(default=20, ge=1)
    min_repeat_s: float = Field(default=0.1, gt=0)
    batch_size: int = Field(default=64, ge=1)
    store_models_max_mb: float = Field(default=64.0, ge=0)

    @field_validator("precisions")
    @classmethod
    def _precisions(cls, value: list[Precision]) -> list[Precision]:
        if "fp32" not in value:
            raise ValueError("fp32 is the reference every other precision is compared with")
        if len(set(value)) != len(value):
            raise ValueError("a precision is listed twice")
        return value

    @field_validator("tolerance_pp")
    @classmethod
    def _tolerances(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(DEFAULT_TOLERANCE_PP))
        if unknown:
            raise ValueError(f"tolerance_pp: unknown precision(s) {unknown} (fp16, int8, int4)")
        if any(not math.isfinite(v) or v < 0 for v in value.values()):
            raise ValueError("tolerance_pp: tolerances are finite numbers >= 0")
        return {**DEFAULT_TOLERANCE_PP, **value}

    @field_validator("int4_block_size")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError(f"the INT4 block size must be a power of 2 (>= 16), not {value}")
        return value

    @model_validator(mode="after")
    def _hidden_fits_blocks(self) -> PrecisionsArgs:
        if self.model is None and self.hidden % self.int4_block_size:
            raise ValueError(
                f"hidden ({self.hidden}) must be a multiple of int4_block_size "
                f"({self.int4_block_size}) so every INT4 block is full"
            )
        if self.model is not None and self.int8_method == "static" and not self.calibration:
            raise ValueError("int8_method static with a submitted model needs `calibration`")
        return self


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


def _batch(session: Any, wanted: int, n: int) -> int:
    capacity = batch_capacity(session)
    return max(1, min(wanted, n, capacity or wanted))


def _time_interleaved(
    ctx: CollectContext, args: PrecisionsArgs, sessions: dict[str, Any], ref: Reference
) -> dict[str, dict[str, Any]]:
    """Per repeat, every precision's single-sample then batched timing, order rotated."""
    order = [p for p in args.precisions if p in sessions]
    if not order:
        return {}
    x = ref.x_test
    plans: dict[str, dict[str, Any]] = {}
    for p in order:
        session = sessions[p]
        name = session.get_inputs()[0].name
        batch = _batch(session, args.batch_size, len(x))
        singles = [{name: x[i : i + 1]} for i in range(len(x))]
        batches = [{name: x[i : i + batch]} for i in range(0, len(x) - batch + 1, batch)]
        per_call = _warm(session, singles, args.warmup_calls)
        per_batch = _warm(session, batches, max(2, args.warmup_calls // 4))
        plans[p] = {
            "session": session,
            "singles": singles,
            "batches": batches,
            "calls": max(1, math.ceil(args.min_repeat_s / max(per_call, 1e-9))),
            "batch_calls": max(1, math.ceil(args.min_repeat_s / max(per_batch, 1e-9))),
            "batch_size": batch,
            "single_s": [],
            "batch_s": [],
        }
    for r in range(args.repeats):
        ctx.progress(f"timing repeat {r + 1}/{args.repeats}")
        rotated = order[r % len(order) :] + order[: r % len(order)]
        for kind in ("single", "batch"):
            for p in rotated:
                plan = plans[p]
                feeds = plan["singles"] if kind == "single" else plan["batches"]
                count = plan["calls"] if kind == "single" else plan["batch_calls"]
                plan[f"{kind}_s"].append(_timed(plan["session"], feeds, count))
    return {
        p: {
            "single": {"calls": plan["calls"], "batch_size": 1, "repeat_s": plan["single_s"]},
            "batch": {
                "calls": plan["batch_calls"],
                "batch_size": plan["batch_size"],
                "repeat_s": plan["batch_s"],
            },
        }
        for p, plan in plans.items()
    }


def _warm(session: Any, feeds: list[dict[str, Any]], calls: int) -> float:
    """Run `calls` warm-up calls; the seconds per call of the last half."""
    _timed(session, feeds, max(1, calls // 2))
    half = max(1, calls - calls // 2)
    return _timed(session, feeds, half) / half


def _timed(session: Any, feeds: list[dict[str, Any]], count: int) -> float:
    run = session.run
    k = len(feeds)
    t0 = time.perf_counter()
    for i in range(count):
        run(None, feeds[i % k])
    return time.perf_counter() - t0


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


def _per_call(record: dict[str, Any], kind: str) -> list[float]:
    t = record["timing"][kind]
    return [s / t["calls"] for s in t["repeat_s"]]


def _rates(record: dict[str, Any]) -> list[float]:
    t = record["timing"]["batch"]
    return [t["calls"] * t["batch_size"] / s for s in t["repeat_s"]]


def _bounded(
    mid: str,
    samples: list[float],
    unit: str,
    scale: float,
    confidence: float,
    n: int,
    method: str,
    details: dict[str, Any],
) -> Measurement:
    b = median_bounds(samples, confidence)
    return Measurement(
        id=mid,
        value=b.median * scale,
        unit=unit,
        n=n,
        repeats=len(samples),
        ci=Interval(
            low=None if b.low is None else b.low * scale,
            high=None if b.high is None else b.high * scale,
            confidence=confidence,
            method="one-sided distribution-free order-statistic bounds on the median repeat",
            need=""
            if b.low is not None
            else f"need at least {b.min_n} repeats for a {confidence:.0%} bound",
        ),
        method=method,
        details=details,
    )


def _timing_measurements(p: str, record: dict[str, Any], confidence: float) -> list[Measurement]:
    single = record["timing"]["single"]
    batch = record["timing"]["batch"]
    repeats = len(single["repeat_s"])
    lat = _bounded(
        f"{p}.latency",
        _per_call(record, "single"),
        "ms",
        1e3,
        confidence,
        single["calls"] * repeats,
        f"single-sample latency: median over {repeats} repeats of {single['calls']} "
        "back-to-back session.run calls (held-out samples in turn), precisions interleaved",
        {"min_ms": min(_per_call(record, "single")) * 1e3},
    )
    thr = _bounded(
        f"{p}.throughput",
        _rates(record),
        "samples/s",
        1.0,
        confidence,
        batch["calls"] * batch["batch_size"] * repeats,
        f"batched throughput: median over {repeats} repeats of {batch['calls']} calls of "
        f"batch {batch['batch_size']}",
        {"batch_size": batch["batch_size"]},
    )
    return [lat, thr]


def _speedups(
    p: str, fp32: dict[str, Any], record: dict[str, Any], confidence: float
) -> list[Measurement]:
    ref_lat, lat = _per_call(fp32, "single"), _per_call(record, "single")
    ref_thr, thr = _rates(fp32), _rates(record)
    pairs = min(len(ref_lat), len(lat))
    latency_ratio = [ref_lat[i] / lat[i] for i in range(pairs)]
    throughput_ratio = [thr[i] / ref_thr[i] for i in range(pairs)]
    return [
        _bounded(
            f"{p}.speedup",
            latency_ratio,
            "ratio",
            1.0,
            confidence,
            pairs,
            f"FP32 / {p.upper()} single-sample latency, per repeat (the two were timed in the "
            "same repeat); median of the paired ratios",
            {"fp32_median_ms": statistics.median(ref_lat) * 1e3},
        ),
        _bounded(
            f"{p}.throughput_speedup",
            throughput_ratio,
            "ratio",
            1.0,
            confidence,
            pairs,
            f"{p.upper()} / FP32 batched throughput, per repeat; median of the paired ratios",
            {"fp32_median_samples_per_s": statistics.median(ref_thr)},
        ),
    ]


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
    )


# ======================================================================== shared: reference run


class CheckArgs(ReferenceArgs):
    inputs: int = Field(default=64, ge=1)  # held-out samples sent to each binding / backend
    store_model_max_mb: float = Field(default=64.0, ge=0)


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


# ======================================================================== bindings


class BindingsArgs(CheckArgs):
    bindings: dict[Language, CommandSpec] | None = None
    tolerance: float = Field(default=1e-4, gt=0)  # max |diff| / max |reference|


@probes.register("framework.bindings")
class BindingsProbe:
    name: ClassVar[str] = "framework.bindings"
    Args: ClassVar[type[BaseModel]] = BindingsArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"working_bindings": "count"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, BindingsArgs)
        return 1 + (len(args.bindings) if args.bindings else 1)

    def collect(self, ctx: CollectContext) -> list[str]:
        import sys

        assert isinstance(ctx.args, BindingsArgs)
        submitted = _submitted(ctx)
        args, origin = _with_reference(ctx, submitted, ctx.args)
        ctx.progress("reference outputs")
        bindings: dict[str, CommandSpec]
        if submitted is not None and submitted.bindings is not None:
            source = "submission (sut.bindings)"
            bindings = {
                str(lang): submitted_command(spec, ctx.sut_base_dir)
                for lang, spec in submitted.bindings.items()
            }
        elif args.bindings is not None:
            source = "suite (task args bindings)"
            bindings = {str(lang): spec for lang, spec in args.bindings.items()}
        else:
            source = HARNESS_SELF_CHECK
            bindings = {
                "python": CommandSpec(
                    argv=[sys.executable, "-c", HARNESS_PYTHON_BINDING, "{model}", "{input}"],
                    timeout_s=120.0,
                )
            }
        failures: list[str] = []
        with tempfile.TemporaryDirectory() as tmp:
            model, inputs, _ = _prepare_reference(ctx, args, Path(tmp), origin)
            for lang, spec in bindings.items():
                ctx.progress(f"binding {lang}")
                record = _run_and_store(ctx.evidence, f"bindings/{lang}", spec, model, inputs)
                record.update(language=lang, declared_argv=spec.argv, source=source)
                ctx.evidence.write_json(f"bindings/{lang}.json", record)
                if record["status"] != "ran":
                    failures.append(f"binding {lang}: {record['reason']}")
        ctx.evidence.write_json(
            "bindings.json",
            {
                "languages": list(bindings),
                "source": source,
                "declared": {lang: spec.model_dump() for lang, spec in bindings.items()},
            },
        )
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, BindingsArgs)
        reference = _reference_outputs(evidence)
        index = evidence.read_json("bindings.json")
        languages = index["languages"]
        details: dict[str, Any] = {}
        working = 0
        for lang in languages:
            record = evidence.read_json(f"bindings/{lang}.json")
            ok, reason, detail = _judge_command(evidence, record, reference, args.tolerance)
            working += ok
            details[lang] = {
                "status": reason,
                "source": record["source"],
                "argv": record["declared_argv"],
                "cwd": record.get("cwd"),
                "exit_code": record.get("exit_code"),
                "wall_s": record.get("wall_s"),
                **({"comparison": detail} if detail else {}),
            }
        measurement = Measurement(
            id="working_bindings",
            value=float(working),
            unit="count",
            n=len(languages),
            repeats=1,
            method=(
                f"language bindings (of c, cpp, java, python) whose command ran the reference "
                f"model on {len(reference)} held-out inputs and printed outputs matching ONNX "
                f"Runtime Python FP32 within {args.tolerance:g} of max |reference|; the "
                "language and the command line are as declared (source: "
                f"{index.get('source', 'unrecorded')}) and recorded. "
                + _reference_note(evidence)
                + " "
                + _summary(details)
            ),
            details=details,
        )
        return ScoreResult([measurement], [])


# ======================================================================== backends


class BackendsArgs(CheckArgs):
    backends: list[BackendSpec] | None = None
    tolerance: float = Field(default=1e-2, gt=0)  # reduced-precision hardware allowed
    min_node_share: float = Field(default=0.5, gt=0, le=1)
    intra_op_threads: int | None = Field(default=None, ge=1)

    _unique = field_validator("backends")(unique_backends)


@probes.register("framework.backends")
class BackendsProbe:
    name: ClassVar[str] = "framework.backends"
    Args: ClassVar[type[BaseModel]] = BackendsArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"working_backends": "count"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, BackendsArgs)
        if args.backends is not None:
            return 1 + len(args.backends)
        import onnxruntime as ort

        return 1 + len(ort.get_available_providers())

    def collect(self, ctx: CollectContext) -> list[str]:
        import onnxruntime as ort

        assert isinstance(ctx.args, BackendsArgs)
        submitted = _submitted(ctx)
        args, origin = _with_reference(ctx, submitted, ctx.args)
        available = list(ort.get_available_providers())
        backends: list[BackendSpec]
        if submitted is not None and submitted.backends is not None:
            source = "submission (sut.backends)"
            backends = [
                b
                if b.command is None
                else b.model_copy(
                    update={"command": submitted_command(b.command, ctx.sut_base_dir)}
                )
                for b in submitted.backends
            ]
        elif args.backends is not None:
            source = "suite (task args backends)"
            backends = list(args.backends)
        else:
            source = "onnxruntime.get_available_providers()"
            backends = [BackendSpec(name=p, provider=p) for p in available]
        ctx.progress("reference outputs")
        failures: list[str] = []
        with tempfile.TemporaryDirectory() as tmp:
            model, inputs, _ = _prepare_reference(ctx, args, Path(tmp), origin)
            x = _read_inputs(inputs, model)
            for spec in backends:
                ctx.progress(f"backend {spec.name}")
                stem = f"backends/{spec.name}"
                if spec.command is not None:
                    record = _run_and_store(ctx.evidence, stem, spec.command, model, inputs)
                    record.update(kind="command", declared_argv=spec.command.argv)
                elif spec.provider not in available:
                    record = {
                        "kind": "provider",
                        "provider": spec.provider,
                        "status": "not_run",
                        "reason": f"{spec.provider} is not available in this onnxruntime "
                        f"{ort.__version__} build (available: {', '.join(available)})",
                    }
                else:
                    assert spec.provider is not None
                    record = run_provider(
                        model.read_bytes(),
                        x,
                        spec.provider,
                        spec.provider_options,
                        args.intra_op_threads,
                    )
                    record["kind"] = "provider"
                record.update(name=spec.name, chip=spec.chip)
                ctx.evidence.write_json(f"{stem}.json", record)
                if record["status"] not in ("ran",):
                    failures.append(f"backend {spec.name}: {record['reason']}")
        ctx.evidence.write_json(
            "backends.json",
            {
                "names": [b.name for b in backends],
                "source": source,
                "declared": [b.model_dump() for b in backends],
                "available_providers": available,
            },
        )
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, BackendsArgs)
        reference = _reference_outputs(evidence)
        index = evidence.read_json("backends.json")
        details: dict[str, Any] = {}
        working = 0
        for name in index["names"]:
            record = evidence.read_json(f"backends/{name}.json")
            if record["kind"] == "command":
                ok, reason, detail = _judge_command(evidence, record, reference, args.tolerance)
            else:
                ok, reason, detail = _judge_provider(record, reference, args)
            working += ok
            details[name] = {
                "status": reason,
                "kind": record["kind"],
                "chip": record.get("chip", ""),
                **(
                    {"argv": record.get("declared_argv", record.get("argv"))}
                    if record["kind"] == "command"
                    else {"provider": record.get("provider")}
                ),
                **({"comparison": detail} if detail else {}),
            }
        measurement = Measurement(
            id="working_backends",
            value=float(working),
            unit="count",
            n=len(index["names"]),
            repeats=1,
            method=(
                f"backends (source: {index['source']}) that ran the reference model on "
                f"{len(reference)} held-out inputs with outputs within {args.tolerance:g} of "
                "max |reference| (ONNX Runtime Python CPU FP32) and no top-1 change; an "
                f"execution provider must have executed >= {args.min_node_share:.0%} of the "
                "nodes itself (ORT profiler). "
                + _reference_note(evidence)
                + " "
                + _summary(details)
            ),
            details=details,
        )
        return ScoreResult([measurement], [])


def _read_inputs(inputs: Path, model: Path) -> np.ndarray:
    """The inputs exactly as the commands see them, shaped for the model."""
    rows = [
        [float(v) for v in line.split()]
        for line in inputs.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    shape = input_facts(model.read_bytes())["input_shape"][1:]
    dims = [d if isinstance(d, int) else -1 for d in shape]
    return np.asarray(rows, dtype=np.float32).reshape([len(rows), *dims])


def _judge_provider(
    record: dict[str, Any], reference: np.ndarray, args: BackendsArgs
) -> tuple[bool, str, dict[str, Any]]:
    if record.get("status") != "ran":
        return False, str(record.get("reason", record.get("status"))), {}
    provider = record["provider"]
    nodes = record["nodes"]
    by_provider: dict[str, int] = {}
    for node in nodes:
        by_provider[node["provider"]] = by_provider.get(node["provider"], 0) + 1
    own = by_provider.get(provider, 0)
    share = own / len(nodes) if nodes else 0.0
    detail: dict[str, Any] = {"nodes_by_provider": by_provider, "node_share": share}
    if share < args.min_node_share:
        others = ", ".join(f"{k}: {v}" for k, v in sorted(by_provider.items()))
        return (
            False,
            f"{provider} executed {own} of the model's {len(nodes)} nodes ({others}); "
            f"below {args.min_node_share:.0%}: not a compute backend for this model",
            detail,
        )
    ok, comparison = compare_outputs(
        np.asarray(record["outputs"], dtype=np.float64), reference, "values", args.tolerance
    )
    detail.update(comparison)
    if not ok:
        rel = comparison.get("max_rel_err")
        return (
            False,
            f"wrong output: max error {rel} of max |reference| (tolerance {args.tolerance:g})",
            detail,
        )
    return True, "ok", detail
