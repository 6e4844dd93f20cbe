"""`framework.capabilities`: the three D04 capabilities as functional checks the harness
runs, on ONNX Runtime (the local default framework):

- custom operators: a custom operator of the harness's own (`HarnessScaledRelu`, y = 2 x
  max(x, 0), in the `ai.onnx.contrib` domain) registered through onnxruntime-extensions; a
  model made of it must be refused by a plain session (so the operator really is custom)
  and, once registered, match the numpy reference on seeded inputs;
- on-device learning: the reference model's last layer is reset to zero (chance), then
  trained for `learning_steps` full-batch gradient steps on the device (torch) on one half
  of the labelled set; the loss must fall, and the updated model, written back into the
  ONNX graph and run by ONNX Runtime, must reach `min_accuracy_pct` on the other half;
- distributed scheduling: the reference model split in two at a hidden tensor, each part
  run by ONNX Runtime in a process of its own (the intermediate tensor passed between them
  as a file), the final outputs compared with the single-process run.

collect writes the inputs, outputs, the models and the losses to the evidence; score
re-derives each verdict from them (the numpy reference of the custom operator, the
held-out accuracy from the stored predictions and labels, the split run's error). A
submission with the `framework` adapter names its own framework, which these ONNX Runtime
checks do not measure: its capabilities are NOT_MEASURED until it gives commands for them.
"""

from __future__ import annotations

import functools
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from harness.contracts.framework import ReferenceArgs
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.framework.reference import load_reference
from harness.probes.framework.sessions import CPU_PROVIDER, input_facts
from harness.probes.framework.submission import _submitted, _with_reference
from harness.registry import probes
from harness.schema import Measurement, Unmeasured

METRICS = ("custom_operators", "on_device_learning", "distributed_scheduling")
CUSTOM_OP = "HarnessScaledRelu"
CUSTOM_DOMAIN = "ai.onnx.contrib"


class CapabilitiesArgs(ReferenceArgs):
    custom_op_samples: int = Field(default=64, ge=1)
    learning_steps: int = Field(default=200, ge=1)
    learning_rate: float = Field(default=0.5, gt=0)
    min_accuracy_pct: float = Field(default=80.0, ge=0, le=100)
    split_tolerance: float = Field(default=1e-5, gt=0)  # max |diff| / max |reference|
    worker_timeout_s: float = Field(default=120.0, gt=0)


def _save_npy(ctx: CollectContext, name: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    ctx.evidence.write_bytes(name, buffer.getvalue())


def scaled_relu(x: np.ndarray) -> np.ndarray:
    """The custom operator's definition, and the reference it is checked against."""
    return (np.maximum(x, 0.0) * 2.0).astype(np.float32)


@probes.register("framework.capabilities")
class CapabilitiesProbe:
    name: ClassVar[str] = "framework.capabilities"
    Args: ClassVar[type[BaseModel]] = CapabilitiesArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return dict.fromkeys(METRICS, "count")

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 3

    def collect(self, ctx: CollectContext) -> list[str]:
        assert isinstance(ctx.args, CapabilitiesArgs)
        submitted = _submitted(ctx)
        if submitted is not None:
            ctx.evidence.write_json(
                "capabilities.json",
                {
                    "status": "not_run",
                    "reason": "the submission names its own framework (sut.adapter: framework); "
                    "these functional checks run ONNX Runtime and would not measure it, and "
                    "the harness takes no capability commands yet",
                },
            )
            return []
        args, origin = _with_reference(ctx, submitted, ctx.args)
        ref = load_reference(args, ctx.seed)
        ctx.evidence.write_json("capabilities.json", {"status": "run", "origin": origin})
        failures: list[str] = []
        for name, check in (
            ("custom_operators", _custom_operator),
            ("on_device_learning", _learning),
            ("distributed_scheduling", _split_run),
        ):
            ctx.progress(name.replace("_", " "))
            try:
                check(ctx, args, ref)
            except Exception as error:  # the check itself broke: recorded, not raised
                ctx.evidence.write_json(
                    f"{name}.json",
                    {"status": "error", "reason": f"{type(error).__name__}: {error}"},
                )
                failures.append(f"{name}: {type(error).__name__}: {error}")
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, CapabilitiesArgs)
        index = evidence.read_json("capabilities.json")
        if index["status"] != "run":
            return ScoreResult([], [Unmeasured(id=m, reason=index["reason"]) for m in METRICS])
        judged = {
            "custom_operators": _judge_custom_operator(evidence),
            "on_device_learning": _judge_learning(evidence, args),
            "distributed_scheduling": _judge_split(evidence, args),
        }
        measurements = [
            Measurement(
                id=name,
                value=1.0 if ok else 0.0,
                unit="count",
                n=1,
                repeats=1,
                method=METHODS[name] + f" Reference model: {index.get('origin')}.",
                details={"status": "ok" if ok else why, **detail},
            )
            for name, (ok, why, detail) in judged.items()
        ]
        return ScoreResult(measurements, [])


METHODS = {
    "custom_operators": (
        f"a custom operator of the harness's own ({CUSTOM_DOMAIN}:{CUSTOM_OP}, y = 2 max(x, 0)) "
        "registered in ONNX Runtime through onnxruntime-extensions: a plain session must refuse "
        "the model, the registered one match the numpy reference exactly on seeded inputs."
    ),
    "on_device_learning": (
        "the model's last layer reset to zero, trained on the device (full-batch gradient "
        "steps, torch) on half of the labelled set: the loss must fall and the updated model, "
        "run by ONNX Runtime, reach the suite's accuracy on the other half."
    ),
    "distributed_scheduling": (
        "the model split in two at a hidden tensor, each part run by ONNX Runtime in a process "
        "of its own, the final outputs compared with the single-process run."
    ),
}


# ------------------------------------------------------------------ custom operators


def _custom_model() -> bytes:
    from onnx import TensorProto, helper

    node = helper.make_node(CUSTOM_OP, ["x"], ["y"], domain=CUSTOM_DOMAIN)
    graph = helper.make_graph(
        [node],
        "harness-custom-op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 16])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(CUSTOM_DOMAIN, 1)]
    )
    model.ir_version = 8
    return bytes(model.SerializeToString())


@functools.cache
def _register_custom_operator() -> None:
    """Register the Python operator with onnxruntime-extensions, once per process: a second
    registration makes every later session fail ("Conflicting with a registered kernel")."""
    from onnxruntime_extensions import PyCustomOpDef, onnx_op

    onnx_op(op_type=CUSTOM_OP, inputs=[PyCustomOpDef.dt_float], outputs=[PyCustomOpDef.dt_float])(
        scaled_relu
    )


def _custom_operator(ctx: CollectContext, args: CapabilitiesArgs, ref: Any) -> None:
    import onnxruntime as ort
    import onnxruntime_extensions as ortx

    _register_custom_operator()
    model = _custom_model()
    ctx.evidence.write_bytes("custom_operators/model.onnx", model)
    try:
        ort.InferenceSession(model, providers=[CPU_PROVIDER])
        plain = {"refused": False, "error": ""}
    except Exception as error:
        plain = {"refused": True, "error": f"{type(error).__name__}: {str(error)[:300]}"}
    options = ort.SessionOptions()
    options.register_custom_ops_library(ortx.get_library_path())
    session = ort.InferenceSession(model, options, providers=[CPU_PROVIDER])
    rng = np.random.default_rng(ctx.seed + 4242)
    x = rng.standard_normal((args.custom_op_samples, 16)).astype(np.float32)
    y = np.asarray(session.run(None, {"x": x})[0], dtype=np.float32)
    _save_npy(ctx, "custom_operators/inputs.npy", x)
    _save_npy(ctx, "custom_operators/outputs.npy", y)
    ctx.evidence.write_json(
        "custom_operators.json",
        {
            "status": "run",
            "operator": f"{CUSTOM_DOMAIN}:{CUSTOM_OP}",
            "library": f"onnxruntime-extensions {ortx.__version__} "
            f"({Path(ortx.get_library_path()).name})",
            "plain_session": plain,
            "inputs": "custom_operators/inputs.npy",
            "outputs": "custom_operators/outputs.npy",
        },
    )


def _judge_custom_operator(evidence: EvidenceReader) -> tuple[bool, str, dict[str, Any]]:
    record = evidence.read_json("custom_operators.json")
    if record["status"] != "run":
        return False, record["reason"], {}
    detail = {"operator": record["operator"], "library": record["library"]}
    if not record["plain_session"]["refused"]:
        return (
            False,
            "a plain ONNX Runtime session ran the model: the operator is not custom",
            detail,
        )
    x = np.load(evidence.path(record["inputs"]), allow_pickle=False)
    y = np.load(evidence.path(record["outputs"]), allow_pickle=False)
    if y.shape != x.shape or not np.array_equal(y, scaled_relu(x)):
        return False, "the registered operator's outputs differ from the numpy reference", detail
    return True, "", {**detail, "samples": len(x)}


# ------------------------------------------------------------------ on-device learning


def _last_layer(model: Any) -> tuple[Any, Any, str, str]:
    """(weight initializer, bias initializer, the layer's input tensor, its output) of a
    model whose graph output comes from MatMul(x, W) + b with W and b initializers."""
    inits = {t.name: t for t in model.graph.initializer}
    out = model.graph.output[0].name
    producers = {o: n for n in model.graph.node for o in n.output}
    add = producers.get(out)
    if add is None or add.op_type != "Add":
        raise ValueError("the model's output is not MatMul + Add: no last layer to train")
    matmul_out, bias = (
        (add.input[0], add.input[1]) if add.input[1] in inits else (add.input[1], add.input[0])
    )
    matmul = producers.get(matmul_out)
    if (
        bias not in inits
        or matmul is None
        or matmul.op_type != "MatMul"
        or matmul.input[1] not in inits
    ):
        raise ValueError("the model's output is not MatMul(x, W) + b with W, b constants")
    return inits[matmul.input[1]], inits[bias], matmul.input[0], out


def _with_output(model_bytes: bytes, tensor: str) -> bytes:
    import onnx

    model = onnx.load_from_string(model_bytes)
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    return bytes(model.SerializeToString())


def _learning(ctx: CollectContext, args: CapabilitiesArgs, ref: Any) -> None:
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import numpy_helper

    model = onnx.load_from_string(ref.model_bytes)
    weight, bias, features_name, _ = _last_layer(model)
    io = input_facts(ref.model_bytes)
    n = len(ref.y_test)
    train, held = np.arange(0, n // 2), np.arange(n // 2, n)
    probe = ort.InferenceSession(
        _with_output(ref.model_bytes, features_name), providers=[CPU_PROVIDER]
    )
    features = np.asarray(
        probe.run([features_name], {io["input"]: ref.x_test})[0], dtype=np.float32
    )
    device = ctx.device if ctx.device.startswith("cuda") else "cpu"
    shape_w = numpy_helper.to_array(weight).shape
    w = torch.zeros(shape_w, dtype=torch.float32, device=device, requires_grad=True)
    b = torch.zeros(shape_w[1], dtype=torch.float32, device=device, requires_grad=True)
    xt = torch.from_numpy(features[train]).to(device)
    yt = torch.from_numpy(ref.y_test[train].astype(np.int64)).to(device)
    optimiser = torch.optim.SGD([w, b], lr=args.learning_rate)
    losses: list[float] = []
    for _ in range(args.learning_steps + 1):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt)
        losses.append(float(loss.detach().cpu()))
        if len(losses) > args.learning_steps:
            break
        loss.backward()
        optimiser.step()
    weight.CopyFrom(numpy_helper.from_array(w.detach().cpu().numpy(), weight.name))
    bias.CopyFrom(numpy_helper.from_array(b.detach().cpu().numpy(), bias.name))
    updated = bytes(model.SerializeToString())
    ctx.evidence.write_bytes("on_device_learning/updated.onnx", updated)
    session = ort.InferenceSession(updated, providers=[CPU_PROVIDER])
    logits = np.asarray(session.run(None, {io["input"]: ref.x_test[held]})[0])
    ctx.evidence.write_json(
        "on_device_learning.json",
        {
            "status": "run",
            "device": device,
            "trained": f"last layer {weight.name} {list(shape_w)} and {bias.name}, from zero",
            "steps": args.learning_steps,
            "learning_rate": args.learning_rate,
            "train_samples": len(train),
            "held_out_samples": len(held),
            "losses": losses,
            "held_out_labels": ref.y_test[held].astype(int).tolist(),
            "held_out_predictions": logits.reshape(len(held), -1)
            .argmax(axis=1)
            .astype(int)
            .tolist(),
            "updated_model": "on_device_learning/updated.onnx",
        },
    )


def _judge_learning(
    evidence: EvidenceReader, args: CapabilitiesArgs
) -> tuple[bool, str, dict[str, Any]]:
    record = evidence.read_json("on_device_learning.json")
    if record["status"] != "run":
        return False, record["reason"], {}
    losses = record["losses"]
    labels, predictions = record["held_out_labels"], record["held_out_predictions"]
    right = sum(int(p == y) for p, y in zip(predictions, labels, strict=True))
    accuracy = 100.0 * right / len(labels) if labels else 0.0
    detail = {
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "held_out_accuracy_pct": accuracy,
        "held_out_samples": len(labels),
        "device": record["device"],
    }
    if not losses[-1] < losses[0]:
        return False, f"the loss did not fall ({losses[0]:.4g} -> {losses[-1]:.4g})", detail
    if accuracy < args.min_accuracy_pct:
        return (
            False,
            f"the updated model reaches {accuracy:.1f} % on the held-out half, below "
            f"{args.min_accuracy_pct:g} %",
            detail,
        )
    return True, "", detail


# ------------------------------------------------------------------ distributed scheduling

WORKER = """\
import os, sys
import numpy as np
import onnxruntime as ort
model, source, target = sys.argv[1], sys.argv[2], sys.argv[3]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
x = np.load(source)
y = session.run(None, {session.get_inputs()[0].name: x})[0]
np.save(target, np.asarray(y))
print(os.getpid())
"""


def _split_point(model: Any) -> str:
    """A hidden tensor that every path from the input passes: the output of the first
    activation after the input (the digits MLP: the first Relu)."""
    for node in model.graph.node:
        if node.op_type in ("Relu", "Gelu", "Tanh", "Sigmoid"):
            return str(node.output[0])
    raise ValueError("no activation to split the model at")


def _split_run(ctx: CollectContext, args: CapabilitiesArgs, ref: Any) -> None:
    import onnx
    import onnxruntime as ort
    from onnx.utils import Extractor

    model = onnx.load_from_string(ref.model_bytes)
    io = input_facts(ref.model_bytes)
    middle = _split_point(model)
    extractor = Extractor(onnx.shape_inference.infer_shapes(model))  # value infos to cut at
    first = extractor.extract_model([io["input"]], [middle])
    second = extractor.extract_model([middle], [io["output"]])
    with tempfile.TemporaryDirectory(prefix="harness-split-") as tmp:
        work = Path(tmp)
        paths = {"first": work / "first.onnx", "second": work / "second.onnx"}
        onnx.save(first, paths["first"])
        onnx.save(second, paths["second"])
        np.save(work / "x.npy", ref.x_test)
        pids = []
        for part, source, target in (("first", "x.npy", "mid.npy"), ("second", "mid.npy", "y.npy")):
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    WORKER,
                    str(paths[part]),
                    str(work / source),
                    str(work / target),
                ],
                capture_output=True,
                text=True,
                timeout=args.worker_timeout_s,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"the {part} part's process failed: {done.stderr.strip()[-300:]}"
                )
            pids.append(int(done.stdout.strip().splitlines()[-1]))
            ctx.evidence.write_bytes(
                f"distributed_scheduling/{part}.onnx", paths[part].read_bytes()
            )
        split = np.load(work / "y.npy")
    single = ort.InferenceSession(ref.model_bytes, providers=[CPU_PROVIDER])
    whole = np.asarray(single.run(None, {io["input"]: ref.x_test})[0])
    _save_npy(ctx, "distributed_scheduling/split_outputs.npy", split)
    _save_npy(ctx, "distributed_scheduling/single_outputs.npy", whole)
    ctx.evidence.write_json(
        "distributed_scheduling.json",
        {
            "status": "run",
            "split_at": middle,
            "processes": pids,
            "harness_process": os.getpid(),
            "parts": ["distributed_scheduling/first.onnx", "distributed_scheduling/second.onnx"],
            "samples": len(ref.x_test),
            "transport": "the intermediate tensor as an .npy file between the two processes",
            "outputs": {
                "split": "distributed_scheduling/split_outputs.npy",
                "single": "distributed_scheduling/single_outputs.npy",
            },
        },
    )


def _judge_split(
    evidence: EvidenceReader, args: CapabilitiesArgs
) -> tuple[bool, str, dict[str, Any]]:
    record = evidence.read_json("distributed_scheduling.json")
    if record["status"] != "run":
        return False, record["reason"], {}
    pids = record["processes"]
    detail = {"split_at": record["split_at"], "processes": pids, "samples": record["samples"]}
    if len(set(pids)) != 2 or record["harness_process"] in pids:
        return False, f"the parts did not run in two processes of their own ({pids})", detail
    split = np.load(evidence.path(record["outputs"]["split"]), allow_pickle=False)
    single = np.load(evidence.path(record["outputs"]["single"]), allow_pickle=False)
    if split.shape != single.shape or split.shape[0] != record["samples"]:
        return False, f"the split run gave {split.shape}, the single run {single.shape}", detail
    scale = float(np.abs(single).max()) or 1.0
    error = float(np.abs(split.astype(np.float64) - single).max()) / scale
    detail["max_rel_err"] = error
    if not error <= args.split_tolerance:
        return (
            False,
            f"the split run differs by {error:.3g} of max |output| "
            f"(tolerance {args.split_tolerance:g})",
            detail,
        )
    return True, "", detail
