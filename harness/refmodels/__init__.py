"""Reference networks for the `models.reference` probe, one per family.

vision:   a ResNet-style CNN of basic blocks (ResNet-18 at the default sizes)      -> vision.py
language: a BERT-style encoder with a pooled classifier head                       -> language.py
speech:   conv subsampling + bidirectional LSTMs + per-frame CTC logits            -> speech.py
plus the ResNet-50 ONNX graph shipped in the `onnx` wheel (constant weights, full compute)
-> onnx_resnet50.py.

The weights are seeded random (no pretrained checkpoints are downloaded): what the probe
judges is throughput and numerical agreement with an FP32 CPU reference of the very same
weights and inputs, never task accuracy. Every model is built on the CPU in FP32 from a seed,
so the reference and the device under test start from identical parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

Family = Literal["vision", "language", "speech"]
FAMILIES: tuple[Family, ...] = ("vision", "language", "speech")
MELS = 80  # filterbank channels of the speech model's input frames


@dataclass(frozen=True)
class VisionConfig:
    image_size: int = 224
    width: int = 64
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    classes: int = 1000


@dataclass(frozen=True)
class LanguageConfig:
    vocab: int = 30522
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    seq_len: int = 128
    classes: int = 16


@dataclass(frozen=True)
class SpeechConfig:
    frames: int = 800  # 8 s of 10 ms frames
    channels: int = 32
    hidden: int = 256
    layers: int = 2
    symbols: int = 32  # CTC alphabet, symbol 0 is the blank


Config = VisionConfig | LanguageConfig | SpeechConfig


@dataclass
class RefModel:
    """A reference network in FP32 on the CPU, with what it takes to feed and train it."""

    family: Family
    name: str
    description: str
    config: Config
    module: nn.Module
    sample: str  # what one sample is, for throughput units
    input_dtype: torch.dtype
    inputs: Callable[[int, torch.Generator], Tensor]  # n samples, on the CPU
    targets: Callable[[int, torch.Generator], Tensor]  # training targets for n samples
    loss: Callable[[Tensor, Tensor], Tensor]  # (model output, targets) -> scalar loss
    loss_name: str

    def parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def facts(self) -> dict[str, Any]:
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.config).items()}
        return {
            "family": self.family,
            "name": self.name,
            "description": self.description,
            "config": config,
            "parameters": self.parameters(),
            "sample": self.sample,
            "loss": self.loss_name,
            "weights": "seeded random (no pretrained checkpoint): throughput and numerical "
            "agreement are judged, not task accuracy",
        }


def _cross_entropy(output: Tensor, targets: Tensor) -> Tensor:
    return nn.functional.cross_entropy(output.float(), targets)


def subsampled_frames(frames: int) -> int:
    """Output frames of the speech model: two stride-2 convolutions (kernel 3, padding 1)."""
    return ((frames + 1) // 2 + 1) // 2


def build(family: Family, config: Config, seed: int) -> RefModel:
    """The family's network in FP32 on the CPU, in eval mode, weights drawn from `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "vision":
            return _vision(_expect(config, VisionConfig))
        if family == "language":
            return _language(_expect(config, LanguageConfig))
        if family == "speech":
            return _speech(_expect(config, SpeechConfig))
    raise ValueError(f"unknown family {family!r}")


def _expect(config: Config, kind: type[Any]) -> Any:
    if not isinstance(config, kind):
        raise TypeError(f"expected a {kind.__name__}, got {type(config).__name__}")
    return config


def _vision(cfg: VisionConfig) -> RefModel:
    from harness.refmodels.vision import ResNetBasic

    module = ResNetBasic(cfg.width, cfg.blocks, cfg.classes).eval()
    size = cfg.image_size
    blocks = "-".join(str(b) for b in cfg.blocks)
    return RefModel(
        family="vision",
        name=f"ResNet-basic[{blocks}] width {cfg.width}",
        description="ResNet-style CNN (7x7 stem, basic blocks, global pooling, linear "
        f"classifier over {cfg.classes} classes); ResNet-18 is width 64, blocks 2-2-2-2",
        config=cfg,
        module=module,
        sample=f"image 3x{size}x{size}",
        input_dtype=torch.float32,
        inputs=lambda n, gen: torch.randn(n, 3, size, size, generator=gen),
        targets=lambda n, gen: torch.randint(0, cfg.classes, (n,), generator=gen),
        loss=_cross_entropy,
        loss_name="cross-entropy",
    )


def _language(cfg: LanguageConfig) -> RefModel:
    from harness.refmodels.language import BertStyleEncoder

    if cfg.hidden % cfg.heads:
        raise ValueError(f"hidden {cfg.hidden} is not a multiple of heads {cfg.heads}")
    module = BertStyleEncoder(
        cfg.vocab, cfg.hidden, cfg.layers, cfg.heads, cfg.seq_len, cfg.classes
    ).eval()
    return RefModel(
        family="language",
        name=f"BERT-style encoder L{cfg.layers} H{cfg.hidden} A{cfg.heads}",
        description="token + position embeddings, LayerNorm, post-norm transformer encoder "
        f"layers (GELU, feed-forward {4 * cfg.hidden}), tanh pooler on the first token, "
        f"linear classifier over {cfg.classes} classes; vocabulary {cfg.vocab}",
        config=cfg,
        module=module,
        sample=f"sequence of {cfg.seq_len} tokens",
        input_dtype=torch.int64,
        inputs=lambda n, gen: torch.randint(0, cfg.vocab, (n, cfg.seq_len), generator=gen),
        targets=lambda n, gen: torch.randint(0, cfg.classes, (n,), generator=gen),
        loss=_cross_entropy,
        loss_name="cross-entropy",
    )


def _speech(cfg: SpeechConfig) -> RefModel:
    from harness.refmodels.speech import ConvBiLstmCtc

    module = ConvBiLstmCtc(MELS, cfg.channels, cfg.hidden, cfg.layers, cfg.symbols).eval()
    out_frames = subsampled_frames(cfg.frames)
    target_len = max(1, out_frames // 4)

    def ctc(output: Tensor, targets: Tensor) -> Tensor:
        log_probs = output.float().log_softmax(-1).transpose(0, 1)  # [t, b, symbols]
        t, b = log_probs.shape[0], log_probs.shape[1]
        return nn.functional.ctc_loss(
            log_probs,
            targets,
            torch.full((b,), t, dtype=torch.long, device=log_probs.device),
            torch.full((b,), targets.shape[1], dtype=torch.long, device=log_probs.device),
            blank=0,
            zero_infinity=False,
        )

    return RefModel(
        family="speech",
        name=f"Conv-BiLSTM-CTC {cfg.layers}x{cfg.hidden}",
        description=f"{MELS}-dim filterbank frames -> two stride-2 3x3 convolutions "
        f"({cfg.channels} channels, 4x time subsampling) -> linear -> {cfg.layers} "
        f"bidirectional LSTM layers of {cfg.hidden} -> per-frame logits over {cfg.symbols} "
        "CTC symbols (0 = blank)",
        config=cfg,
        module=module,
        sample=f"utterance of {cfg.frames} frames x {MELS} mels",
        input_dtype=torch.float32,
        inputs=lambda n, gen: torch.randn(n, cfg.frames, MELS, generator=gen),
        targets=lambda n, gen: torch.randint(1, cfg.symbols, (n, target_len), generator=gen),
        loss=ctc,
        loss_name=f"CTC (targets of {target_len} symbols over {out_frames} frames)",
    )
