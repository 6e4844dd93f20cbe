"""The reference model and its labelled held-out set, shared by the D04 probes.

By default a small, seeded MLP (64 -> hidden -> hidden -> 10) trained on scikit-learn's
digits and exported to ONNX (FP32); otherwise a submission's (or the suite's) own FP32 ONNX
model and .npz set, whose files are checked before use.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.contracts.framework import (
    ReferenceArgs,
    check_reference_files,
)
from harness.probes.framework.sessions import run_session_once
from harness.probes.framework.util import sha256_bytes, sha256_path


@dataclass
class Reference:
    """The FP32 model (as bytes) and the labelled held-out set it is judged on."""

    model_bytes: bytes
    x_test: np.ndarray  # float32, [N, ...]
    y_test: np.ndarray  # int64, [N]
    x_calib: np.ndarray  # float32, training samples (static INT8 calibration)
    facts: dict[str, Any] = field(default_factory=dict)


_CACHE: dict[tuple[Any, ...], Reference] = {}


def load_reference(args: ReferenceArgs, seed: int) -> Reference:
    check_reference_files(args)
    if args.model is not None:
        return _submitted_reference(args)
    key = (seed, args.hidden, args.epochs, args.test_fraction)
    if key not in _CACHE:
        _CACHE[key] = _digits_reference(seed, args.hidden, args.epochs, args.test_fraction)
    return _CACHE[key]


def _submitted_reference(args: ReferenceArgs) -> Reference:
    assert args.model is not None and args.data is not None
    model_bytes = Path(args.model).read_bytes()
    with np.load(args.data, allow_pickle=False) as npz:
        x = np.ascontiguousarray(npz["x"], dtype=np.float32)
        y = np.asarray(npz["y"], dtype=np.int64)
    calib = np.zeros((0, *x.shape[1:]), dtype=np.float32)
    if args.calibration is not None:
        with np.load(args.calibration, allow_pickle=False) as npz:
            calib = np.ascontiguousarray(npz["x"], dtype=np.float32)
    facts = {
        "source": "submission",
        "model": str(Path(args.model).resolve()),
        "model_sha256": sha256_bytes(model_bytes),
        "data": str(Path(args.data).resolve()),
        "data_sha256": sha256_path(Path(args.data)),
        "calibration": None if args.calibration is None else str(Path(args.calibration)),
        "test_samples": len(y),
        "sample_shape": list(x.shape[1:]),
    }
    return Reference(model_bytes, x, y, calib, facts)


def _digits_reference(seed: int, hidden: int, epochs: int, test_fraction: float) -> Reference:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-for-bit the same training on any machine
    try:
        model, losses = _train_mlp(x_train, y_train, seed, hidden, epochs)
        with torch.no_grad():
            torch_logits = model(torch.from_numpy(x_test)).numpy()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "fp32.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    (torch.from_numpy(x_test[:1]),),
                    str(path),
                    dynamo=False,
                    input_names=["x"],
                    output_names=["logits"],
                    dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                    opset_version=17,
                )
            model_bytes = path.read_bytes()
    finally:
        torch.set_num_threads(threads)
    ort_logits = run_session_once(model_bytes, x_test)
    facts = {
        "source": "harness",
        "dataset": "scikit-learn digits (load_digits: 1797 8x8 images, values / 16)",
        "split": {
            "method": "sklearn train_test_split, stratified",
            "test_fraction": test_fraction,
            "random_state": seed,
            "train_samples": len(y_train),
            "test_samples": len(y_test),
        },
        "model": {
            "architecture": f"MLP 64 -> {hidden} -> {hidden} -> 10 (ReLU), MatMul + Add",
            "parameters": 64 * hidden + hidden + hidden * hidden + hidden + hidden * 10 + 10,
            "training": f"Adam lr 1e-3, batch 64, {epochs} epochs, torch seed {seed}, 1 thread",
            "final_epoch_loss": losses[-1],
            "torch_test_accuracy": float((torch_logits.argmax(1) == y_test).mean()),
            "export": "torch.onnx.export(dynamo=False), opset 17, dynamic batch",
            "export_max_abs_diff_vs_torch": float(np.abs(ort_logits - torch_logits).max()),
        },
        "model_sha256": sha256_bytes(model_bytes),
        "sample_shape": [64],
    }
    return Reference(model_bytes, x_test, y_test, x_train, facts)


def _train_mlp(
    x: np.ndarray, y: np.ndarray, seed: int, hidden: int, epochs: int
) -> tuple[Any, list[float]]:
    import torch

    class Mlp(torch.nn.Module):
        def __init__(self, sizes: Sequence[int], gen: torch.Generator) -> None:
            super().__init__()
            self.weights = torch.nn.ParameterList()
            self.biases = torch.nn.ParameterList()
            for fan_in, fan_out in itertools.pairwise(sizes):
                w = torch.randn(fan_in, fan_out, generator=gen) * math.sqrt(2.0 / fan_in)
                self.weights.append(torch.nn.Parameter(w))
                self.biases.append(torch.nn.Parameter(torch.zeros(fan_out)))

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            last = len(self.weights) - 1
            for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
                h = torch.matmul(h, w) + b  # MatMul + Add in ONNX (what the quantisers take)
                if i < last:
                    h = torch.relu(h)
            return h

    gen = torch.Generator().manual_seed(seed)
    model = Mlp([x.shape[1], hidden, hidden, 10], gen)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    losses: list[float] = []
    for _ in range(epochs):
        order = torch.randperm(len(xs), generator=gen)
        total = 0.0
        for start in range(0, len(xs), 64):
            idx = order[start : start + 64]
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(xs))
    model.eval()
    return model, losses
