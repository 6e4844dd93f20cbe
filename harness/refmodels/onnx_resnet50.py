"""The ResNet-50 ONNX graph shipped in the `onnx` wheel's backend test data.

It is the real ResNet-50 topology (53 convolutions, 16 bottleneck additions, 224x224 input,
batch 1 fixed by the graph) with every weight a constant (0.02) made by ConstantOfShape
nodes: the full compute runs, but every channel carries the same value, so the softmax
output is uniform over the classes by construction. `prepare` adds the pre-pooling feature
map (the input of the graph's AveragePool, [1, 2048, 7, 7]) as a second output: it varies
with the input and is what the accuracy comparison uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RELATIVE_PATH = "backend/test/data/light/light_resnet50.onnx"


def shipped_path() -> Path:
    import onnx

    return Path(onnx.__file__).parent / RELATIVE_PATH


@dataclass(frozen=True)
class PreparedGraph:
    model: bytes  # the serialised graph with the feature map added as an output
    input_name: str
    input_shape: list[int]
    output_name: str  # the graph's own output (softmax)
    feature_name: str  # the added output (pre-pooling feature map)
    source: Path
    opset: int


def prepare(path: Path | None = None) -> PreparedGraph:
    import onnx

    source = path or shipped_path()
    model = onnx.load(str(source))
    pools = [n for n in model.graph.node if n.op_type in ("AveragePool", "GlobalAveragePool")]
    if len(pools) != 1:
        raise ValueError(f"{source}: expected one average pooling node, found {len(pools)}")
    feature = pools[0].input[0]
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(feature, onnx.TensorProto.FLOAT, None)
    )
    initialisers = {i.name for i in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in initialisers]
    if len(graph_inputs) != 1:
        raise ValueError(f"{source}: expected one data input, found {len(graph_inputs)}")
    data = graph_inputs[0]
    shape = [d.dim_value for d in data.type.tensor_type.shape.dim]
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return PreparedGraph(
        model=model.SerializeToString(),
        input_name=data.name,
        input_shape=shape,
        output_name=model.graph.output[0].name,
        feature_name=feature,
        source=source,
        opset=opset,
    )
