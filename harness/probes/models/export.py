"""ONNX: export of a reference network with the TorchScript exporter, and the ONNX Runtime
sessions (CPU provider; CUDA provider with TF32 off) that run it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.probes.framework import sha256_bytes
from harness.refmodels import RefModel

if TYPE_CHECKING:
    import torch


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
        "sha256": sha256_bytes(data),
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
        # without enable_fallback=0, ORT retries a failing CUDA provider on the CPU silently
        try:
            session = ort.InferenceSession(
                source,
                options,
                providers=[("CUDAExecutionProvider", cuda_options)],
                enable_fallback=0,
            )
            facts["cuda_options"] = cuda_options
        except Exception as error:  # an older provider without use_tf32
            facts["use_tf32_rejected"] = f"{type(error).__name__}: {error}"
            session = ort.InferenceSession(
                source,
                options,
                providers=[("CUDAExecutionProvider", {"device_id": str(index)})],
                enable_fallback=0,
            )
        used = session.get_providers()
        if not used or used[0] != "CUDAExecutionProvider":
            raise RuntimeError(f"ONNX Runtime did not take the CUDA provider (got {used})")
    facts["providers"] = session.get_providers()
    return session, facts
