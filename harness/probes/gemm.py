"""`compute.gemm`: dense GEMM throughput per precision on a CPU or CUDA device through torch.

collect: for every precision, a correctness check against a float64 reference on a small
size, then a pilot sweep of square sizes (warm-ups and a few timed pilot repeats each,
device synchronised around each timed region), then fresh timed repeats of the size the
pilot found fastest. Every raw time goes to the evidence.
score: throughput per repeat = 2mnk / seconds, with m, n, k from the evidence; the size is
re-chosen from the pilot data, and its figure is the median of the fresh repeats with
distribution-free bounds. Choosing and bounding on separate samples keeps the bound honest:
the best of several equal sizes, bounded on the samples that chose it, is biased upwards.
The correctness check's pass is re-derived from its recorded error and this code's
tolerance. On a CPU, a precision counts as executing only where the CPU has a native
instruction for it (from the recorded flags); INT4 is weight-only (W4A16) and counts only
where the suite says so. Percent of the nominal peak when the system description gives one.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.cpu_features import emulated_reason, native_instruction, read_flags
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.device import is_oom, synchronizer
from harness.registry import probes
from harness.schema import HardwareDescription, Interval, Measurement, Unmeasured
from harness.stats import median_bounds
from harness.units import convert

Precision = Literal["fp32", "tf32", "bf16", "fp16", "int8", "int4"]
ALL_PRECISIONS: tuple[Precision, ...] = ("fp32", "tf32", "bf16", "fp16", "int8", "int4")

# Largest error allowed in the check, relative to max |reference|. The reference is
# computed in float64 from the very inputs the kernel saw (after rounding to its type), so
# the error comes only from accumulation and output rounding.
TOLERANCE: dict[str, float] = {
    "fp32": 1e-5,
    "tf32": 1e-2,  # 10-bit mantissa inputs
    "bf16": 1e-2,  # bf16 output rounding (2^-9)
    "fp16": 5e-3,  # fp16 output rounding (2^-11)
    "int8": 0.0,  # integer accumulation is exact
    "int4": 1e-2,  # bf16 activations and output
}
ACCUMULATION: dict[str, str] = {
    "fp32": "fp32 inputs, fp32 accumulation, fp32 output",
    "tf32": "tf32 inputs (fp32 storage), fp32 accumulation, fp32 output",
    "bf16": "bf16 inputs, fp32 accumulation (backend), bf16 output",
    "fp16": "fp16 inputs, fp32 accumulation (backend), fp16 output",
    "int8": "int8 x int8 inputs, int32 accumulation, int32 output (torch._int_mm)",
    "int4": (
        "W4A16: int4 weights (group-wise scales) x bf16 activations, dequantised in the "
        "kernel, fp32 accumulation, bf16 output (torch._weight_int4pack_mm)"
    ),
}
OPS_UNIT = {"int8": "TOPS", "int4": "TOPS"}  # the rest are TFLOPS


def ops_unit(precision: str) -> str:
    return OPS_UNIT.get(precision, "TFLOPS")


class GemmArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    precisions: list[Precision] = Field(min_length=1)
    sizes: dict[Literal["cpu", "cuda"], list[int]]
    repeats: int = Field(default=10, ge=1)
    # timed repeats of every size that only choose the size; the figure's repeats are fresh
    pilot_repeats: int = Field(default=3, ge=1)
    warmup: int = Field(default=2, ge=1)
    min_repeat_s: float = Field(default=0.2, gt=0)
    max_size_s: float = Field(default=30.0, gt=0)
    check_size: int = Field(default=256, ge=32)
    int4_group_size: int = Field(default=32, ge=32)
    # the precisions counted by the `verified_precisions` metric (default: all requested)
    verify: list[Precision] | None = None
    # torch's INT4 GEMM is weight-only (int4 weights, bf16 arithmetic): it counts toward
    # `verified_precisions` only where the suite says weight-only INT4 counts
    int4_weight_only_counts: bool = False

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, sizes: dict[str, list[int]]) -> dict[str, list[int]]:
        for kind, values in sizes.items():
            if not values:
                raise ValueError(f"sizes.{kind} is empty")
            for v in values:
                if v < 32 or v % 32:
                    raise ValueError(f"sizes.{kind}: {v} is not a multiple of 32 (>= 32)")
        return sizes


# ------------------------------------------------------------------------ device support


def _cuda_capability(device: str) -> tuple[int, int] | None:
    import torch

    if not device.startswith("cuda"):
        return None
    return tuple(torch.cuda.get_device_capability(device))  # type: ignore[return-value]


def unsupported_reason(precision: str, device: str) -> str | None:
    """Why this device cannot run the precision, or None when it can."""
    import torch

    cap = _cuda_capability(device)
    if precision == "tf32":
        if cap is None:
            return (
                "TF32 is a tensor-core format of NVIDIA Ampere-or-newer GPUs; on a CPU torch "
                "accepts the TF32 setting silently and runs plain FP32, so no TF32 figure exists"
            )
        if cap < (8, 0):
            return f"TF32 needs compute capability >= 8.0 (Ampere); this GPU has {cap[0]}.{cap[1]}"
    if precision == "bf16" and cap is not None and cap < (8, 0):
        return f"BF16 tensor cores need compute capability >= 8.0; this GPU has {cap[0]}.{cap[1]}"
    if precision == "int8" and not hasattr(torch, "_int_mm"):
        return f"torch {torch.__version__} has no integer GEMM (torch._int_mm)"
    if precision == "int4":
        if cap is None and not hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu"):
            return f"torch {torch.__version__} has no INT4 GEMM kernel for the CPU"
        if cap is not None and cap < (8, 0):
            return (
                "torch's INT4 GEMM kernel needs compute capability >= 8.0; "
                f"this GPU has {cap[0]}.{cap[1]}"
            )
    return None


# ------------------------------------------------------------------------ kernels


@dataclass
class Kernel:
    """A ready-to-run GEMM of one precision and size, plus the float64 reference inputs."""

    run: Callable[[], Any]
    output: Callable[[], Any]  # the result of one run, as float64 on the CPU
    reference: Callable[[], Any]  # the exact product of the inputs the kernel saw, float64
    inputs: dict[str, Any]  # the operands as the kernel saw them (for independent checks)


def _tf32(enabled: bool | str) -> Any:
    """Set cuBLAS FP32 matmuls to TF32 (True) or IEEE FP32 (False), or back to a value this
    returned before; returns the previous value. torch >= 2.9 has the per-backend
    `fp32_precision` ("tf32", "ieee" or "none" = inherit) that the CUDA BLAS calls read; the
    legacy `allow_tf32` getter raises while only the new setting says TF32, so only the new
    API is used where it exists."""
    import torch

    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        previous = matmul.fp32_precision
        if isinstance(enabled, bool):
            enabled = "tf32" if enabled else "ieee"
        matmul.fp32_precision = enabled
        return previous
    previous = matmul.allow_tf32  # older torch
    matmul.allow_tf32 = enabled == "tf32" if isinstance(enabled, str) else enabled
    return previous


def int4_inner_k_tiles(k: int) -> int:
    """innerKTiles for torch's CUDA INT4 packing: the largest of 8, 4, 2 whose k-tile group
    (innerKTiles x 16) divides k (int4mm.cu checks k % (innerKTiles * 16) == 0)."""
    for tiles in (8, 4, 2):
        if k % (tiles * 16) == 0:
            return tiles
    raise ValueError(f"k = {k} is not a multiple of 32, which torch's CUDA INT4 kernel needs")


CUDA_INT4_GROUP_SIZES = (32, 64, 128, 256)  # the only qGroupSize int4mm.cu instantiates


def make_kernel(precision: str, size: int, device: str, seed: int, group_size: int) -> Kernel:
    import torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    m = n = k = size
    if precision in ("fp32", "tf32", "bf16", "fp16"):
        dtype = {
            "fp32": torch.float32,
            "tf32": torch.float32,
            "bf16": torch.bfloat16,
            "fp16": torch.float16,
        }[precision]
        a = torch.randn(m, k, generator=gen).to(dtype).to(device)
        b = torch.randn(k, n, generator=gen).to(dtype).to(device)
        out = torch.empty(m, n, dtype=dtype, device=device)

        def run() -> Any:
            return torch.matmul(a, b, out=out)

        # TF32 rounds the inputs inside the tensor core; the reference keeps the fp32
        # inputs, so the check measures the real TF32 error against exact arithmetic.
        def reference() -> Any:
            return a.double().cpu() @ b.double().cpu()

        def output() -> Any:
            return run().double().cpu()

        return Kernel(run, output, reference, {"a": a, "b": b})

    if precision == "int8":
        a8 = torch.randint(-128, 128, (m, k), generator=gen, dtype=torch.int8).to(device)
        b8 = torch.randint(-128, 128, (k, n), generator=gen, dtype=torch.int8)
        # On CUDA, mat2 goes column-major (the same values, stored as the transpose): that is
        # the layout cuBLASLt's int8 GEMM has kernels for; PyTorch's own test__int_mm expects
        # row-major x row-major to fail on CUDA 13 and before Ampere. CUDA also needs m > 16
        # and k, n multiples of 8 (Blas.cpp _int_mm_out_cuda): sizes are multiples of 32.
        b8 = b8.T.contiguous().to(device).T if device.startswith("cuda") else b8.to(device)

        def run8() -> Any:
            return torch._int_mm(a8, b8)

        def ref8() -> Any:
            return (a8.cpu().long() @ b8.cpu().long()).double()

        return Kernel(run8, lambda: run8().double().cpu(), ref8, {"a": a8, "b": b8})

    if precision == "int4":
        if k % group_size:
            raise ValueError(f"size {k} is not a multiple of the INT4 group size {group_size}")
        x = torch.randn(m, k, generator=gen).to(torch.bfloat16)
        w = torch.randint(0, 16, (n, k), generator=gen, dtype=torch.int32)  # unsigned nibbles
        scales = (torch.rand(k // group_size, n, generator=gen) * 0.1 + 0.01).to(torch.bfloat16)
        zeros = torch.zeros_like(scales)
        scale_zero = torch.stack([scales, zeros], dim=-1).contiguous()  # [k/g, n, 2]
        if device.startswith("cuda"):
            if group_size not in CUDA_INT4_GROUP_SIZES:
                raise ValueError(
                    f"torch's CUDA INT4 kernel takes group sizes {CUDA_INT4_GROUP_SIZES}, "
                    f"not {group_size}"
                )
            # [n, k/2] uint8, the even k in the high nibble (int4mm.cu
            # matrix_to_m16n8k16_Bint4_layout); scale_zero [k/g, n, 2] bf16, read as bf16
            # without a dtype check; the kernel dequantises (q - 8) * scale + zero.
            packed_in = ((w[:, ::2] << 4) | w[:, 1::2]).to(torch.uint8).to(device)
            packed = torch._convert_weight_to_int4pack(packed_in, int4_inner_k_tiles(k))
            xd, szd = x.to(device), scale_zero.to(device)

            def run4() -> Any:
                return torch._weight_int4pack_mm(xd, packed, group_size, szd)

        else:
            packed = torch._convert_weight_to_int4pack_for_cpu(w, 1)

            def run4() -> Any:
                return torch._weight_int4pack_mm_for_cpu(x, packed, group_size, scale_zero)

        def ref4() -> Any:
            # The kernel dequantises a nibble q as (q - 8) * scale + zero, per group of k.
            s = scales.double().repeat_interleave(group_size, dim=0)  # [k, n]
            dequant = (w.double().T - 8.0) * s
            return x.double() @ dequant

        inputs = {"x": x, "w_nibbles": w, "scales": scales, "group_size": group_size}
        return Kernel(run4, lambda: run4().double().cpu(), ref4, inputs)

    raise ValueError(f"unknown precision {precision}")


# ------------------------------------------------------------------------ the probe


@probes.register("compute.gemm")
class GemmProbe:
    name: ClassVar[str] = "compute.gemm"
    Args: ClassVar[type[BaseModel]] = GemmArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, GemmArgs)
        names: dict[str, str] = {}
        for p in args.precisions:
            names[f"{p}.throughput"] = ops_unit(p)
            names[f"{p}.percent_of_peak"] = "%"
        names["verified_precisions"] = "count"
        return names

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, GemmArgs)
        return len(args.precisions) * (1 + max(len(v) for v in args.sizes.values()))

    # ---------------------------------------------------------------- collect

    def collect(self, ctx: CollectContext) -> list[str]:
        import torch

        args = ctx.args
        assert isinstance(args, GemmArgs)
        device = ctx.device
        kind: Literal["cpu", "cuda"] = "cuda" if device.startswith("cuda") else "cpu"
        sizes = sorted(args.sizes.get(kind) or [])
        failures: list[str] = []
        ctx.evidence.write_json("device.json", _device_facts(device))
        if not sizes:
            for p in args.precisions:
                ctx.evidence.write_json(
                    f"{p}.json",
                    {
                        "precision": p,
                        "status": "unsupported",
                        "reason": f"the suite gives no sizes for a {kind} device",
                    },
                )
            return failures
        sync = synchronizer(device)
        for index, precision in enumerate(args.precisions):
            seed = ctx.seed * 1000 + index
            record: dict[str, Any] = {
                "precision": precision,
                "device": device,
                "accumulation": ACCUMULATION[precision],
                "seed": seed,
            }
            reason = unsupported_reason(precision, device)
            if reason:
                record.update(status="unsupported", reason=reason)
                ctx.evidence.write_json(f"{precision}.json", record)
                ctx.progress(f"{precision}: not supported")
                continue
            saved_tf32 = _tf32(precision == "tf32")
            try:
                ctx.progress(f"{precision}: correctness check")
                record["check"] = _check(precision, args, device, seed)
                record["sizes"] = self._sweep(ctx, precision, sizes, seed, sync)
                record["status"] = "measured"
            except Exception as error:  # a kernel the device claims but fails to run
                record.update(status="error", reason=f"{type(error).__name__}: {error}")
                failures.append(f"{precision}: {record['reason']}")
            finally:
                _tf32(saved_tf32)
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
            ctx.evidence.write_json(f"{precision}.json", record)
        return failures

    def _sweep(
        self,
        ctx: CollectContext,
        precision: str,
        sizes: list[int],
        seed: int,
        sync: Callable[[], None],
    ) -> list[dict[str, Any]]:
        """The pilot of every size, then fresh repeats of the size the pilot chose."""
        args = ctx.args
        assert isinstance(args, GemmArgs)
        results: list[dict[str, Any]] = []
        per_op_prev: tuple[int, float] | None = None  # (size, seconds per op)
        for size in sizes:
            ctx.progress(f"{precision}: {size}x{size}x{size} (pilot)")
            entry: dict[str, Any] = {"m": size, "n": size, "k": size}
            if per_op_prev is not None:
                prev_size, prev_s = per_op_prev
                estimate = prev_s * (size / prev_size) ** 3
                planned = estimate * (args.warmup + args.pilot_repeats + args.repeats)
                if planned > args.max_size_s:
                    entry.update(
                        status="skipped",
                        reason=f"estimated {planned:.1f} s for warm-up, pilot and repeats "
                        f"exceeds the {args.max_size_s:g} s budget per size",
                    )
                    results.append(entry)
                    continue
            try:
                kernel = make_kernel(precision, size, ctx.device, seed, args.int4_group_size)
                warm_s = _timed(kernel.run, 1, args.warmup, sync)
                iters = max(1, math.ceil(args.min_repeat_s / max(warm_s[-1], 1e-9)))
                pilot_s = _timed(kernel.run, iters, args.pilot_repeats, sync)
                del kernel
            except Exception as error:
                if not is_oom(error):
                    raise
                entry.update(status="skipped", reason=f"out of memory: {error}")
                results.append(entry)
                break
            entry.update(status="measured", warmup_s=warm_s, iters=iters, pilot_s=pilot_s)
            results.append(entry)
            per_op_prev = (size, min(pilot_s) / iters)
        chosen = choose_size(results)
        if chosen is not None:
            ctx.progress(f"{precision}: {chosen['m']}x{chosen['n']}x{chosen['k']} (repeats)")
            kernel = make_kernel(precision, chosen["m"], ctx.device, seed, args.int4_group_size)
            chosen["final_warmup_s"] = _timed(kernel.run, 1, 1, sync)
            chosen["repeat_s"] = _timed(kernel.run, chosen["iters"], args.repeats, sync)
            del kernel
        return results

    # ---------------------------------------------------------------- score

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, GemmArgs)
        device = evidence.read_json("device.json")
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        verified: dict[str, str] = {}

        def not_measured(precision: str, reason: str) -> None:
            for metric in (f"{precision}.throughput", f"{precision}.percent_of_peak"):
                unmeasured.append(Unmeasured(id=metric, reason=reason))

        for precision in args.precisions:
            record = evidence.read_json(f"{precision}.json")
            status = record.get("status")
            if status != "measured":
                reason = record.get("reason", "not measured")
                verified[precision] = f"not run: {reason}"
                not_measured(precision, reason)
                continue
            mismatch = evidence_mismatch(record, args, device)
            if mismatch:
                reason = f"the evidence does not match the suite's arguments: {mismatch}"
                verified[precision] = reason
                not_measured(precision, reason)
                continue
            failed = check_failure(precision, record["check"])
            if failed:
                verified[precision] = failed
                not_measured(precision, failed)
                continue
            label = precision_label(precision, device, args)
            verified[precision] = label.counted
            try:
                selected = select_and_bound(record["sizes"], ctx.confidence)
            except ValueError as error:
                not_measured(precision, str(error))
                continue
            if selected is None:
                reason = "no size could be timed: " + "; ".join(
                    f"{s['m']}: {s.get('reason', '')}" for s in record["sizes"]
                )
                not_measured(precision, reason)
                continue
            measurement = _throughput(precision, record, selected, label, device, ctx)
            measurements.append(measurement)
            peak = nominal_peak(ctx.hardware, precision, device)
            if peak is None:
                if ctx.hardware is None:
                    which = device.get("cpu_id") or device.get("name", "this device")
                    reason = (
                        f"no system description for this SUT: no shipped description matches "
                        f"{which} (vendor, family, model range and flags), and a guessed peak "
                        "is no peak; a submission can name one (`hardware:`)"
                    )
                elif label.instruction is None and precision != "int4":
                    reason = f"no nominal peak: {label.note}"
                else:
                    reason = (
                        f"the system description {ctx.hardware.id} gives no nominal peak for "
                        f"{precision}"
                    )
                unmeasured.append(Unmeasured(id=f"{precision}.percent_of_peak", reason=reason))
            else:
                measurements.append(_percent_of_peak(precision, measurement, peak, ctx))
        wanted = args.verify or list(args.precisions)
        measurements.append(
            Measurement(
                id="verified_precisions",
                value=float(sum(1 for p in wanted if verified.get(p) == "ok")),
                unit="count",
                n=len(wanted),
                repeats=1,
                method="precisions that executed on the device with a native instruction "
                "(on a CPU, from its recorded flags) and matched a float64 reference within "
                f"tolerance, out of {', '.join(wanted)}; emulated and weight-only precisions "
                "are measured and shown, and counted only as the suite says",
                details={p: verified.get(p, "not requested") for p in wanted},
            )
        )
        return ScoreResult(measurements, unmeasured)


def _throughput(
    precision: str,
    record: dict[str, Any],
    selected: tuple[dict[str, Any], Any],
    label: PrecisionLabel,
    device: dict[str, Any],
    ctx: ScoreContext,
) -> Measurement:
    size_entry, bounds = selected
    unit = ops_unit(precision)
    scale = convert(1.0, "OPS" if unit == "TOPS" else "FLOPS", unit)
    per_size = {
        str(s["m"]): (
            statistics.median(_rates(s, "pilot_s")) * scale
            if s["status"] == "measured"
            else s["reason"]
        )
        for s in record["sizes"]
    }
    repeats = len(size_entry["repeat_s"])
    interval = Interval(
        low=None if bounds.low is None else bounds.low * scale,
        high=None if bounds.high is None else bounds.high * scale,
        confidence=ctx.confidence,
        method="one-sided distribution-free order-statistic bounds on the median repeat "
        "(fresh repeats, not the pilot that chose the size)",
        need=(
            ""
            if bounds.low is not None
            else f"need at least {bounds.min_n} timed repeats for a "
            f"{ctx.confidence:.0%} bound (have {repeats})"
        ),
    )
    rates = _rates(size_entry, "repeat_s")
    pilots = len(size_entry["pilot_s"])
    return Measurement(
        id=f"{precision}.throughput",
        value=bounds.median * scale,
        unit=unit,
        n=size_entry["iters"] * repeats,
        repeats=repeats,
        ci=interval,
        method=(
            f"{label.name}: dense square GEMM sweep {sorted(int(k) for k in per_size)}; "
            f"size chosen by the median of {pilots} pilot repeats per size, then "
            f"{repeats} fresh timed repeats of {size_entry['iters']} back-to-back GEMMs, "
            "device synchronised; "
            f"{ACCUMULATION[precision]}" + (f"; {label.note}" if label.note else "")
        ),
        details={
            "label": label.name,
            "instruction": label.instruction,
            "best_size": [size_entry["m"], size_entry["n"], size_entry["k"]],
            "median_by_size": per_size,  # medians of the pilot repeats
            "min": min(rates) * scale,
            "max": max(rates) * scale,
            "accumulation": record["accumulation"],
            "correctness": record["check"],
            "device": device.get("name", record["device"]),
        },
    )


def _percent_of_peak(
    precision: str, throughput: Measurement, peak: tuple[float, str], ctx: ScoreContext
) -> Measurement:
    peak_value, peak_how = peak
    ratio = 100.0 / peak_value
    interval = throughput.ci
    assert interval is not None
    return Measurement(
        id=f"{precision}.percent_of_peak",
        value=throughput.value * ratio,
        unit="%",
        n=throughput.n,
        repeats=throughput.repeats,
        ci=Interval(
            low=None if interval.low is None else interval.low * ratio,
            high=None if interval.high is None else interval.high * ratio,
            confidence=ctx.confidence,
            method=interval.method,
            need=interval.need,
        ),
        method=f"achieved {precision} throughput / nominal dense peak ({peak_how})",
        details={"nominal_peak": peak_value, "unit": throughput.unit},
    )


@dataclass(frozen=True)
class PrecisionLabel:
    """How a precision ran: its report name, the native instruction (None: emulated), why it
    does or does not count as executing, and a note for the method."""

    name: str
    instruction: str | None
    counted: str  # "ok", or why it is not counted
    note: str = ""


def precision_label(precision: str, device: dict[str, Any], args: GemmArgs) -> PrecisionLabel:
    on_cuda = str(device.get("device", "")).startswith("cuda")
    if precision == "int4":
        name = "INT4 (W4A16, weight-only)"
        if args.int4_weight_only_counts:
            return PrecisionLabel(name, None, "ok", "weight-only INT4 counts in this suite")
        why = (
            "weight-only INT4 (int4 weights, bf16 arithmetic): this suite counts only "
            "INT4 arithmetic (int4_weight_only_counts is false)"
        )
        return PrecisionLabel(name, None, why, why)
    name = precision.upper()
    if on_cuda:
        return PrecisionLabel(name, "GPU", "ok")
    flags = device.get("cpu_flags") or []
    instruction = native_instruction(precision, flags)
    if instruction is None and precision == "fp32":
        instruction = "FP32 (every CPU)"
    if instruction is None:
        why = "emulated: " + emulated_reason(precision, flags)
        return PrecisionLabel(f"{name} (emulated)", None, why, why)
    return PrecisionLabel(name, instruction, "ok", f"native instruction: {instruction}")


# ------------------------------------------------------------------------ helpers


def _check(precision: str, args: GemmArgs, device: str, seed: int) -> dict[str, Any]:
    import torch

    size = args.check_size
    kernel = make_kernel(precision, size, device, seed + 7919, args.int4_group_size)
    got = kernel.output()
    ref = kernel.reference()
    scale = float(ref.abs().max())
    max_abs = float((got - ref).abs().max())
    finite = bool(torch.isfinite(got).all())
    rel = max_abs / scale if scale > 0 else max_abs
    tol = TOLERANCE[precision]
    return {
        "size": [size, size, size],
        "reference": "float64 product of the same (rounded) inputs, on the CPU",
        "max_abs_err": max_abs if finite else None,
        "max_abs_reference": scale,
        "max_rel_err": rel if finite else None,
        "tolerance": tol,
        "passed": finite and rel <= tol,
    }


def evidence_mismatch(record: dict[str, Any], args: GemmArgs, device: dict[str, Any]) -> str:
    """What in a precision's evidence disagrees with the task's arguments ("" when nothing
    does): the sizes swept, the counts of warm-ups, pilot and timed repeats, the iterations
    per repeat (re-derived from the last warm-up), the check's size. Evidence of a quick run
    relabelled as a full one, or of another suite, fails here."""
    kind: Literal["cpu", "cuda"] = (
        "cuda" if str(device.get("device", "")).startswith("cuda") else "cpu"
    )
    if str(record.get("device", device.get("device"))) != str(device.get("device")):
        return f"the record's device {record.get('device')} is not device.json's"
    want = sorted(args.sizes.get(kind) or [])
    entries = record.get("sizes") or []
    swept = [int(e["m"]) for e in entries]
    if swept != want[: len(swept)] or (
        len(swept) < len(want) and entries[-1:] and entries[-1].get("status") != "skipped"
    ):
        return f"sizes {swept} are not the suite's {kind} sweep {want}"
    for e in entries:
        if not (int(e["m"]) == int(e["n"]) == int(e["k"])):
            return f"size {e['m']} is not square"
        if e.get("status") != "measured":
            continue
        if len(e["warmup_s"]) != args.warmup or len(e["pilot_s"]) != args.pilot_repeats:
            return (
                f"size {e['m']}: {len(e['warmup_s'])} warm-ups and {len(e['pilot_s'])} pilot "
                f"repeats, the suite says {args.warmup} and {args.pilot_repeats}"
            )
        iters = max(1, math.ceil(args.min_repeat_s / max(float(e["warmup_s"][-1]), 1e-9)))
        if int(e["iters"]) != iters:
            return f"size {e['m']}: {e['iters']} iterations per repeat; its warm-up gives {iters}"
        if "repeat_s" in e and len(e["repeat_s"]) != args.repeats:
            return (
                f"size {e['m']}: {len(e['repeat_s'])} timed repeats, the suite says {args.repeats}"
            )
    size = (record.get("check") or {}).get("size")
    if size is not None and [int(x) for x in size] != [args.check_size] * 3:
        return f"the check ran at {size}, the suite says {args.check_size}"
    return ""


def check_failure(precision: str, check: dict[str, Any]) -> str:
    """Why the correctness check failed, re-derived from its recorded error against this
    code's tolerance (not the recorded pass flag, nor a recorded tolerance); "" when it held."""
    tol = TOLERANCE[precision]
    err = check.get("max_rel_err")
    if not isinstance(err, (int, float)) or isinstance(err, bool) or not math.isfinite(err):
        return "result failed the correctness check: non-finite output or no recorded error"
    if err > tol:
        return (
            f"result failed the correctness check: error {err:.3g} "
            f"(relative to max |reference|) > tolerance {tol:.3g}"
        )
    return ""


def _timed(
    run: Callable[[], Any], iters: int, repeats: int, sync: Callable[[], None]
) -> list[float]:
    times: list[float] = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            run()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def _rates(entry: dict[str, Any], key: str) -> list[float]:
    """Operations per second of each timed repeat: 2mnk x iterations / seconds."""
    ops = 2 * int(entry["m"]) * int(entry["n"]) * int(entry["k"]) * int(entry["iters"])
    return [ops / s for s in entry[key]]


def choose_size(sizes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The measured size with the highest median pilot rate (the first one on a tie)."""
    measured = [s for s in sizes if s["status"] == "measured"]
    if not measured:
        return None
    return max(measured, key=lambda s: statistics.median(_rates(s, "pilot_s")))


def select_and_bound(sizes: list[dict[str, Any]], confidence: float) -> Any:
    """(the size the pilot chose, median bounds on its fresh repeats), or None when no size
    was timed. The evidence must hold fresh repeats for exactly the chosen size."""
    chosen = choose_size(sizes)
    if chosen is None:
        return None
    others = [s["m"] for s in sizes if s is not chosen and "repeat_s" in s]
    if "repeat_s" not in chosen or others:
        raise ValueError(
            f"the evidence's timed repeats are not those of the size its pilot chose "
            f"({chosen['m']}); repeats found for {others or 'no size'}"
        )
    return chosen, median_bounds(_rates(chosen, "repeat_s"), confidence)


def nominal_peak(
    hardware: HardwareDescription | None, precision: str, device: dict[str, Any]
) -> tuple[float, str] | None:
    """The nominal dense peak in the precision's unit, and how it was derived."""
    if hardware is None:
        return None
    unit = ops_unit(precision)
    if precision in hardware.nominal_peak:
        peak = hardware.nominal_peak[precision]
        return convert(peak.value, peak.unit, unit), f"{peak.value:g} {peak.unit} per device"
    per_cycle = hardware.peak_ops_per_core_cycle.get(precision)
    on_cpu = not str(device.get("device", "")).startswith("cuda")  # "threads" are CPU threads
    if per_cycle and hardware.peak_clock_ghz and device.get("threads") and on_cpu:
        cores = int(device["threads"])
        raw = per_cycle * cores * hardware.peak_clock_ghz * 1e9
        base = "OPS" if unit == "TOPS" else "FLOPS"
        basis = hardware.peak_clock_basis or "as the system description states"
        return (
            convert(raw, base, unit),
            f"{hardware.id}: {per_cycle:g} ops/core/cycle x {cores} cores x "
            f"{hardware.peak_clock_ghz:g} GHz, {basis}",
        )
    return None


def _device_facts(device: str) -> dict[str, Any]:
    import platform

    import torch

    facts: dict[str, Any] = {
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        facts.update(
            name=props.name,
            capability=list(torch.cuda.get_device_capability(device)),
            multiprocessors=props.multi_processor_count,
            memory_bytes=props.total_memory,
            cuda=torch.version.cuda,
            bf16_reduced_precision_reduction=bool(
                torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
            ),
            fp16_reduced_precision_reduction=bool(
                torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction
            ),
        )
    else:
        facts.update(
            name=_cpu_name() or platform.processor(),
            cpu_capability=torch.backends.cpu.get_cpu_capability(),
            cpu_flags=read_flags(),
            cpu_id=_cpu_id(),
            mkldnn=bool(torch.backends.mkldnn.is_available()),
        )
    return facts


def _cpu_id() -> str:
    """e.g. "AuthenticAMD family 25 model 17 (AMD EPYC 9B14)"."""
    from harness.environment import cpu_facts

    facts = cpu_facts()
    return (
        f"{facts['cpu_vendor'] or 'unknown vendor'} family {facts['cpu_family']} model "
        f"{facts['cpu_model']} ({facts['cpu_name']})"
    )


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
