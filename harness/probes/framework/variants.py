"""The precision variants of the FP32 reference model (FP16, INT8, INT4), built with
onnxruntime's own tools, and the graph facts (op types, initializer types) that show a
variant holds the ops of the precision it claims."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The ops a variant's graph must hold to be the precision it claims.
REQUIRED_OPS: dict[str, tuple[str, ...]] = {
    "int8:dynamic": ("MatMulInteger", "DynamicQuantizeLinear"),
    "int8:static": ("QLinearMatMul", "QuantizeLinear"),
    "int4": ("com.microsoft.MatMulNBits",),
}


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
