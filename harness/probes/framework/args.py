"""The D04 probes' arguments (what a suite may set) and the harness's defaults."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.contracts.framework import (
    BackendSpec,
    CommandSpec,
    Language,
    ReferenceArgs,
    unique_backends,
)
from harness.probes.framework.sessions import CPU_PROVIDER

Precision = Literal["fp32", "fp16", "int8", "int4"]
ALL_PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8", "int4")

# Harness defaults (the guide says only "meets application needs"): the largest accuracy
# drop vs FP32, in percentage points, for a precision to count as verified.
DEFAULT_TOLERANCE_PP: dict[str, float] = {"fp16": 1.0, "int8": 2.0, "int4": 5.0}


def _default_tolerances() -> dict[str, float]:
    return dict(DEFAULT_TOLERANCE_PP)


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


class CheckArgs(ReferenceArgs):
    inputs: int = Field(default=64, ge=1)  # held-out samples sent to each binding / backend
    store_model_max_mb: float = Field(default=64.0, ge=0)


class BindingsArgs(CheckArgs):
    bindings: dict[Language, CommandSpec] | None = None
    tolerance: float = Field(default=1e-4, gt=0)  # max |diff| / max |reference|


class BackendsArgs(CheckArgs):
    backends: list[BackendSpec] | None = None
    tolerance: float = Field(default=1e-2, gt=0)  # reduced-precision hardware allowed
    min_node_share: float = Field(default=0.5, gt=0, le=1)
    intra_op_threads: int | None = Field(default=None, ge=1)

    _unique = field_validator("backends")(unique_backends)
