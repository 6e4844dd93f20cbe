"""One inference run: torch on the device (autocast for bf16 / fp16) or an ONNX Runtime
session, timed under the budget, then its outputs on the reference batch compared."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.probes.device import synchronizer
from harness.probes.models.accuracy import compare
from harness.probes.models.args import ModelsArgs
from harness.probes.models.export import _ort_session
from harness.probes.models.support import _autocast, ort_unsupported, precision_unsupported
from harness.probes.models.timing import _time_runs
from harness.refmodels import RefModel

if TYPE_CHECKING:
    import torch


def _torch_infer(
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
