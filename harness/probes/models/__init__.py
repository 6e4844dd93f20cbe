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

Modules: `args` (arguments, tolerances), `plan` (runs, names, network configurations, seeds),
`accuracy` (comparisons with the reference), `support` (what the device runs; TF32, autocast),
`export` (ONNX export, ONNX Runtime sessions), `timing` (budget probe, timed repeats),
`collect_inference` / `collect_training` (one run), `collect` (every family), `score`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.models.accuracy import (
    accuracy_failures,
    compare,
    decisive_agreement,
    training_failures,
)
from harness.probes.models.args import (
    BACKENDS,
    DEFAULT_TOLERANCES,
    Backend,
    ModelsArgs,
    Precision,
    Tolerance,
)
from harness.probes.models.collect import collect
from harness.probes.models.export import export_onnx
from harness.probes.models.plan import (
    FRAMEWORK,
    FRAMEWORKS,
    INFER_METRICS,
    RESNET50,
    RESNET50_NOTE,
    WEIGHTS_NOTE,
    config_for,
    family_of,
    inference_runs,
    model_keys,
    precisions_for,
    reference_inputs,
    run_name,
    seeds,
)
from harness.probes.models.score import score
from harness.probes.models.support import on_device, ort_unsupported, precision_unsupported
from harness.probes.models.timing import PROBE_ALLOWANCE, _probe
from harness.registry import probes

__all__ = [
    "BACKENDS",
    "DEFAULT_TOLERANCES",
    "FRAMEWORK",
    "FRAMEWORKS",
    "INFER_METRICS",
    "PROBE_ALLOWANCE",
    "RESNET50",
    "RESNET50_NOTE",
    "WEIGHTS_NOTE",
    "Backend",
    "ModelsArgs",
    "ModelsProbe",
    "Precision",
    "Tolerance",
    "_probe",
    "accuracy_failures",
    "compare",
    "config_for",
    "decisive_agreement",
    "export_onnx",
    "family_of",
    "inference_runs",
    "model_keys",
    "on_device",
    "ort_unsupported",
    "precision_unsupported",
    "precisions_for",
    "reference_inputs",
    "run_name",
    "seeds",
    "training_failures",
]


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

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, ModelsArgs)
        return collect(ctx, args)

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, ModelsArgs)
        return score(evidence, args, ctx.confidence)
