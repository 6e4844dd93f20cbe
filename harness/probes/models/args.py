"""`models.reference` arguments: networks, backends, precisions, timing and the accuracy
tolerances each precision must meet against the FP32 CPU reference."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.refmodels import FAMILIES, Family

Precision = Literal["fp32", "bf16", "fp16"]
Backend = Literal["torch", "onnxruntime_cpu", "onnxruntime_cuda"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnxruntime_cpu", "onnxruntime_cuda")


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
