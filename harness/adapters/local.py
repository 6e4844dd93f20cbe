"""System-under-test adapters. This module brings `local`: the machine the harness runs on,
driven in-process through torch. Other adapters register under the same registry."""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

from harness.registry import adapters


def device_form(device: str) -> str:
    """Validator: a device is one of auto, cpu, cuda, cuda:N."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ValueError("expected one of auto, cpu, cuda, cuda:N")
    return device


@adapters.register("local")
class LocalAdapter:
    """The local machine: its CPU, or a CUDA device torch can see."""

    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        adapter: str = "local"
        device: str = "auto"

        _device_form = field_validator("device")(device_form)

    description: ClassVar[str] = "the machine the harness runs on (CPU or a local CUDA GPU)"

    @staticmethod
    def resolve_device(args: Args) -> str:
        """The torch device string to use; raises ValueError if it is not present."""
        import torch

        device = args.device
        if device == "auto":
            return "cuda:0" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise ValueError(f"{device} requested but torch sees no CUDA device")
            index = int(device.split(":")[1]) if ":" in device else 0
            if index >= torch.cuda.device_count():
                raise ValueError(f"{device} requested; torch sees {torch.cuda.device_count()}")
            return f"cuda:{index}"
        return "cpu"
