"""What a `models.reference` run covers: the models, the (model, backend, precision) runs and
their names, each family's network configuration and seeds, and the notes the methods carry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.probes.models.args import Backend, ModelsArgs, Precision
from harness.refmodels import (
    FAMILIES,
    Config,
    Family,
    LanguageConfig,
    RefModel,
    SpeechConfig,
    VisionConfig,
)

if TYPE_CHECKING:
    import torch

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
