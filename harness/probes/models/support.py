"""What the device under test can run (precisions, ONNX Runtime providers) and the torch
settings around a run: IEEE FP32 on CUDA, autocast, releasing cached device memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


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


def _empty_cache(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
