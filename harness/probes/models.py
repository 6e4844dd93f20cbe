"""`models.reference`: reference networks of vision, language and speech, run for inference
and training on the device under test, with their outputs checked against an FP32 CPU
reference.

Networks (harness/refmodels): a ResNet-style CNN, a BERT-style encoder and a Conv-BiLSTM-CTC
acoustic model, all in torch with seeded random weights, each also exported to ONNX
(torch.onnx.export, dynamo=False) so ONNX Runtime runs the very same weights; and the real
ResNet-50 ONNX graph shipped in the `onnx` wheel (constant weights, full compute) for ONNX
Runtime only. No pretrained checkpoint is used: what is judged is throughput and numerical
agreement with the reference, never task accuracy.

collect, per network:
- the reference: the FP32 torch model on the CPU, on a fixed seeded batch of
  `accuracy_samples` samples (for the ResNet-50 graph: ONNX Runtime's CPU provider in FP32);
- inference per backend and precision (torch on the device: fp32, and bf16 / fp16 through
  autocast; ONNX Runtime's CPU provider, and its CUDA provider on a CUDA device: fp32):
  a one-sample budget probe, warm-ups, `repeats` timed repeats of a fixed number of batches
  (device synchronised around each), the raw repeat times, and the outputs on the reference
  batch compared with the reference (max abs / rel error, cosine, top-1 agreement);
- training per precision (torch only): seeded random batches, the family's loss
  (cross-entropy; CTC for speech), warm-up steps then `train_repeats` timed repeats of
  `train_steps` optimizer steps; every loss, and the reference loss of the first batch
  (FP32 CPU, the same initial weights).
A run whose time, estimated first from one sample and then from the warm-ups, exceeds
`max_run_s` is skipped with the estimate as its reason (FP16 on a CPU is emulated and can be
a hundred times slower than FP32). TF32 is switched off on a CUDA device: fp32 means IEEE FP32.

score: pass/fail of every comparison against the tolerances in the arguments, throughput
with order-statistic bounds on the median repeat, and the indicator-level counts; only runs
on the device under test count (ONNX Runtime's CPU provider counts only on a CPU device):
- networks: families that passed inference (any backend, any precision) and training (any
  precision: finite losses, first-step loss matching the reference);
- inference_networks: families that passed inference;
- frameworks: frameworks (torch, ONNX Runtime) that passed inference for every family.
Metric ids: `<model>.<backend>.<precision>.{infer_throughput,cosine,top1_agreement,
max_rel_err}` with model vision / language / speech / vision_resnet50 and backend torch /
onnxruntime_cpu / onnxruntime_cuda; `<family>.train.<precision>.throughput`; the counts.
"""

from __future__ import annotations

import copy
import hashlib
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.evidence import EvidenceReader
from harness.models import Interval, Measurement, Unmeasured
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.device import is_oom, synchronizer
from harness.probes.gemm import _device_facts
from harness.refmodels import (
    FAMILIES,
    Config,
    Family,
    LanguageConfig,
    RefModel,
    SpeechConfig,
    VisionConfig,
)
from harness.registry import probes
from harness.stats import median_bounds

if TYPE_CHECKING:
    import torch

Precision = Literal["fp32", "bf16", "fp16"]
Backend = Literal["torch", "onnxruntime_cpu", "onnxruntime_cuda"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnxruntime_cpu", "onnxruntime_cuda")
FRAMEWORK: dict[str, str] = {
    "torch": "torch",
    "onnxruntime_cpu": "onnxruntime",
    "onnxruntime_cuda": "onnxruntime",
}
FRAMEWORKS = ("torch", "onnxruntime")
RESNET50 = "vision_resnet50"  # the ResNet-50 ONNX graph from the onnx wheel (vision family)
INFER_METRICS: dict[str, str] = {
    "infer_throughput": "samples/s",
    "cosine": "ratio",
    "top1_agreement": "ratio",
    "max_rel_err": "ratio",
}
WEIGHTS_NOTE = (
    "weights are seeded random (no pretrained checkpoint): only throughput and numerical "
    "agreement with the FP32 CPU reference are judged, not task accuracy"
)
RESNET50_NOTE = (
    "ResNet-50 ONNX graph from the onnx wheel: constant weights (0.02), full compute; "
    "only throughput and numerical agreement are judged"
)


class Tolerance(BaseModel):
    """What a precision's outputs must meet against the FP32 CPU reference."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_cosine: float = Field(gt=0, le=1)  # cosine similarity of the flattened outputs
    min_top1_agreement: float = Field(ge=0, le=1)  # share of argmax (last dim) that agree
    max_rel_err: float = Field(gt=0)  # max |out - ref| / max |ref|
    max_loss_rel_diff: float = Field(gt=0)  # training: |first loss - ref loss| / |ref loss|
    # A top-1 flip is excused where the reference itself is a near-tie: its two largest
    # values differ by at most this fraction of max |ref| (an output error of e can flip
    # decisions with a gap up to 2e; seeded random weights make such near-ties common).
    tie_margin: float = Field(ge=0)


# FP32 should match the reference to accumulation-order noise (TF32 is switched off for the
# run). BF16 keeps 8 significant bits (rounding 2^-9 per operation), FP16 11 bits (2^-12);
# through a network of tens of layers that gives the observed ~0.5 % (bf16) and ~0.1 % (fp16)
# worst-case error relative to the largest output, with cosine above 0.9999. The limits
# leave a margin of about 10x over those observations. Top-1 agreement counts only flips of
# decisions the reference makes clearly (gap above `tie_margin`, about 4x the typical error).
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(
        min_cosine=0.99999,
        min_top1_agreement=0.99,
        max_rel_err=1e-3,
        max_loss_rel_diff=1e-3,
        tie_margin=1e-4,
    ),
    "bf16": Tolerance(
        min_cosine=0.99,
        min_top1_agreement=0.9,
        max_rel_err=0.1,
        max_loss_rel_diff=0.05,
        tie_margin=0.02,
    ),
    "fp16": Tolerance(
        min_cosine=0.999,
        min_top1_agreement=0.9,
        max_rel_err=0.02,
        max_loss_rel_diff=0.02,
        tie_margin=0.005,
    ),
}


def _all_families() -> list[Family]:
    return list(FAMILIES)


def _default_precisions() -> list[Precision]:
    return ["fp32", "bf16", "fp16"]


def _default_train_precisions() -> list[Precision]:
    return ["fp32", "bf16"]


def _all_backends() -> list[Backend]:
    return list(BACKENDS)


def _default_tolerances() -> dict[Precision, Tolerance]:
    return {
        "fp32": DEFAULT_TOLERANCES["fp32"],
        "bf16": DEFAULT_TOLERANCES["bf16"],
        "fp16": DEFAULT_TOLERANCES["fp16"],
    }


class ModelsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    families: list[Family] = Field(default_factory=_all_families, min_length=1)
    precisions: list[Precision] = Field(default_factory=_default_precisions, min_length=1)
    train_precisions: list[Precision] = Field(default_factory=_default_train_precisions)
    backends: list[Backend] = Field(default_factory=_all_backends, min_length=1)
    onnx_resnet50: bool = True  # also run the ResNet-50 ONNX graph (ONNX Runtime backends)
    # vision: ResNet-style CNN (width 64, blocks 2-2-2-2 = ResNet-18)
    vision_image_size: int = Field(default=224, ge=32)
    vision_width: int = Field(default=64, ge=4)
    vision_blocks: list[int] = Field(default_factory=lambda: [2, 2, 2, 2], min_length=1)
    vision_classes: int = Field(default=1000, ge=2)
    # language: BERT-style encoder
    language_vocab: int = Field(default=30522, ge=2)
    language_hidden: int = Field(default=256, ge=8)
    language_layers: int = Field(default=4, ge=1)
    language_heads: int = Field(default=4, ge=1)
    language_seq_len: int = Field(default=128, ge=2)
    language_classes: int = Field(default=16, ge=2)
    # speech: conv subsampling + BiLSTM + CTC logits over 80-dim filterbank frames
    speech_frames: int = Field(default=800, ge=16)
    speech_channels: int = Field(default=32, ge=1)
    speech_hidden: int = Field(default=256, ge=8)
    speech_layers: int = Field(default=2, ge=1)
    speech_symbols: int = Field(default=32, ge=2)
    # inference
    batch: int = Field(default=8, ge=1)
    accuracy_samples: int = Field(default=32, ge=1)
    warmup: int = Field(default=2, ge=1)
    repeats: int = Field(default=5, ge=5)
    batches_per_repeat: int = Field(default=1, ge=1)
    min_repeat_s: float = Field(default=0.3, gt=0)
    # training
    train_batch: int = Field(default=8, ge=2)
    train_warmup: int = Field(default=2, ge=1)
    train_repeats: int = Field(default=5, ge=5)
    train_steps: int = Field(default=2, ge=1)  # optimizer steps per timed repeat
    optimizer: Literal["sgd", "adamw"] = "sgd"
    learning_rate: float = Field(default=1e-3, gt=0)
    # budget: a run whose estimated time exceeds this is skipped with the estimate as reason
    max_run_s: float = Field(default=30.0, gt=0)
    tolerances: dict[Precision, Tolerance] = Field(default_factory=_default_tolerances)

    @field_validator("families", "precisions", "train_precisions", "backends")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError(f"duplicate entries in {values}")
        return values

    @field_validator("vision_blocks")
    @classmethod
    def _blocks(cls, blocks: list[int]) -> list[int]:
        if len(blocks) > 4 or any(b < 1 for b in blocks):
            raise ValueError("vision_blocks: one to four stages of at least one block each")
        return blocks

    @field_validator("tolerances")
    @classmethod
    def _fill_tolerances(cls, given: dict[Precision, Tolerance]) -> dict[Precision, Tolerance]:
        filled = _default_tolerances()
        filled.update(given)
        return filled

    @model_validator(mode="after")
    def _shapes(self) -> ModelsArgs:
        if self.language_hidden % self.language_heads:
            raise ValueError(
                f"language_hidden {self.language_hidden} is not a multiple of "
                f"language_heads {self.language_heads}"
            )
        return self


# ------------------------------------------------------------------------ plan


def model_keys(args: ModelsArgs) -> list[str]:
    keys: list[str] = list(args.families)
    if (
        args.onnx_resnet50
        and "vision" in args.families
        and any(b != "torch" for b in args.backends)
    ):
        keys.append(RESNET50)
    return keys


def family_of(key: str) -> Family:
    return "vision" if key == RESNET50 else key  # type: ignore[return-value]


def precisions_for(args: ModelsArgs, backend: str) -> list[Precision]:
    """torch runs every requested precision; ONNX Runtime runs the FP32 graph."""
    return list(args.precisions) if backend == "torch" else ["fp32"]


def inference_runs(args: ModelsArgs) -> list[tuple[str, Backend, Precision]]:
    runs: list[tuple[str, Backend, Precision]] = []
    for key in model_keys(args):
        for backend in args.backends:
            if key == RESNET50 and backend == "torch":
                continue
            runs += [(key, backend, p) for p in precisions_for(args, backend)]
    return runs


def run_name(key: str, backend: str, precision: str) -> str:
    return f"{key}.{backend}.{precision}"


def config_for(args: ModelsArgs, family: Family) -> Config:
    if family == "vision":
        return VisionConfig(
            image_size=args.vision_image_size,
            width=args.vision_width,
            blocks=tuple(args.vision_blocks),
            classes=args.vision_classes,
        )
    if family == "language":
        return LanguageConfig(
            vocab=args.language_vocab,
            hidden=args.language_hidden,
            layers=args.language_layers,
            heads=args.language_heads,
            seq_len=args.language_seq_len,
            classes=args.language_classes,
        )
    return SpeechConfig(
        frames=args.speech_frames,
        channels=args.speech_channels,
        hidden=args.speech_hidden,
        layers=args.speech_layers,
        symbols=args.speech_symbols,
    )


def seeds(seed: int, family: Family) -> dict[str, int]:
    """The seeds of one family's weights, reference batch, timing batch and training batches."""
    base = seed * 1000 + 100 * FAMILIES.index(family)
    return {"weights": base + 1, "accuracy": base + 2, "timing": base + 3, "training": base + 4}


def reference_inputs(ref: RefModel, n: int, seed: int) -> torch.Tensor:
    import torch

    return ref.inputs(n, torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------ comparisons


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


# ------------------------------------------------------------------------ device support


def precision_unsupported(precision: str, device: str) -> str | None:
    """Why torch cannot run the precision on this device (None when it can; a CPU runs bf16
    and fp16 through autocast, however slowly: the time budget decides)."""
    import torch

    if precision == "fp32" or not device.startswith("cuda"):
        return None
    major, minor = torch.cuda.get_device_capability(device)
    if precision == "bf16" and (major, minor) < (8, 0):
        return f"BF16 needs compute capability >= 8.0; this GPU has {major}.{minor}"
    if precision == "fp16" and (major, minor) < (5, 3):
        return f"FP16 arithmetic needs compute capability >= 5.3; this GPU has {major}.{minor}"
    return None


def ort_unsupported(backend: str, device: str) -> str | None:
    import onnxruntime as ort

    if backend != "onnxruntime_cuda":
        return None
    if not device.startswith("cuda"):
        return (
            f"the device under test is {device}; ONNX Runtime's CUDA execution provider runs "
            "only against a CUDA device"
        )
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        return (
            f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (available: "
            f"{', '.join(available)}); install onnxruntime-gpu to run it"
        )
    return None


def on_device(backend: str, device: str) -> bool:
    """Whether a backend computes on the device under test (only those count)."""
    if backend == "onnxruntime_cpu":
        return not device.startswith("cuda")
    return True


@contextmanager
def _ieee_fp32(device: str) -> Iterator[dict[str, Any]]:
    """Switch TF32 off for the whole collect on a CUDA device (fp32 means IEEE FP32)."""
    import torch

    facts: dict[str, Any] = {}
    if not device.startswith("cuda"):
        yield facts
        return
    knobs: list[Any] = [torch.backends.cuda.matmul]
    cudnn = torch.backends.cudnn
    if hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision"):
        knobs += [cudnn.conv, cudnn.rnn]
    if all(hasattr(k, "fp32_precision") for k in knobs):
        saved = [k.fp32_precision for k in knobs]
        for k in knobs:
            k.fp32_precision = "ieee"
        facts["tf32"] = "disabled (fp32_precision = ieee for matmul, cuDNN conv and RNN)"
        try:
            yield facts
        finally:
            for k, value in zip(knobs, saved, strict=True):
                k.fp32_precision = value
        return
    saved_legacy = (torch.backends.cuda.matmul.allow_tf32, cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    cudnn.allow_tf32 = False
    facts["tf32"] = "disabled (allow_tf32 = False for matmul and cuDNN)"
    try:
        yield facts
    finally:
        torch.backends.cuda.matmul.allow_tf32, cudnn.allow_tf32 = saved_legacy


def _autocast(device: str, precision: str) -> Any:
    import torch

    kind = "cuda" if device.startswith("cuda") else "cpu"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return torch.autocast(device_type=kind, dtype=dtype, enabled=precision != "fp32")


def _timed(fn: Callable[[], Any], sync: Callable[[], None]) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------ ONNX


def export_onnx(ref: RefModel, path: Path, sample: torch.Tensor) -> dict[str, Any]:
    """Export the FP32 CPU model with the legacy TorchScript exporter (batch axis dynamic)."""
    import warnings

    import torch

    # The fused transformer fast path (taken without autograd) has no ONNX mapping: export
    # with autograd on and the fast path off, so the traced graph is the plain operators.
    mha = getattr(torch.backends, "mha", None)
    fastpath = mha.get_fastpath_enabled() if mha is not None else None
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore")
        if mha is not None:
            mha.set_fastpath_enabled(False)
        try:
            torch.onnx.export(
                ref.module,
                (sample,),
                str(path),
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                opset_version=17,
            )
        finally:
            if mha is not None:
                mha.set_fastpath_enabled(fastpath)
    data = path.read_bytes()
    return {
        "status": "exported",
        "exporter": f"torch.onnx.export(dynamo=False), torch {torch.__version__}, opset 17",
        "sha256": _sha256(data),
        "bytes": len(data),
        "input": "input",
        "output": "output",
        "location": "a temporary directory (deleted after the run); the sha256 identifies it",
    }


def _ort_session(model: Path | bytes, backend: str, device: str) -> tuple[Any, dict[str, Any]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    facts: dict[str, Any] = {"onnxruntime": ort.__version__}
    if backend == "onnxruntime_cpu":
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    else:
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        cuda_options = {"device_id": str(index), "use_tf32": "0"}
        try:
            session = ort.InferenceSession(
                source, options, providers=[("CUDAExecutionProvider", cuda_options)]
            )
            facts["cuda_options"] = cuda_options
        except Exception as error:  # an older provider without use_tf32
            facts["use_tf32_rejected"] = f"{type(error).__name__}: {error}"
            session = ort.InferenceSession(
                source, options, providers=[("CUDAExecutionProvider", {"device_id": str(index)})]
            )
        used = session.get_providers()
        if not used or used[0] != "CUDAExecutionProvider":
            raise RuntimeError(f"ONNX Runtime did not take the CUDA provider (got {used})")
    facts["providers"] = session.get_providers()
    return session, facts


# ------------------------------------------------------------------------ the probe


@probes.register("models.reference")
class ModelsProbe:
    name: ClassVar[str] = "models.reference"
    Args: ClassVar[type[BaseModel]] = ModelsArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, ModelsArgs)
        names: dict[str, str] = {}
        for key, backend, precision in inference_runs(args):
            for metric, unit in INFER_METRICS.items():
                names[f"{run_name(key, backend, precision)}.{metric}"] = unit
        for family in args.families:
            for precision in args.train_precisions:
                names[f"{family}.train.{precision}.throughput"] = "samples/s"
        names["networks"] = "count"
        names["inference_networks"] = "count"
        names["frameworks"] = "count"
        return names

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, ModelsArgs)
        return (
            len(model_keys(args))
            + len(inference_runs(args))
            + len(args.families) * len(args.train_precisions)
        )

    # ---------------------------------------------------------------- collect

    def collect(self, ctx: CollectContext) -> list[str]:
        import onnxruntime as ort

        args = ctx.args
        assert isinstance(args, ModelsArgs)
        failures: list[str] = []
        facts = _device_facts(ctx.device)
        facts["onnxruntime"] = ort.__version__
        facts["onnxruntime_providers"] = ort.get_available_providers()
        with (
            tempfile.TemporaryDirectory(prefix="harness-models-") as tmp,
            _ieee_fp32(ctx.device) as fp32_facts,
        ):
            facts.update(fp32_facts)
            ctx.evidence.write_json("device.json", facts)
            for family in args.families:
                failures += self._family(ctx, args, family, Path(tmp))
            if RESNET50 in model_keys(args):
                failures += self._resnet50(ctx, args)
        return failures

    def _family(
        self, ctx: CollectContext, args: ModelsArgs, family: Family, tmp: Path
    ) -> list[str]:
        from harness import refmodels

        failures: list[str] = []
        seed = seeds(ctx.seed, family)
        ctx.progress(f"{family}: build and export")
        ref = refmodels.build(family, config_for(args, family), seed["weights"])
        acc_inputs = reference_inputs(ref, args.accuracy_samples, seed["accuracy"])
        timing_inputs = reference_inputs(ref, args.batch, seed["timing"])
        reference = _torch_outputs(ref.module, acc_inputs, args.batch, "cpu", "fp32")
        record: dict[str, Any] = {**ref.facts(), "seeds": seed}
        record["reference"] = "torch FP32 on the CPU, same weights, same inputs"
        onnx_path: Path | None = None
        if any(b != "torch" for b in args.backends):
            path = tmp / f"{family}.onnx"
            try:
                record["onnx"] = export_onnx(ref, path, acc_inputs[:1])
                onnx_path = path
            except Exception as error:
                reason = f"ONNX export failed: {type(error).__name__}: {error}"
                record["onnx"] = {"status": "error", "reason": reason}
                failures.append(f"{family}: {reason}")
        ctx.evidence.write_json(f"models/{family}.json", record)

        for backend in args.backends:
            for precision in precisions_for(args, backend):
                ctx.progress(f"{family}: {backend} {precision} inference")
                run: dict[str, Any] = {
                    "model": family,
                    "family": family,
                    "backend": backend,
                    "framework": FRAMEWORK[backend],
                    "precision": precision,
                    "device": ctx.device if backend == "torch" else backend,
                    "on_device_under_test": on_device(backend, ctx.device),
                    "batch": args.batch,
                    "sample": ref.sample,
                    "reference": record["reference"],
                }
                try:
                    unsupported = ort_unsupported(backend, ctx.device)
                    if unsupported:
                        run.update(status="unsupported", reason=unsupported)
                    elif backend == "torch":
                        run.update(
                            self._torch_infer(
                                args,
                                ctx.device,
                                ref,
                                precision,
                                timing_inputs,
                                acc_inputs,
                                reference,
                            )
                        )
                    elif onnx_path is None:
                        run.update(status="error", reason=record["onnx"]["reason"])
                    else:
                        run.update(
                            self._ort_infer(
                                args,
                                ctx.device,
                                backend,
                                onnx_path,
                                "input",
                                "output",
                                timing_inputs.numpy(),
                                acc_inputs.numpy(),
                                reference,
                            )
                        )
                except Exception as error:
                    if is_oom(error):
                        run.update(status="skipped", reason=f"out of memory: {error}")
                    else:
                        run.update(status="error", reason=f"{type(error).__name__}: {error}")
                        failures.append(f"{run_name(family, backend, precision)}: {run['reason']}")
                finally:
                    _empty_cache(ctx.device)
                ctx.evidence.write_json(
                    f"inference/{run_name(family, backend, precision)}.json", run
                )
        del timing_inputs, acc_inputs

        for precision in args.train_precisions:
            ctx.progress(f"{family}: training {precision}")
            train: dict[str, Any] = {
                "family": family,
                "precision": precision,
                "device": ctx.device,
                "batch": args.train_batch,
                "sample": ref.sample,
                "loss": ref.loss_name,
                "optimizer": args.optimizer,
                "learning_rate": args.learning_rate,
                "steps_per_repeat": args.train_steps,
            }
            try:
                train.update(self._train(args, ctx.device, ref, precision, seed["training"]))
            except Exception as error:
                if is_oom(error):
                    train.update(status="skipped", reason=f"out of memory: {error}")
                else:
                    train.update(status="error", reason=f"{type(error).__name__}: {error}")
                    failures.append(f"{family}.train.{precision}: {train['reason']}")
            finally:
                _empty_cache(ctx.device)
            ctx.evidence.write_json(f"training/{family}.{precision}.json", train)
        del ref
        return failures

    def _resnet50(self, ctx: CollectContext, args: ModelsArgs) -> list[str]:
        from harness.refmodels import onnx_resnet50

        failures: list[str] = []
        ctx.progress(f"{RESNET50}: load")
        graph = onnx_resnet50.prepare()
        shipped = graph.source.read_bytes()
        gen = np.random.default_rng(seeds(ctx.seed, "vision")["accuracy"] + 50)
        shape = graph.input_shape
        acc = gen.standard_normal(shape).astype(np.float32)
        timing = gen.standard_normal(shape).astype(np.float32)
        ref_session, _ = _ort_session(graph.model, "onnxruntime_cpu", "cpu")
        reference = ref_session.run([graph.feature_name], {graph.input_name: acc})[0]
        del ref_session
        record = {
            "family": "vision",
            "name": "ResNet-50 (ONNX, onnx wheel test data)",
            "description": onnx_resnet50.__doc__,
            "source": f"onnx/{onnx_resnet50.RELATIVE_PATH}",
            "sha256": _sha256(shipped),
            "bytes": len(shipped),
            "opset": graph.opset,
            "prepared_sha256": _sha256(graph.model),
            "input": {"name": graph.input_name, "shape": shape},
            "compared_output": graph.feature_name,
            "timed_output": graph.output_name,
            "reference": "ONNX Runtime CPU provider, FP32, same graph, same input",
            "weights": RESNET50_NOTE,
        }
        ctx.evidence.write_json(f"models/{RESNET50}.json", record)
        for backend in args.backends:
            if backend == "torch":
                continue
            ctx.progress(f"{RESNET50}: {backend} fp32 inference")
            run: dict[str, Any] = {
                "model": RESNET50,
                "family": "vision",
                "backend": backend,
                "framework": FRAMEWORK[backend],
                "precision": "fp32",
                "device": backend,
                "on_device_under_test": on_device(backend, ctx.device),
                "batch": shape[0],
                "sample": "image " + "x".join(str(d) for d in shape[1:]),
                "reference": record["reference"],
            }
            try:
                run.update(
                    self._ort_infer(
                        args,
                        ctx.device,
                        backend,
                        graph.model,
                        graph.input_name,
                        graph.output_name,
                        timing,
                        acc,
                        reference,
                        compared_output=graph.feature_name,
                    )
                )
            except Exception as error:
                run.update(status="error", reason=f"{type(error).__name__}: {error}")
                failures.append(f"{run_name(RESNET50, backend, 'fp32')}: {run['reason']}")
            ctx.evidence.write_json(f"inference/{run_name(RESNET50, backend, 'fp32')}.json", run)
        return failures

    # ---------------------------------------------------------------- one run

    def _torch_infer(
        self,
        args: ModelsArgs,
        device: str,
        ref: RefModel,
        precision: str,
        timing_inputs: torch.Tensor,
        acc_inputs: torch.Tensor,
        reference: np.ndarray,
    ) -> dict[str, Any]:
        import torch

        reason = precision_unsupported(precision, device)
        if reason:
            return {"status": "unsupported", "reason": reason}
        model = copy.deepcopy(ref.module).to(device).eval()
        x = timing_inputs.to(device)
        one = x[:1]

        def call(inputs: torch.Tensor) -> Any:
            with torch.inference_mode(), _autocast(device, precision):
                return model(inputs)

        execution = {
            "framework": f"torch {torch.__version__}",
            "mode": "eval, torch.inference_mode"
            + ("" if precision == "fp32" else f", torch.autocast({precision})"),
            "inputs": "resident on the device before timing",
        }
        acc_batches = math.ceil(acc_inputs.shape[0] / args.batch)
        result = _time_runs(
            args, args.batch, acc_batches, lambda: call(one), lambda: call(x), synchronizer(device)
        )
        result["execution"] = execution
        if result["status"] != "measured":
            return result
        outputs = _torch_outputs(model, acc_inputs, args.batch, device, precision)
        result["accuracy"] = compare(outputs, reference)
        return result

    def _ort_infer(
        self,
        args: ModelsArgs,
        device: str,
        backend: str,
        model: Path | bytes,
        input_name: str,
        output_name: str,
        timing_inputs: np.ndarray,
        acc_inputs: np.ndarray,
        reference: np.ndarray,
        compared_output: str | None = None,
    ) -> dict[str, Any]:
        import onnxruntime as ort

        reason = ort_unsupported(backend, device)
        if reason:
            return {"status": "unsupported", "reason": reason}
        session, facts = _ort_session(model, backend, device)
        index = int(device.split(":", 1)[1]) if ":" in device else 0

        def bound(inputs: np.ndarray) -> Callable[[], Any]:
            if backend != "onnxruntime_cuda":
                return lambda: session.run([output_name], {input_name: inputs})
            binding = session.io_binding()
            value = ort.OrtValue.ortvalue_from_numpy(inputs, "cuda", index)
            binding.bind_ortvalue_input(input_name, value)
            binding.bind_output(output_name, "cuda", index)

            def run() -> Any:
                session.run_with_iobinding(binding)
                binding.synchronize_outputs()

            return run

        facts["inputs"] = (
            "bound on the device with IO binding before timing"
            if backend == "onnxruntime_cuda"
            else "host memory (the CPU provider computes in place)"
        )
        batch = timing_inputs.shape[0]
        acc_batches = math.ceil(acc_inputs.shape[0] / batch)
        result = _time_runs(
            args, batch, acc_batches, bound(timing_inputs[:1]), bound(timing_inputs), lambda: None
        )
        result["execution"] = facts
        if result["status"] != "measured":
            return result
        fetch = compared_output or output_name
        chunks = [
            session.run([fetch], {input_name: acc_inputs[i : i + batch]})[0]
            for i in range(0, acc_inputs.shape[0], batch)
        ]
        result["accuracy"] = compare(np.concatenate(chunks), reference)
        if compared_output:
            result["accuracy"]["output"] = f"the pre-pooling feature map ({compared_output})"
        return result

    def _train(
        self, args: ModelsArgs, device: str, ref: RefModel, precision: str, seed: int
    ) -> dict[str, Any]:
        import torch

        reason = precision_unsupported(precision, device)
        if reason:
            return {"status": "unsupported", "reason": reason}
        gen = torch.Generator().manual_seed(seed)
        batches = [
            (ref.inputs(args.train_batch, gen), ref.targets(args.train_batch, gen))
            for _ in range(2)
        ]
        with torch.no_grad():
            ref_model = copy.deepcopy(ref.module).train()
            reference_loss = float(ref.loss(ref_model(batches[0][0]), batches[0][1]))
            del ref_model
        sync = synchronizer(device)
        kind = "cuda" if device.startswith("cuda") else "cpu"
        on_dev = [(x.to(device), y.to(device)) for x, y in batches]

        steps = args.train_warmup + args.train_repeats * args.train_steps
        probe_s, probe_all = _train_probe(
            ref,
            device,
            precision,
            on_dev[0],
            sync,
            lambda t: t * args.train_batch / 2 * steps,
            args.max_run_s,
        )
        planned = probe_s * args.train_batch / 2 * steps
        budget = {
            "probe_two_samples_s": probe_all,
            "estimated_s": planned,
            "estimate": "fastest two-sample step after the first, times half the batch",
        }
        if planned > PROBE_ALLOWANCE * args.max_run_s:
            return {
                "status": "skipped",
                "reason": f"estimated {planned:.1f} s for warm-up and timed steps (two samples "
                f"took {probe_s:.3g} s) exceeds {PROBE_ALLOWANCE:g}x the {args.max_run_s:g} s "
                "budget per run",
                "budget": budget,
                "reference_loss": reference_loss,
            }

        model = copy.deepcopy(ref.module).to(device).train()
        optimizer: torch.optim.Optimizer
        if args.optimizer == "sgd":
            optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=0.9)
        else:
            optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
        scaler = torch.amp.GradScaler(kind) if precision == "fp16" else None

        def step(i: int) -> torch.Tensor:
            x, y = on_dev[i % len(on_dev)]
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, precision):
                loss = ref.loss(model(x), y)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            return loss.detach()

        warm_s: list[float] = []
        warm_losses: list[torch.Tensor] = []
        for i in range(args.train_warmup):
            sync()
            t0 = time.perf_counter()
            warm_losses.append(step(i))
            sync()
            warm_s.append(time.perf_counter() - t0)
        per_step = min(warm_s[1:]) if len(warm_s) > 1 else warm_s[0]
        planned = sum(warm_s) + per_step * args.train_repeats * args.train_steps
        budget["estimated_after_warmup_s"] = planned
        if planned > args.max_run_s:
            return {
                "status": "skipped",
                "reason": f"estimated {planned:.1f} s after {len(warm_s)} warm-up steps of "
                f"{per_step:.3g} s exceeds the {args.max_run_s:g} s budget per run",
                "budget": budget,
                "reference_loss": reference_loss,
                "warmup_s": warm_s,
                "warmup_losses": [_finite_or_none(t) for t in warm_losses],
            }
        repeat_s: list[float] = []
        losses: list[torch.Tensor] = []
        k = args.train_warmup
        for _ in range(args.train_repeats):
            sync()
            t0 = time.perf_counter()
            for _ in range(args.train_steps):
                losses.append(step(k))
                k += 1
            sync()
            repeat_s.append(time.perf_counter() - t0)
        return {
            "status": "measured",
            "budget": budget,
            "execution": {
                "framework": f"torch {torch.__version__}",
                "mode": "train"
                + ("" if precision == "fp32" else f", torch.autocast({precision})")
                + (", GradScaler" if scaler is not None else ""),
                "batches": f"{len(on_dev)} seeded random batches, cycled, resident on the device",
            },
            "reference_loss": reference_loss,
            "warmup_s": warm_s,
            "warmup_losses": [_finite_or_none(t) for t in warm_losses],
            "repeat_s": repeat_s,
            "losses": [_finite_or_none(t) for t in losses],
        }

    # ---------------------------------------------------------------- score

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, ModelsArgs)
        device = evidence.read_json("device.json")
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        # (model, backend, precision) -> "ok" or why not
        infer_status: dict[tuple[str, str, str], str] = {}
        on_dut: dict[tuple[str, str, str], bool] = {}
        for key, backend, precision in inference_runs(args):
            name = run_name(key, backend, precision)
            run = evidence.read_json(f"inference/{name}.json")
            on_dut[(key, backend, precision)] = bool(run.get("on_device_under_test"))
            status, ms, um = _score_inference(name, run, args, ctx.confidence, device)
            infer_status[(key, backend, precision)] = status
            measurements += ms
            unmeasured += um
        train_status: dict[tuple[str, str], str] = {}
        for family in args.families:
            for precision in args.train_precisions:
                record = evidence.read_json(f"training/{family}.{precision}.json")
                status, ms, um = _score_training(family, precision, record, args, ctx.confidence)
                train_status[(family, precision)] = status
                measurements += ms
                unmeasured += um
        measurements += _counts(args, infer_status, on_dut, train_status, device)
        return ScoreResult(measurements, unmeasured)


# ------------------------------------------------------------------------ collect helpers


def _empty_cache(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _finite_or_none(value: Any) -> float | None:
    x = float(value)
    return x if math.isfinite(x) else None


def _torch_outputs(
    model: Any, inputs: torch.Tensor, batch: int, device: str, precision: str
) -> np.ndarray:
    """The model's outputs on `inputs`, in chunks of `batch`, as float64 on the host."""
    import torch

    chunks = []
    with torch.inference_mode(), _autocast(device, precision):
        for i in range(0, inputs.shape[0], batch):
            out = model(inputs[i : i + batch].to(device))
            chunks.append(out.float().cpu().double().numpy())
    return np.concatenate(chunks)


# The small-call probe only screens out hopeless runs (a batch extrapolated from one sample
# overstates batched throughput, and a busy host inflates single calls): it skips a run only
# beyond this multiple of the budget; the warm-ups then time the real batch against the budget.
PROBE_ALLOWANCE = 2.0


def _probe(
    call: Callable[[], Any],
    sync: Callable[[], None],
    estimate: Callable[[float], float],
    budget_s: float,
) -> tuple[float, list[float]]:
    """Time a small call up to three times; the first includes one-off set-up, so the figure
    is the fastest of the later ones. Stops after the first when even that, with a further
    2x allowance for set-up, is hopelessly over the budget."""
    times = [_timed(call, sync)]
    if estimate(times[0]) <= 2 * PROBE_ALLOWANCE * budget_s:
        times += [_timed(call, sync), _timed(call, sync)]
    return (min(times[1:]) if len(times) > 1 else times[0]), times


def _train_probe(
    ref: RefModel,
    device: str,
    precision: str,
    batch: tuple[torch.Tensor, torch.Tensor],
    sync: Callable[[], None],
    estimate: Callable[[float], float],
    budget_s: float,
) -> tuple[float, list[float]]:
    """Budget: forward and backward of two samples on a throw-away copy of the model."""
    scratch = copy.deepcopy(ref.module).to(device).train()
    x, y = batch[0][:2], batch[1][:2]

    def step() -> None:
        with _autocast(device, precision):
            loss = ref.loss(scratch(x), y)
        loss.backward()

    return _probe(step, sync, estimate, budget_s)


def _time_runs(
    args: ModelsArgs,
    batch: int,
    acc_batches: int,
    one: Callable[[], Any],
    full: Callable[[], Any],
    sync: Callable[[], None],
) -> dict[str, Any]:
    """Budget probe on one sample, warm-ups, then `repeats` timed repeats of `iters` batches
    of `batch` samples; `acc_batches` batches of the accuracy check follow the timing."""

    def planned(per_batch: float) -> float:
        per_repeat = max(args.batches_per_repeat * per_batch, args.min_repeat_s + per_batch)
        return per_batch * (args.warmup + acc_batches) + args.repeats * per_repeat

    probe_s, probe_all = _probe(one, sync, lambda t: planned(t * batch), args.max_run_s)
    estimate = planned(probe_s * batch)
    budget: dict[str, Any] = {
        "probe_one_sample_s": probe_all,
        "estimated_s": estimate,
        "estimate": "fastest one-sample call after the first, times the batch",
    }
    if estimate > PROBE_ALLOWANCE * args.max_run_s:
        return {
            "status": "skipped",
            "reason": f"estimated {estimate:.1f} s for warm-ups, timed repeats and the accuracy "
            f"check (one sample took {probe_s:.3g} s) exceeds {PROBE_ALLOWANCE:g}x the "
            f"{args.max_run_s:g} s budget per run",
            "budget": budget,
        }
    warm_s = [_timed(full, sync) for _ in range(args.warmup)]
    per_batch = max(warm_s[-1], 1e-9)
    budget["estimated_after_warmup_s"] = planned(per_batch)
    if planned(per_batch) > args.max_run_s:
        return {
            "status": "skipped",
            "reason": f"estimated {planned(per_batch):.1f} s after {args.warmup} warm-ups of "
            f"{per_batch:.3g} s per batch exceeds the {args.max_run_s:g} s budget per run",
            "budget": budget,
            "warmup_s": warm_s,
        }
    iters = max(args.batches_per_repeat, math.ceil(args.min_repeat_s / per_batch))
    repeat_s: list[float] = []
    for _ in range(args.repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            full()
        sync()
        repeat_s.append(time.perf_counter() - t0)
    return {
        "status": "measured",
        "budget": budget,
        "warmup_s": warm_s,
        "iters": iters,
        "repeat_s": repeat_s,
    }


# ------------------------------------------------------------------------ score helpers


def _rates(samples_per_repeat: float, repeat_s: Sequence[float]) -> list[float]:
    return [samples_per_repeat / s for s in repeat_s]


def _interval(bounds: Any, confidence: float, repeats: int) -> Interval:
    return Interval(
        low=bounds.low,
        high=bounds.high,
        confidence=confidence,
        method="one-sided distribution-free order-statistic bounds on the median repeat",
        need=(
            ""
            if bounds.low is not None
            else f"need at least {bounds.min_n} timed repeats for a {confidence:.0%} bound "
            f"(have {repeats})"
        ),
    )


def _device_name(device: dict[str, Any]) -> str:
    return str(device.get("name") or device.get("device", ""))


def _score_inference(
    name: str,
    run: dict[str, Any],
    args: ModelsArgs,
    confidence: float,
    device: dict[str, Any],
) -> tuple[str, list[Measurement], list[Unmeasured]]:
    ids = [f"{name}.{m}" for m in INFER_METRICS]
    if run.get("status") != "measured":
        reason = f"{run.get('status', 'not run')}: {run.get('reason', 'not measured')}"
        return reason, [], [Unmeasured(id=i, reason=reason) for i in ids]
    precision = run["precision"]
    tol = args.tolerances[precision]
    acc = run["accuracy"]
    misses = accuracy_failures(acc, tol)
    note = RESNET50_NOTE if run["model"] == RESNET50 else WEIGHTS_NOTE
    where = run["backend"] if run["backend"] != "torch" else f"torch on {run['device']}"
    compared = acc.get("output", "the model output")
    method = (
        f"{where}, {precision}: {compared} on a fixed seeded batch of {acc['shape'][0]} "
        f"vs {run['reference']}; {note}"
    )
    tol_text = (
        f"cosine >= {tol.min_cosine:g}, top-1 agreement >= {tol.min_top1_agreement:g} "
        f"(flips at reference near-ties, gap <= {tol.tie_margin:g} of max |ref|, excused), "
        f"max rel error <= {tol.max_rel_err:g}"
    )
    decisive, excused = (None, 0) if not acc.get("finite") else decisive_agreement(acc, tol)
    details = {
        "accuracy": acc,
        "top1_decisive_agreement": decisive,
        "top1_excused_flips": excused,
        "tolerance": tol.model_dump(),
        "passed": not misses,
        "misses": misses,
        "on_device_under_test": run["on_device_under_test"],
    }
    measurements: list[Measurement] = []
    unmeasured: list[Unmeasured] = []
    accuracy_values = {
        "cosine": acc.get("cosine"),
        "top1_agreement": acc.get("top1_agreement"),
        "max_rel_err": acc.get("max_rel_err"),
    }
    for metric, value in accuracy_values.items():
        if value is None:
            unmeasured.append(Unmeasured(id=f"{name}.{metric}", reason="; ".join(misses)))
            continue
        n = acc["decisions"] if metric == "top1_agreement" else acc["values"]
        measurements.append(
            Measurement(
                id=f"{name}.{metric}",
                value=float(value),
                unit="ratio",
                n=int(n),
                repeats=1,
                method=f"{method}; tolerance: {tol_text}",
                details=details,
            )
        )
    if misses:
        reason = f"outputs fail the accuracy check: {'; '.join(misses)} ({tol_text})"
        unmeasured.append(Unmeasured(id=f"{name}.infer_throughput", reason=reason))
        return reason, measurements, unmeasured
    samples = run["batch"] * run["iters"]
    rates = _rates(samples, run["repeat_s"])
    bounds = median_bounds(rates, confidence)
    repeats = len(rates)
    measurements.append(
        Measurement(
            id=f"{name}.infer_throughput",
            value=bounds.median,
            unit="samples/s",
            n=samples * repeats,
            repeats=repeats,
            ci=_interval(bounds, confidence, repeats),
            method=(
                f"{where}, {precision} inference: median of {repeats} timed repeats of "
                f"{run['iters']} batches of {run['batch']} ({run['sample']}) after "
                f"{len(run['warmup_s'])} warm-ups, device synchronised; {note}"
            ),
            details={
                "min": min(rates),
                "max": max(rates),
                "repeat_s": run["repeat_s"],
                "execution": run.get("execution", {}),
                "device": _device_name(device) if run["backend"] == "torch" else run["backend"],
                "accuracy_passed": True,
            },
        )
    )
    return "ok", measurements, unmeasured


def _score_training(
    family: str,
    precision: str,
    record: dict[str, Any],
    args: ModelsArgs,
    confidence: float,
) -> tuple[str, list[Measurement], list[Unmeasured]]:
    metric = f"{family}.train.{precision}.throughput"
    if record.get("status") != "measured":
        reason = f"{record.get('status', 'not run')}: {record.get('reason', 'not measured')}"
        return reason, [], [Unmeasured(id=metric, reason=reason)]
    tol = args.tolerances[record["precision"]]
    misses = training_failures(record, tol)
    if misses:
        reason = "training check failed: " + "; ".join(misses)
        return reason, [], [Unmeasured(id=metric, reason=reason)]
    samples = record["batch"] * record["steps_per_repeat"]
    rates = _rates(samples, record["repeat_s"])
    bounds = median_bounds(rates, confidence)
    repeats = len(rates)
    first = record["warmup_losses"][0]
    measurement = Measurement(
        id=metric,
        value=bounds.median,
        unit="samples/s",
        n=samples * repeats,
        repeats=repeats,
        ci=_interval(bounds, confidence, repeats),
        method=(
            f"torch on {record['device']}, {precision} training ({record['optimizer']}, "
            f"{record['loss']}): median of {repeats} timed repeats of "
            f"{record['steps_per_repeat']} optimizer steps of {record['batch']} samples "
            f"({record['sample']}) after {len(record['warmup_s'])} warm-up steps, device "
            f"synchronised; every loss finite and the first-step loss within "
            f"{tol.max_loss_rel_diff:g} (relative) of the FP32 CPU reference; {WEIGHTS_NOTE}"
        ),
        details={
            "min": min(rates),
            "max": max(rates),
            "repeat_s": record["repeat_s"],
            "first_loss": first,
            "reference_loss": record["reference_loss"],
            "first_loss_rel_diff": abs(first - record["reference_loss"])
            / abs(record["reference_loss"])
            if record["reference_loss"]
            else None,
            "last_loss": record["losses"][-1],
            "execution": record.get("execution", {}),
        },
    )
    return "ok", [measurement], []


def _counts(
    args: ModelsArgs,
    infer_status: dict[tuple[str, str, str], str],
    on_dut: dict[tuple[str, str, str], bool],
    train_status: dict[tuple[str, str], str],
    device: dict[str, Any],
) -> list[Measurement]:
    dut = _device_name(device)

    def runs_of(family: str, framework: str | None = None) -> list[tuple[str, str, str]]:
        return [
            k
            for k in infer_status
            if family_of(k[0]) == family
            and (framework is None or FRAMEWORK[k[1]] == framework)
            and on_dut[k]
        ]

    def passed(keys: list[tuple[str, str, str]]) -> list[str]:
        return [run_name(*k) for k in keys if infer_status[k] == "ok"]

    def why_not(keys: list[tuple[str, str, str]]) -> str:
        if not keys:
            return "no inference run on the device under test was requested"
        return "; ".join(f"{run_name(*k)}: {infer_status[k]}" for k in keys)

    inference: dict[str, str] = {}
    networks: dict[str, str] = {}
    for family in args.families:
        keys = runs_of(family)
        ok = passed(keys)
        inference[family] = f"ok: {', '.join(ok)}" if ok else f"not passed: {why_not(keys)}"
        trained = [p for p in args.train_precisions if train_status[(family, p)] == "ok"]
        if not ok:
            networks[family] = f"inference not passed: {why_not(keys)}"
        elif not args.train_precisions:
            networks[family] = "training not requested"
        elif not trained:
            networks[family] = "training not passed: " + "; ".join(
                f"{p}: {train_status[(family, p)]}" for p in args.train_precisions
            )
        else:
            networks[family] = f"ok: inference {', '.join(ok)}; training {', '.join(trained)}"

    frameworks: dict[str, str] = {}
    for framework in FRAMEWORKS:
        if not any(FRAMEWORK[b] == framework for b in args.backends):
            frameworks[framework] = "not requested"
            continue
        missing = {f: runs_of(f, framework) for f in args.families}
        failed = {f: keys for f, keys in missing.items() if not passed(keys)}
        if failed:
            frameworks[framework] = "not every family passed: " + "; ".join(
                f"{f}: {why_not(keys)}" for f, keys in failed.items()
            )
        else:
            frameworks[framework] = "ok: " + "; ".join(
                f"{f}: {', '.join(passed(keys))}" for f, keys in missing.items()
            )

    def count(metric: str, values: dict[str, str], what: str, over: Sequence[str]) -> Measurement:
        return Measurement(
            id=metric,
            value=float(sum(1 for v in values.values() if v.startswith("ok"))),
            unit="count",
            n=len(over),
            repeats=1,
            method=f"{what}, out of {', '.join(over)}; on the device under test ({dut}) only; "
            f"{WEIGHTS_NOTE}",
            details=values,
        )

    return [
        count(
            "networks",
            networks,
            "families (vision, language, speech) whose network ran inference within the "
            "accuracy tolerance (any backend and precision) and trained with finite losses "
            "matching the reference at the first step (any precision)",
            args.families,
        ),
        count(
            "inference_networks",
            inference,
            "families whose network ran inference within the accuracy tolerance (any backend "
            "and precision)",
            args.families,
        ),
        count(
            "frameworks",
            frameworks,
            "frameworks (torch, ONNX Runtime) that ran every family's inference within the "
            "accuracy tolerance (any precision)",
            [f for f in FRAMEWORKS if any(FRAMEWORK[b] == f for b in args.backends)],
        ),
    ]
