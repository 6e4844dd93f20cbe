"""Shared pieces of the D04 inference-framework probes (`harness.probes.framework`).

- the reference model and labelled set: by default a small, seeded MLP trained on
  scikit-learn's digits and exported to ONNX (FP32), or a submission's own ONNX model and
  .npz set;
- the precision variants of that model (FP16, INT8, INT4) through onnxruntime's own tools;
- ONNX Runtime sessions, with the nodes each execution provider ran (from ORT's profiler);
- external commands (language bindings, command backends) run with a timeout that kills
  the whole process group, and the text contract their output follows.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Language = Literal["c", "cpp", "java", "python"]
CPU_PROVIDER = "CPUExecutionProvider"
MODEL_PLACEHOLDER = "{model}"
INPUT_PLACEHOLDER = "{input}"
TAIL_CHARS = 2000
MAX_STDOUT_BYTES = 16 * 1024 * 1024
KILL_GRACE_S = 2.0


# ------------------------------------------------------------------------ arguments


def onnx_suffix(value: str | None) -> str | None:
    """Validator: a model path names an .onnx file."""
    if value is not None and not value.endswith(".onnx"):
        raise ValueError(f"model must be an .onnx file, got {value!r}")
    return value


def npz_suffix(value: str | None) -> str | None:
    """Validator: a labelled set (or calibration set) path names an .npz file."""
    if value is not None and not value.endswith(".npz"):
        raise ValueError(f"expected an .npz file with arrays x (and y), got {value!r}")
    return value


class ReferenceArgs(BaseModel):
    """Where the reference model and its labelled set come from (shared by the D04 probes).

    Without `model`, the harness trains its own: an MLP (64 -> hidden -> hidden -> 10, ReLU)
    on scikit-learn's digits (8x8 images scaled to [0, 1]), seeded by the run's seed, with
    a stratified train/test split; the held-out part is the labelled set. With `model`
    (an FP32 ONNX classifier: first input float32 [batch, ...], first output [batch,
    classes]) `data` must name an .npz holding `x` (float32, [N, ...]) and `y` (integer
    labels, [N]): the labelled held-out set. `calibration` (an .npz with `x`) gives the
    samples for static INT8 calibration; never the held-out set. Paths are absolute or
    relative to the harness's working directory; they are checked when the task starts
    (the suite's arguments are re-read by `harness audit` on machines without the files).
    A submission's `sut: {adapter: framework}` block gives these three in place of the
    suite's (its paths start at the submission's folder; `harness.adapters.framework_sut`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str | None = None
    data: str | None = None
    calibration: str | None = None
    hidden: int = Field(default=128, ge=8, le=2048)
    epochs: int = Field(default=30, ge=1, le=1000)
    test_fraction: float = Field(default=0.3, gt=0.05, lt=0.9)

    _onnx_suffix = field_validator("model")(onnx_suffix)
    _npz_suffix = field_validator("data", "calibration")(npz_suffix)

    @model_validator(mode="after")
    def _model_and_data(self) -> ReferenceArgs:
        if (self.model is None) != (self.data is None):
            raise ValueError(
                "give both `model` (an FP32 .onnx) and `data` (its labelled .npz), or neither "
                "(the harness's own digits MLP)"
            )
        if self.calibration is not None and self.model is None:
            raise ValueError("`calibration` goes with a submission's own `model` and `data`")
        return self


class CommandSpec(BaseModel):
    """An external program that runs the reference model.

    argv: no shell. Every "{model}" in an element is replaced by the absolute path of the
    reference FP32 .onnx, every "{input}" by the absolute path of the input file ("{input}"
    is required). The input file is UTF-8 text, one sample per line: the sample's values
    (the model's first input without the batch dimension, flattened in C order) as
    whitespace-separated decimal float32 numbers that round-trip exactly (`%.9g`).
    The program must print to stdout exactly one line per input line, in order:
    output "values": the model's first output for that sample (flattened) as
    whitespace-separated decimal numbers; output "class": the predicted class (the index
    of the largest value) as one integer. Other stdout lines (empty ones excepted) fail
    the check. A non-zero exit fails it with the exit code; still running after
    `timeout_s`, it is killed with its whole process group. The working directory is
    `cwd` (relative to the harness's) or the harness's own; for a command a submission
    declares (`sut: {adapter: framework}`) it is the submission's folder, or `cwd` relative
    to it. `env` is added to the harness's environment.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    argv: list[str] = Field(min_length=1)
    output: Literal["values", "class"] = "values"
    timeout_s: float = Field(default=60.0, gt=0)
    cwd: str | None = None
    env: dict[str, str] | None = None

    @field_validator("argv")
    @classmethod
    def _argv(cls, argv: list[str]) -> list[str]:
        if not argv[0]:
            raise ValueError("argv[0], the program, is empty")
        if not any(INPUT_PLACEHOLDER in part for part in argv):
            raise ValueError("argv must contain '{input}' (the path of the input file)")
        return argv


class BackendSpec(BaseModel):
    """One backend: an ONNX Runtime execution provider, or a command (contract:
    `CommandSpec`) that runs the reference model on the backend's chip."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    provider: str | None = None
    provider_options: dict[str, Any] | None = None
    command: CommandSpec | None = None
    chip: str = ""  # what the backend runs on, as declared

    @model_validator(mode="after")
    def _one_kind(self) -> BackendSpec:
        if (self.provider is None) == (self.command is None):
            raise ValueError(f"backend {self.name}: give exactly one of `provider` or `command`")
        if self.provider_options and self.provider is None:
            raise ValueError(f"backend {self.name}: provider_options need a provider")
        return self


def unique_backends(value: list[BackendSpec] | None) -> list[BackendSpec] | None:
    """Validator: backend names are unique, and an execution provider is one backend."""
    if value is None:
        return None
    names = [b.name for b in value]
    providers = [b.provider for b in value if b.provider]
    if len(set(names)) != len(names):
        raise ValueError("backend names must be unique")
    if len(set(providers)) != len(providers):
        raise ValueError("an execution provider is listed twice (it is one backend)")
    return value


# ------------------------------------------------------------------------ utilities


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_path(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


@contextlib.contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Route the root logger to a list while onnxruntime's quantisers run (they log on the
    root logger, and one calls logging.basicConfig at import); the lines go to evidence."""
    lines: list[str] = []

    class _Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"{record.levelname}: {record.getMessage()}")

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = [_Capture()]
    root.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield lines
        lines.extend(f"warning: {w.message}" for w in caught)
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


# ------------------------------------------------------------------------ reference model


@dataclass
class Reference:
    """The FP32 model (as bytes) and the labelled held-out set it is judged on."""

    model_bytes: bytes
    x_test: np.ndarray  # float32, [N, ...]
    y_test: np.ndarray  # int64, [N]
    x_calib: np.ndarray  # float32, training samples (static INT8 calibration)
    facts: dict[str, Any] = field(default_factory=dict)


_CACHE: dict[tuple[Any, ...], Reference] = {}


class ReferenceFileError(ValueError):
    """A reference file (`model`, `data` or `calibration`) is missing or malformed; `key`
    names the argument, the message reads "<key>: <problem>"."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


def check_reference_files(args: ReferenceArgs) -> None:
    """Raise ReferenceFileError (a ValueError) naming the argument when a given file is
    missing or malformed."""
    if args.model is None:
        return
    for key in ("model", "data", "calibration"):
        value = getattr(args, key)
        if value is None:
            continue
        path = Path(value)
        if not path.is_file():
            raise ReferenceFileError(key, f"file not found: {path.resolve()}")
    assert args.data is not None
    try:
        with np.load(args.data, allow_pickle=False) as npz:
            missing = [k for k in ("x", "y") if k not in npz.files]
            if missing:
                raise ReferenceFileError(
                    "data", f"{args.data} lacks array(s) {missing} (has {npz.files})"
                )
            if len(npz["x"]) != len(npz["y"]) or len(npz["y"]) == 0:
                raise ReferenceFileError(
                    "data", f"x has {len(npz['x'])} samples, y {len(npz['y'])} (need equal, > 0)"
                )
            if not np.issubdtype(npz["y"].dtype, np.integer):
                raise ReferenceFileError(
                    "data", f"y must hold integer labels, not {npz['y'].dtype}"
                )
    except ReferenceFileError:
        raise
    except Exception as error:  # not an .npz archive, pickled objects, a damaged file
        raise ReferenceFileError(
            "data", f"cannot read {args.data} as .npz: {type(error).__name__}: {error}"
        ) from None
    if args.calibration is not None:
        try:
            with np.load(args.calibration, allow_pickle=False) as npz:
                has_x = "x" in npz.files
        except Exception as error:
            raise ReferenceFileError(
                "calibration",
                f"cannot read {args.calibration} as .npz: {type(error).__name__}: {error}",
            ) from None
        if not has_x:
            raise ReferenceFileError("calibration", f"{args.calibration} lacks array x")


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


# ------------------------------------------------------------------------ ONNX facts


def graph_facts(model_bytes: bytes) -> dict[str, Any]:
    """Op types (with their domain when not the default one) and initializer element types."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    ops = Counter(
        f"{n.domain}.{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        for n in model.graph.node
    )
    types = Counter(
        onnx.TensorProto.DataType.Name(t.data_type).lower() for t in model.graph.initializer
    )
    return {
        "ops": dict(sorted(ops.items())),
        "initializer_types": dict(sorted(types.items())),
        "nodes": len(model.graph.node),
    }


def input_facts(model_bytes: bytes) -> dict[str, Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=[CPU_PROVIDER])
    first = session.get_inputs()[0]
    out = session.get_outputs()[0]
    return {
        "input": first.name,
        "input_type": first.type,
        "input_shape": [d if isinstance(d, int) else str(d) for d in first.shape],
        "output": out.name,
        "output_shape": [d if isinstance(d, int) else str(d) for d in out.shape],
    }


def session_options(threads: int | None, profile_dir: Path | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_dir / "ort_profile")
    return options


def run_session_once(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=[CPU_PROVIDER])
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: x})[0])


def batch_capacity(session: Any) -> int | None:
    """The fixed batch size of the model's first input, or None when it is dynamic."""
    dim = session.get_inputs()[0].shape[0] if session.get_inputs()[0].shape else None
    return dim if isinstance(dim, int) and dim > 0 else None


def predict(session: Any, x: np.ndarray, batch: int) -> np.ndarray:
    name = session.get_inputs()[0].name
    outputs = [
        np.asarray(session.run(None, {name: x[i : i + batch]})[0]) for i in range(0, len(x), batch)
    ]
    logits = np.concatenate(outputs, axis=0)
    return logits.reshape(len(x), -1)


# ------------------------------------------------------------------------ variants


@dataclass
class Variant:
    precision: str
    model_bytes: bytes | None
    method: str
    log: list[str]
    reason: str = ""  # why it could not be produced (model_bytes is None)


def make_variant(
    precision: str,
    fp32: bytes,
    *,
    int8_method: str,
    calibration: np.ndarray,
    input_name: str,
    int4_block_size: int,
    int4_symmetric: bool,
    int4_accuracy_level: int | None,
    int4_quantizer: str,
) -> Variant:
    """Produce one precision of the FP32 model; never raises for a tool's failure."""
    if precision == "fp32":
        return Variant("fp32", fp32, "the reference model as given", [])
    with tempfile.TemporaryDirectory() as tmp, captured_logs() as log:
        src = Path(tmp) / "fp32.onnx"
        dst = Path(tmp) / f"{precision}.onnx"
        src.write_bytes(fp32)
        try:
            if precision == "fp16":
                method = _fp16(src, dst)
            elif precision == "int8":
                method = _int8(src, dst, int8_method, calibration, input_name)
            elif precision == "int4":
                method = _int4(
                    src,
                    dst,
                    int4_block_size,
                    int4_symmetric,
                    int4_accuracy_level,
                    int4_quantizer,
                )
            else:
                raise ValueError(f"unknown precision {precision}")
            data = dst.read_bytes()
        except Exception as error:
            return Variant(
                precision, None, "", list(log), reason=f"{type(error).__name__}: {error}"
            )
    return Variant(precision, data, method, list(log))


def _fp16(src: Path, dst: Path) -> str:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return (
        "onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True): "
        "FP16 weights and activations, FP32 inputs/outputs through Cast nodes"
    )


def _int8(src: Path, dst: Path, method: str, calibration: np.ndarray, input_name: str) -> str:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    if method == "dynamic":
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        return (
            "onnxruntime.quantization.quantize_dynamic(weight_type=QInt8): INT8 weights "
            "(per tensor), activations quantised to UINT8 at run time (DynamicQuantizeLinear), "
            "integer MatMul (MatMulInteger)"
        )
    if len(calibration) == 0:
        raise ValueError("static INT8 needs calibration samples (the `calibration` .npz)")
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._items = iter(
                [{input_name: calibration[i : i + 1]} for i in range(len(calibration))]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    quantize_static(
        str(src),
        str(dst),
        _Reader(),
        quant_format=QuantFormat.QOperator,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return (
        f"onnxruntime.quantization.quantize_static(QOperator, UINT8 activations, INT8 "
        f"weights), MinMax calibration over {len(calibration)} training samples: "
        "QLinearMatMul"
    )


def _int4(
    src: Path,
    dst: Path,
    block_size: int,
    symmetric: bool,
    accuracy_level: int | None,
    quantizer: str,
) -> str:
    import onnx

    ort_quantizer: Any = None
    import_error = ""
    if quantizer in ("auto", "onnxruntime"):
        try:
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

            ort_quantizer = MatMulNBitsQuantizer
        except ImportError as error:  # onnx_ir, which it imports, is not a dependency
            import_error = f"{type(error).__name__}: {error}"
            if quantizer == "onnxruntime":
                raise RuntimeError(
                    f"onnxruntime's MatMulNBitsQuantizer cannot be imported ({import_error})"
                ) from None
    described = (
        f"4-bit weights in blocks of {block_size} along K, "
        f"{'symmetric' if symmetric else 'asymmetric (zero points)'}, FP32 scales, "
        f"accuracy_level {accuracy_level if accuracy_level is not None else 'default'}"
    )
    if ort_quantizer is not None:
        from onnxruntime.quantization import QuantFormat

        q = ort_quantizer(
            onnx.load(str(src)),
            bits=4,
            block_size=block_size,
            is_symmetric=symmetric,
            accuracy_level=accuracy_level,
            quant_format=QuantFormat.QOperator,
            op_types_to_quantize=("MatMul",),
        )
        q.process()
        q.model.save_model_to_file(str(dst), use_external_data_format=False)
        return (
            "onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer "
            f"(QOperator, MatMul -> com.microsoft.MatMulNBits): {described}"
        )
    model, replaced = int4_rewrite(onnx.load(str(src)), block_size, symmetric, accuracy_level)
    if not replaced:
        raise RuntimeError("the model has no MatMul with a 2-D constant weight to quantise")
    onnx.save(model, str(dst))
    return (
        "harness rewrite of MatMul -> com.microsoft.MatMulNBits with onnxruntime's own block "
        "quantiser (onnxruntime.capi quantize_matmul_4bits), the same steps as "
        "MatMulNBitsQuantizer, which could not be imported here "
        f"({import_error or 'harness quantizer requested'}): {described}"
    )


def int4_rewrite(
    model: Any, block_size: int, symmetric: bool, accuracy_level: int | None
) -> tuple[Any, int]:
    """Replace every top-level MatMul whose weight is a 2-D float32 initializer by
    com.microsoft.MatMulNBits (4 bits), packing with onnxruntime's own kernel."""
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers = Counter(name for n in graph.node for name in n.input)
    new_nodes = []
    replaced = 0
    for node in graph.node:
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2 or weight.data_type != onnx.TensorProto.FLOAT:
            new_nodes.append(node)
            continue
        w = np.ascontiguousarray(numpy_helper.to_array(weight), dtype=np.float32)
        rows, cols = w.shape  # K, N
        k_blocks = (rows + block_size - 1) // block_size
        blob = block_size // 2
        if k_blocks * block_size != rows:
            w = np.pad(w, ((0, k_blocks * block_size - rows), (0, 0)))
        packed = np.zeros((cols, k_blocks, blob), dtype=np.uint8)
        scales = np.zeros((cols, k_blocks), dtype=np.float32)
        zeros = np.zeros((cols, (k_blocks + 1) // 2), dtype=np.uint8)
        quantize_matmul_4bits(packed, w, scales, zeros, block_size, cols, rows, symmetric)
        base = weight.name
        graph.initializer.extend(
            [
                numpy_helper.from_array(packed, f"{base}_Q4"),
                numpy_helper.from_array(scales, f"{base}_scales"),
            ]
        )
        inputs = [node.input[0], f"{base}_Q4", f"{base}_scales"]
        if not symmetric:
            graph.initializer.append(numpy_helper.from_array(zeros, f"{base}_zero_points"))
            inputs.append(f"{base}_zero_points")
        attrs: dict[str, Any] = {"K": rows, "N": cols, "bits": 4, "block_size": block_size}
        if accuracy_level:
            attrs["accuracy_level"] = accuracy_level
        new_nodes.append(
            helper.make_node(
                "MatMulNBits",
                inputs,
                list(node.output),
                name=f"{node.name}_Q4",
                domain="com.microsoft",
                **attrs,
            )
        )
        consumers[base] -= 1
        replaced += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    unused = [t for t in graph.initializer if t.name in inits and consumers[t.name] <= 0]
    for t in unused:
        graph.initializer.remove(t)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model, replaced


# ------------------------------------------------------------------------ providers


def run_provider(
    model_bytes: bytes,
    x: np.ndarray,
    provider: str,
    options: dict[str, Any] | None,
    threads: int | None,
) -> dict[str, Any]:
    """Run the model on one execution provider, with ORT's profiler on; return the outputs
    and the nodes each provider executed (or the error)."""
    import onnxruntime as ort

    record: dict[str, Any] = {"provider": provider, "provider_options": options or {}}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            so = session_options(threads, Path(tmp))
            entry: Any = (provider, options) if options else provider
            t0 = time.perf_counter()
            session = ort.InferenceSession(model_bytes, so, providers=[entry])
            record["session_s"] = time.perf_counter() - t0
            record["session_providers"] = session.get_providers()
            name = session.get_inputs()[0].name
            t0 = time.perf_counter()
            out = np.asarray(session.run(None, {name: x})[0])
            record["run_s"] = time.perf_counter() - t0
            profile = Path(session.end_profiling())
            record["nodes"] = profiled_nodes(json.loads(profile.read_text(encoding="utf-8")))
            record["outputs"] = out.reshape(len(x), -1).astype(np.float64).tolist()
            record["status"] = "ran"
        except Exception as error:
            record["status"] = "error"
            record["reason"] = f"{type(error).__name__}: {error}"
    return record


def profiled_nodes(events: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The distinct nodes ORT's profiler saw executing, with the provider that ran each."""
    seen: dict[str, dict[str, str]] = {}
    for event in events:
        if event.get("cat") != "Node":
            continue
        args = event.get("args") or {}
        provider = args.get("provider")
        if not provider:
            continue
        name = str(event.get("name", "")).removesuffix("_kernel_time")
        seen.setdefault(
            name, {"node": name, "op": str(args.get("op_name", "")), "provider": provider}
        )
    return list(seen.values())


# ------------------------------------------------------------------------ commands


def format_inputs(x: np.ndarray) -> str:
    flat = x.reshape(len(x), -1)
    return "".join(" ".join(f"{v:.9g}" for v in row.tolist()) + "\n" for row in flat)


def substitute(argv: Sequence[str], model: Path, inputs: Path) -> list[str]:
    return [
        part.replace(MODEL_PLACEHOLDER, str(model)).replace(INPUT_PLACEHOLDER, str(inputs))
        for part in argv
    ]


def run_command(spec: CommandSpec, model: Path, inputs: Path) -> tuple[dict[str, Any], bytes]:
    """Run one command; the record (never raises) and its raw stdout."""
    argv = substitute(spec.argv, model, inputs)
    cwd = Path(spec.cwd).resolve() if spec.cwd else Path.cwd()
    env = dict(os.environ)
    env.update(spec.env or {})
    record: dict[str, Any] = {
        "argv": argv,
        "cwd": str(cwd),
        "env_added": dict(spec.env or {}),
        "timeout_s": spec.timeout_s,
        "output": spec.output,
    }
    program = argv[0]
    if os.sep not in program and shutil.which(program, path=env.get("PATH")) is None:
        record.update(status="not_run", reason=f"program {program!r} not found on PATH")
        return record, b""
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as error:
        record.update(status="not_run", reason=f"cannot start: {type(error).__name__}: {error}")
        return record, b""
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=spec.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        try:
            stdout, stderr = proc.communicate(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            stdout, stderr = b"", b""
    wall = time.perf_counter() - t0
    err_text = stderr.decode("utf-8", errors="replace")
    record.update(
        wall_s=wall,
        exit_code=proc.returncode,
        timed_out=timed_out,
        stdout_bytes=len(stdout),
        stdout_tail=tail(stdout.decode("utf-8", errors="replace")),
        stderr_tail=tail(err_text),
    )
    if timed_out:
        record.update(status="timeout", reason=f"timeout after {spec.timeout_s:g} s (killed)")
    elif proc.returncode != 0:
        last = next((ln for ln in reversed(err_text.splitlines()) if ln.strip()), "")
        record.update(status="crashed", reason=f"exit {proc.returncode}: {last[:300]}")
    else:
        record["status"] = "ran"
    if len(stdout) > MAX_STDOUT_BYTES:
        stdout = stdout[:MAX_STDOUT_BYTES]
        record["stdout_truncated"] = True
    return record, stdout


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


# ------------------------------------------------------------------------ comparison


def compare_outputs(
    got: np.ndarray | list[int], reference: np.ndarray, output: str, tolerance: float
) -> tuple[bool, dict[str, Any]]:
    """Check a run's outputs against the reference outputs [N, C] (pure)."""
    scale = float(np.abs(reference).max()) if reference.size else 0.0
    limit = tolerance * scale if scale > 0 else tolerance
    ref_class = reference.argmax(axis=1)
    top2 = np.sort(reference, axis=1)[:, -2:] if reference.shape[1] > 1 else None
    margin = (top2[:, 1] - top2[:, 0]) if top2 is not None else np.full(len(reference), np.inf)
    near_tie = margin <= 2 * limit  # top-1 may legitimately differ within the tolerance
    if output == "class":
        classes = np.asarray(got, dtype=np.int64)
        mismatched = (classes != ref_class) & ~near_tie
        detail = {
            "compared": "predicted class vs the reference's argmax (near-ties excused)",
            "mismatches": int(mismatched.sum()),
            "near_ties": int(near_tie.sum()),
            "first_mismatch": int(np.argmax(mismatched)) if mismatched.any() else None,
        }
        return not mismatched.any(), detail
    values = np.asarray(got, dtype=np.float64)
    if values.shape != reference.shape:
        return False, {"reason": f"output shape {list(values.shape)} != {list(reference.shape)}"}
    finite = bool(np.isfinite(values).all())
    err = np.abs(values - reference)
    max_abs = float(err.max()) if err.size else 0.0
    class_mismatch = (values.argmax(axis=1) != ref_class) & ~near_tie
    detail = {
        "compared": "values vs the reference, max |diff| / max |reference|",
        "max_abs_err": max_abs if finite else None,
        "max_abs_reference": scale,
        "max_rel_err": (max_abs / scale if scale > 0 else max_abs) if finite else None,
        "tolerance": tolerance,
        "top1_mismatches": int(class_mismatch.sum()),
        "near_ties": int(near_tie.sum()),
    }
    return finite and max_abs <= limit and not class_mismatch.any(), detail


def parse_stdout(raw: bytes, n: int, width: int, output: str) -> tuple[Any, str]:
    """Parse a command's stdout by the contract; (parsed, "") or (None, reason)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, f"bad output: stdout is not UTF-8 ({error})"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) != n:
        return None, f"bad output: {len(lines)} non-empty lines for {n} inputs"
    if output == "class":
        classes: list[int] = []
        for i, line in enumerate(lines):
            try:
                classes.append(int(line.strip()))
            except ValueError:
                return None, f"bad output: line {i + 1} is not one integer: {line[:80]!r}"
        return classes, ""
    rows: list[list[float]] = []
    for i, line in enumerate(lines):
        try:
            row = [float(v) for v in line.split()]
        except ValueError:
            return None, f"bad output: line {i + 1} holds a non-number: {line[:80]!r}"
        if len(row) != width:
            return None, f"bad output: line {i + 1} has {len(row)} values, expected {width}"
        rows.append(row)
    return rows, ""


HARNESS_PYTHON_BINDING = """\
import sys

import numpy as np
import onnxruntime as ort

model, inputs = sys.argv[1], sys.argv[2]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
first = session.get_inputs()[0]
dims = [d if isinstance(d, int) else -1 for d in first.shape[1:]]
with open(inputs, encoding="utf-8") as handle:
    for line in handle:
        if not line.strip():
            continue
        x = np.array(line.split(), dtype=np.float32).reshape([1, *dims])
        out = np.asarray(session.run(None, {first.name: x})[0]).reshape(-1)
        print(" ".join(f"{v:.9g}" for v in out.tolist()), flush=True)
"""
