"""ONNX models: `onnx.load(path, load_external_data=False)`; every initializer (of the main
graph, its sub-graphs, and sparse initializers at their dense dims) recorded from its dims,
never its data. An initializer with external data is recorded over its (location, offset,
length) range: two initializers over one range are one tensor stored once. The external
files are checked against their sizes, not read.

The graph says what some initializers are: the scale and zero-point inputs of
DequantizeLinear / QuantizeLinear / QLinearConv / QLinearMatMul / MatMulInteger /
ConvInteger, and the scales, zero points and g_idx of com.microsoft MatMulNBits, are
quantisation side tensors; MatMulNBits' packed weight B holds K x N logical weights (its
attributes), whatever its uint8 storage.

The file's bytes are read once, hashed and parsed (`onnx.load_from_string`, which, as
`onnx.load(..., load_external_data=False)`, leaves external data alone). Hashed: the whole
.onnx file (the graph, and inline initializers, which protobuf holds in
the same message); external data files are not read. Before onnx parses it, the file's
top-level protobuf fields are walked so that a truncated file is refused at the byte offset
of the field that runs past its end."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.errors import BadInput
from harness.probes.checkpoints.records import (
    CheckpointRead,
    FileRecord,
    TensorRecord,
    at,
    file_size,
    sha256_hex,
)

# op type -> (input positions that are quantisation side tensors)
SIDE_INPUTS = {
    "DequantizeLinear": (1, 2),
    "QuantizeLinear": (1, 2),
    "QLinearConv": (1, 2, 4, 5, 6, 7),
    "QLinearMatMul": (1, 2, 4, 5, 6, 7),
    "MatMulInteger": (2, 3),
    "ConvInteger": (2, 3),
    "MatMulNBits": (2, 3, 4),
    "DynamicQuantizeMatMul": (2, 3),
}


def read_file(path: Path, label: str) -> CheckpointRead:
    import onnx

    size = file_size(path)
    data = path.read_bytes()
    _walk_top_level(path, data)
    try:
        model = onnx.load_from_string(data)
    except Exception as error:  # protobuf's DecodeError and others
        raise BadInput(path, None, f"not an ONNX model ({type(error).__name__}: {error})") from None
    out = CheckpointRead(format="onnx")
    out.files.append(
        FileRecord(
            path=label,
            format="onnx",
            size=size,
            header_bytes=len(data),
            header_sha256=sha256_hex(data),
            header_what="the whole .onnx file (graph and any inline initializers; protobuf "
            "holds them in one message); external data files not read",
        )
    )
    roles: dict[str, dict[str, Any]] = {}
    initializers: list[Any] = []
    _graph(model.graph, initializers, roles)
    externals: dict[str, int] = {}
    for tensor, sparse in initializers:
        dtype = onnx.TensorProto.DataType.Name(tensor.data_type)
        dims = tuple(int(d) for d in tensor.dims)
        storage = start = end = None
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            storage, start, end = _external(path, label, tensor, dtype, dims, externals, out)
        role = roles.get(tensor.name)
        if sparse:
            role = {**(role or {}), "sparse": "a sparse initializer: counted at its dense dims"}
        out.tensors.append(TensorRecord(tensor.name, label, dtype, dims, storage, start, end, role))
    return out


def _graph(graph: Any, initializers: list[Any], roles: dict[str, dict[str, Any]]) -> None:
    import onnx

    initializers.extend((t, False) for t in graph.initializer)
    for sparse in graph.sparse_initializer:
        dense = onnx.TensorProto()
        dense.name = sparse.values.name
        dense.data_type = sparse.values.data_type
        dense.dims.extend(sparse.dims)
        initializers.append((dense, True))
    for node in graph.node:
        for position in SIDE_INPUTS.get(node.op_type, ()):
            if position < len(node.input) and node.input[position]:
                roles[node.input[position]] = {
                    "side": f"input {position} of {node.op_type} {node.name or '(unnamed)'}"
                }
        if node.op_type == "MatMulNBits" and len(node.input) > 1:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if isinstance(attrs.get("K"), int) and isinstance(attrs.get("N"), int):
                roles[node.input[1]] = {
                    "packed_logical": int(attrs["K"]) * int(attrs["N"]),
                    "bits": int(attrs.get("bits", 4)),
                    "why": f"B of MatMulNBits {node.name or '(unnamed)'}: K x N = "
                    f"{attrs['K']} x {attrs['N']}",
                }
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _graph(attr.g, initializers, roles)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    _graph(sub, initializers, roles)


def _external(
    path: Path,
    label: str,
    tensor: Any,
    dtype: str,
    dims: tuple[int, ...],
    externals: dict[str, int],
    out: CheckpointRead,
) -> tuple[str, int, int]:
    import onnx
    from onnx.external_data_helper import ExternalDataInfo

    info = ExternalDataInfo(tensor)
    location = str(info.location)
    target = (path.parent / location).resolve()
    if not location or not target.is_relative_to(path.parent.resolve()):
        raise BadInput(
            path,
            f"initializer {tensor.name}",
            f"external location {location!r} is not a file beside the model",
        )
    if location not in externals:
        if not target.is_file():
            raise BadInput(
                path, f"initializer {tensor.name}", f"external data {location} not found"
            )
        externals[location] = target.stat().st_size
        out.files.append(
            FileRecord(
                location,
                "onnx-external",
                externals[location],
                0,
                sha256_hex(b""),
                "external data: size checked, nothing read",
            )
        )
    offset = int(info.offset or 0)
    item_bits = 8 * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    if dtype in ("INT4", "UINT4", "FLOAT4E2M1"):
        item_bits = 4
    length = int(info.length) if info.length else -(-math.prod(dims) * item_bits // 8)
    if offset + length > externals[location]:
        raise BadInput(
            target,
            at(offset + length),
            f"initializer {tensor.name} of {label}: its data ends at byte offset "
            f"{offset + length}, beyond the file's end at {externals[location]} (truncated)",
        )
    return location, offset, offset + length


def _walk_top_level(path: Path, data: bytes) -> None:
    """The top-level protobuf fields of the file, each within it; BadInput at the byte
    offset of the first that is not (a truncated or non-protobuf file)."""
    pos, end = 0, len(data)
    if end == 0:
        raise BadInput(path, at(0), "empty file, not an ONNX model")
    while pos < end:
        start = pos
        key, pos = _varint(path, data, pos, start)
        wire, number = key & 7, key >> 3
        if number == 0:
            raise BadInput(path, at(start), "not an ONNX protobuf (field number 0)")
        if wire == 0:
            _, pos = _varint(path, data, pos, start)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(path, data, pos, start)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise BadInput(path, at(start), f"not an ONNX protobuf (wire type {wire})")
        if pos > end:
            raise BadInput(
                path,
                at(start),
                f"truncated: top-level field {number} starting here runs to byte offset {pos}, "
                f"the file ends at {end}",
            )


def _varint(path: Path, data: bytes, pos: int, start: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise BadInput(path, at(start), "truncated: a varint runs past the file's end")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise BadInput(path, at(start), "not an ONNX protobuf (varint too long)")
