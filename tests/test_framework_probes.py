"""D04 inference-framework probes: collect + score on this CPU at quick sizes, with the
figures checked against quantities worked out independently in the test."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from pydantic import BaseModel, ValidationError

from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.framework import (
    BackendsArgs,
    BackendsProbe,
    BindingsArgs,
    BindingsProbe,
    PrecisionsArgs,
    PrecisionsProbe,
    ReferenceArgs,
    int4_rewrite,
    load_reference,
    make_variant,
)
from harness.schema import Measurement, SutSpec
from harness.suites import load as load_suite
from harness.suites import resolve

SEED = 0
QUICK_REFERENCE = {"epochs": 15}  # the suite's quick_args
QUICK_TIMING = {"repeats": 5, "warmup_calls": 5, "min_repeat_s": 0.01}


@dataclass
class Collected:
    root: Path
    args: BaseModel
    failures: list[str]
    result: ScoreResult

    def m(self, mid: str) -> Measurement:
        return next(m for m in self.result.measurements if m.id == mid)


def _collect(probe: Any, raw: dict[str, Any], root: Path) -> Collected:
    args = probe.Args.model_validate(raw)
    ctx = CollectContext(
        task_id="t",
        args=args,
        sut=SutSpec(),
        device="cpu",
        seed=SEED,
        quick=True,
        evidence=EvidenceWriter(root),
    )
    failures = probe.collect(ctx)
    return Collected(root, args, failures, _score(probe, root, args))


def _score(probe: Any, root: Path, args: BaseModel) -> ScoreResult:
    return probe.score(EvidenceReader(root), ScoreContext("t", args, 0.95, None))


def _py(script: str) -> list[str]:
    """A command running a Python script with the {model} and {input} placeholders."""
    return [sys.executable, "-c", script, "{model}", "{input}"]


# ------------------------------------------------------------------ precisions


@pytest.fixture(scope="module")
def precisions(tmp_path_factory: pytest.TempPathFactory) -> Collected:
    root = tmp_path_factory.mktemp("precisions")
    return _collect(PrecisionsProbe(), {**QUICK_REFERENCE, **QUICK_TIMING}, root)


def _ops(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def test_every_precision_runs_and_is_verified(precisions: Collected) -> None:
    assert precisions.failures == []
    assert precisions.result.unmeasured == []
    assert precisions.m("verified_precisions").value == 4
    for p in ("fp32", "fp16", "int8", "int4"):
        assert json.loads((precisions.root / f"{p}.json").read_text())["status"] == "measured"


def test_quantised_graphs_hold_their_quantised_ops(precisions: Collected) -> None:
    models = precisions.root / "models"
    fp32, int8, int4 = (_ops(models / f"{p}.onnx") for p in ("fp32", "int8", "int4"))
    assert fp32.get("MatMul") == 3 and "MatMulInteger" not in fp32
    assert int8.get("MatMulInteger") == 3 and int8.get("DynamicQuantizeLinear") == 3
    assert "MatMul" not in int8  # every MatMul was quantised
    assert int4.get("MatMulNBits") == 3 and "MatMul" not in int4
    int4_nodes = onnx.load(str(models / "int4.onnx")).graph.node
    assert {n.domain for n in int4_nodes if n.op_type == "MatMulNBits"} == {"com.microsoft"}
    assert {a.name: a.i for a in int4_nodes[0].attribute}["bits"] == 4
    assert {a.name: a.i for a in int4_nodes[0].attribute}["block_size"] == 32
    fp16_types = {t.data_type for t in onnx.load(str(models / "fp16.onnx")).graph.initializer}
    assert fp16_types == {onnx.TensorProto.FLOAT16}
    recorded = json.loads((precisions.root / "int8.json").read_text())["graph"]["ops"]
    assert recorded["MatMulInteger"] == 3


def test_compression_rates_come_from_the_file_sizes(precisions: Collected) -> None:
    models = precisions.root / "models"
    fp32_size = os.path.getsize(models / "fp32.onnx")
    for p in ("fp16", "int8", "int4"):
        size = os.path.getsize(models / f"{p}.onnx")
        assert precisions.m(f"{p}.compression").value == pytest.approx(fp32_size / size)
        assert precisions.m(f"{p}.model_size").value == pytest.approx(size / 1e6)
    assert precisions.m("int8.compression").value > 3  # int8 weights: about 4x smaller
    assert precisions.m("int4.compression").value > 4
    assert 1.8 < precisions.m("fp16.compression").value <= 2.0


def test_accuracy_is_the_count_of_right_predictions(precisions: Collected) -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    _, x_test, _, y_test = train_test_split(
        x, digits.target, test_size=0.3, random_state=SEED, stratify=digits.target
    )
    labels = json.loads((precisions.root / "labels.json").read_text())
    assert labels == y_test.tolist()
    for p in ("fp32", "fp16", "int8", "int4"):
        stored = json.loads((precisions.root / f"{p}.json").read_text())["predictions"]
        # the stored predictions are what the stored model predicts on the held-out set
        session = ort.InferenceSession(
            str(precisions.root / "models" / f"{p}.onnx"), providers=["CPUExecutionProvider"]
        )
        assert session.run(None, {"x": x_test})[0].argmax(axis=1).tolist() == stored
        right = sum(1 for a, b in zip(stored, labels, strict=True) if a == b)
        accuracy = precisions.m(f"{p}.accuracy")
        assert accuracy.value == 100.0 * right / len(labels)
        assert accuracy.n == len(labels) == 540
        assert accuracy.ci is not None and accuracy.ci.low is not None
        assert accuracy.ci.low < accuracy.value < (accuracy.ci.high or 0)
    assert precisions.m("fp32.accuracy").value > 90.0
    fp32 = precisions.m("fp32.accuracy").value
    for p in ("fp16", "int8", "int4"):
        drop = precisions.m(f"{p}.accuracy_drop")
        assert drop.value == pytest.approx(fp32 - precisions.m(f"{p}.accuracy").value)
        assert drop.unit == "pp"


def test_timings_are_medians_of_the_recorded_repeats(precisions: Collected) -> None:
    fp32 = json.loads((precisions.root / "fp32.json").read_text())["timing"]
    int8 = json.loads((precisions.root / "int8.json").read_text())["timing"]
    assert len(fp32["single"]["repeat_s"]) == 5
    lat32 = [s / fp32["single"]["calls"] for s in fp32["single"]["repeat_s"]]
    lat8 = [s / int8["single"]["calls"] for s in int8["single"]["repeat_s"]]
    assert precisions.m("fp32.latency").value == pytest.approx(np.median(lat32) * 1e3)
    ratios = [a / b for a, b in zip(lat32, lat8, strict=True)]
    speedup = precisions.m("int8.speedup")
    assert speedup.value == pytest.approx(np.median(ratios))
    assert speedup.ci is not None  # 5 repeats: min and max bound the median at 95 %
    assert speedup.ci.low == pytest.approx(min(ratios))
    assert speedup.ci.high == pytest.approx(max(ratios))
    batch = fp32["batch"]
    rates = [batch["calls"] * batch["batch_size"] / s for s in batch["repeat_s"]]
    assert precisions.m("fp32.throughput").value == pytest.approx(np.median(rates))


def test_scoring_twice_gives_identical_results(precisions: Collected) -> None:
    again = _score(PrecisionsProbe(), precisions.root, precisions.args)
    assert [m.model_dump() for m in again.measurements] == [
        m.model_dump() for m in precisions.result.measurements
    ]
    assert again.unmeasured == precisions.result.unmeasured


def test_an_unquantised_int8_graph_is_not_measured(precisions: Collected, tmp_path: Path) -> None:
    copy = tmp_path / "ev"
    shutil.copytree(precisions.root, copy)
    record = json.loads((copy / "int8.json").read_text())
    record["graph"]["ops"] = {"MatMul": 3, "Add": 3, "Relu": 2}  # what a no-op "quantiser" leaves
    (copy / "int8.json").write_text(json.dumps(record))
    result = _score(PrecisionsProbe(), copy, precisions.args)
    reasons = {u.id: u.reason for u in result.unmeasured}
    assert "MatMulInteger" in reasons["int8.accuracy"]
    assert "int8.compression" in reasons
    verified = next(m for m in result.measurements if m.id == "verified_precisions")
    assert verified.value == 3


def test_a_stored_model_that_disagrees_with_its_record_is_refused(
    precisions: Collected, tmp_path: Path
) -> None:
    copy = tmp_path / "ev"
    shutil.copytree(precisions.root, copy)
    with (copy / "models" / "int4.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match="bytes"):
        _score(PrecisionsProbe(), copy, precisions.args)


def test_static_int8_holds_qlinear_ops(tmp_path: Path) -> None:
    raw = {**QUICK_REFERENCE, **QUICK_TIMING, "precisions": ["fp32", "int8"]}
    got = _collect(PrecisionsProbe(), {**raw, "int8_method": "static"}, tmp_path)
    assert got.failures == []
    ops = _ops(tmp_path / "models" / "int8.onnx")
    assert ops.get("QLinearMatMul") == 3 and "MatMul" not in ops
    assert got.m("verified_precisions").value == 2
    assert "128 training samples" in json.loads((tmp_path / "int8.json").read_text())["method"]


def test_a_submitted_model_and_labelled_set(tmp_path: Path) -> None:
    ref = load_reference(ReferenceArgs(**QUICK_REFERENCE), SEED)
    model = tmp_path / "mine.onnx"
    model.write_bytes(ref.model_bytes)
    data = tmp_path / "held_out.npz"
    np.savez(data, x=ref.x_test[:100], y=ref.y_test[:100])
    raw = {**QUICK_TIMING, "model": str(model), "data": str(data), "precisions": ["fp32", "int4"]}
    got = _collect(PrecisionsProbe(), raw, tmp_path / "ev")
    assert got.failures == []
    assert got.m("fp32.accuracy").n == 100
    facts = json.loads((tmp_path / "ev" / "reference.json").read_text())
    assert facts["source"] == "submission" and facts["model"] == str(model)

    missing = {**raw, "data": str(tmp_path / "nowhere.npz")}
    with pytest.raises(ValueError, match=r"data: file not found: .*nowhere\.npz"):
        _collect(PrecisionsProbe(), missing, tmp_path / "ev2")
    np.savez(tmp_path / "bad.npz", x=ref.x_test[:5])
    with pytest.raises(ValueError, match=r"lacks array\(s\) \['y'\]"):
        _collect(PrecisionsProbe(), {**raw, "data": str(tmp_path / "bad.npz")}, tmp_path / "ev3")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"hidden": 100}, "multiple of int4_block_size"),
        ({"int4_block_size": 48}, "power of 2"),
        ({"precisions": ["fp16", "int8"]}, "fp32 is the reference"),
        ({"model": "m.onnx"}, "give both"),
        ({"model": "m.pt", "data": "d.npz"}, "must be an .onnx"),
        ({"repeats": 4}, "greater than or equal to 5"),
    ],
)
def test_precision_args_are_checked(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PrecisionsArgs.model_validate(raw)


@pytest.mark.skipif(
    importlib.util.find_spec("onnx_ir") is None,
    reason="onnxruntime's MatMulNBitsQuantizer needs onnx_ir, which is not installed",
)
def test_the_int4_rewrite_equals_onnxruntimes_quantizer() -> None:
    ref = load_reference(ReferenceArgs(**QUICK_REFERENCE), SEED)
    common: dict[str, Any] = {
        "int8_method": "dynamic",
        "calibration": ref.x_calib,
        "input_name": "x",
        "int4_block_size": 32,
        "int4_symmetric": True,
        "int4_accuracy_level": None,
    }
    a = make_variant("int4", ref.model_bytes, int4_quantizer="onnxruntime", **common)
    b = make_variant("int4", ref.model_bytes, int4_quantizer="harness", **common)
    assert a.model_bytes and b.model_bytes
    ga, gb = onnx.load_from_string(a.model_bytes).graph, onnx.load_from_string(b.model_bytes).graph
    assert [n.SerializeToString() for n in ga.node] == [n.SerializeToString() for n in gb.node]
    assert {t.name: t.raw_data for t in ga.initializer} == {
        t.name: t.raw_data for t in gb.initializer
    }


def test_the_int4_rewrite_skips_what_it_cannot_quantise() -> None:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((64, 8), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "y"], ["z"])],  # no constant weight
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 8]),
        ],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8])],
        [w],
    )
    _, replaced = int4_rewrite(helper.make_model(graph), 32, True, None)
    assert replaced == 0


# ------------------------------------------------------------------ bindings

WRONG = """
import sys
for line in open(sys.argv[2]):
    print(" ".join("0.5" for _ in range(10)))
"""
CRASH = "import sys; sys.stderr.write('binding exploded\\n'); sys.exit(3)"
HANG = "import time; time.sleep(60)"
CLASSES = """
import sys
import numpy as np
import onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
for line in open(sys.argv[2]):
    x = np.array(line.split(), dtype=np.float32)[None, :]
    print(int(s.run(None, {"x": x})[0].argmax()))
"""


def test_the_default_is_the_harness_python_check(tmp_path: Path) -> None:
    got = _collect(BindingsProbe(), {**QUICK_REFERENCE, "inputs": 16}, tmp_path)
    measurement = got.m("working_bindings")
    assert measurement.value == 1 and measurement.n == 1
    python = measurement.details["python"]
    assert python["status"] == "ok" and "harness self-check" in python["source"]
    assert python["comparison"]["max_rel_err"] <= 1e-6
    lines = (tmp_path / "inputs.txt").read_text().splitlines()
    assert len(lines) == 16 and len(lines[0].split()) == 64


def test_broken_bindings_fail_with_their_reasons(tmp_path: Path) -> None:
    from harness.probes.framework import HARNESS_PYTHON_BINDING

    bindings = {
        "python": {"argv": _py(HARNESS_PYTHON_BINDING)},
        "cpp": {"argv": _py(WRONG)},
        "c": {"argv": _py(CRASH)},
        "java": {"argv": _py(HANG), "timeout_s": 0.5},
    }
    raw = {**QUICK_REFERENCE, "inputs": 8, "bindings": bindings}
    got = _collect(BindingsProbe(), raw, tmp_path)
    measurement = got.m("working_bindings")
    assert measurement.value == 1 and measurement.n == 4
    status = {lang: d["status"] for lang, d in measurement.details.items()}
    assert status["python"] == "ok"
    assert status["cpp"].startswith("wrong output: max error")
    assert status["c"] == "exit 3: binding exploded"
    assert measurement.details["c"]["exit_code"] == 3
    assert status["java"] == "timeout after 0.5 s (killed)"
    java = json.loads((tmp_path / "bindings" / "java.json").read_text())
    assert java["timed_out"] is True and java["wall_s"] < 5
    assert sorted(f.split(":")[0] for f in got.failures) == ["binding c", "binding java"]
    assert _score(BindingsProbe(), tmp_path, got.args) == got.result


def test_a_class_output_binding_and_short_output(tmp_path: Path) -> None:
    short = "import sys; print('1 2 3')"
    bindings = {
        "python": {"argv": _py(CLASSES), "output": "class"},
        "c": {"argv": _py(short)},
        "cpp": {"argv": ["no-such-binding-program", "{input}"]},
    }
    got = _collect(
        BindingsProbe(), {**QUICK_REFERENCE, "inputs": 8, "bindings": bindings}, tmp_path
    )
    details = got.m("working_bindings").details
    assert details["python"]["status"] == "ok"
    assert details["c"]["status"] == "bad output: 1 non-empty lines for 8 inputs"
    assert "not found" in details["cpp"]["status"]
    assert got.m("working_bindings").value == 1


def test_binding_args_are_checked() -> None:
    with pytest.raises(ValidationError, match="must contain '\\{input\\}'"):
        BindingsArgs.model_validate({"bindings": {"c": {"argv": ["./run", "{model}"]}}})
    with pytest.raises(ValidationError, match="rust"):
        BindingsArgs.model_validate({"bindings": {"rust": {"argv": ["./r", "{input}"]}}})


# ------------------------------------------------------------------ backends


def test_default_backends_are_the_available_providers(tmp_path: Path) -> None:
    got = _collect(BackendsProbe(), {**QUICK_REFERENCE, "inputs": 16}, tmp_path)
    measurement = got.m("working_backends")
    details = measurement.details
    assert set(details) == set(ort.get_available_providers())
    assert details["CPUExecutionProvider"]["status"] == "ok"
    assert details["CPUExecutionProvider"]["comparison"]["node_share"] == 1.0
    if "AzureExecutionProvider" in details:
        reason = details["AzureExecutionProvider"]["status"]
        assert "executed 0 of the model's" in reason and "not a compute backend" in reason
    assert measurement.value == sum(d["status"] == "ok" for d in details.values())


def test_declared_backends(tmp_path: Path) -> None:
    from harness.probes.framework import HARNESS_PYTHON_BINDING

    backends = [
        {"name": "cpu", "provider": "CPUExecutionProvider", "chip": "host CPU"},
        {"name": "npu-sim", "command": {"argv": _py(HARNESS_PYTHON_BINDING)}},
        {"name": "broken", "command": {"argv": _py(WRONG)}},
        {"name": "tpu", "provider": "NoSuchExecutionProvider"},
    ]
    got = _collect(
        BackendsProbe(), {**QUICK_REFERENCE, "inputs": 8, "backends": backends}, tmp_path
    )
    details = got.m("working_backends").details
    assert got.m("working_backends").value == 2
    assert details["cpu"]["status"] == "ok" and details["cpu"]["chip"] == "host CPU"
    assert details["npu-sim"]["status"] == "ok"
    assert details["broken"]["status"].startswith("wrong output")
    assert "not available in this onnxruntime" in details["tpu"]["status"]


def test_backend_args_are_checked() -> None:
    cpu = {"name": "a", "provider": "CPUExecutionProvider"}
    with pytest.raises(ValidationError, match="listed twice"):
        BackendsArgs.model_validate({"backends": [cpu, {**cpu, "name": "b"}]})
    with pytest.raises(ValidationError, match="exactly one of"):
        BackendsArgs.model_validate({"backends": [{"name": "a"}]})


# ------------------------------------------------------------------ the suite


def test_the_d04_suite_binds_every_indicator() -> None:
    loaded = load_suite(resolve("d04-inference-framework"), quick=True)
    assert loaded.suite.direction == "D04"
    targets = {i.id: (i.metric, i.op, i.target, i.unit) for i in loaded.suite.indicators}
    assert targets["language_bindings"] == ("bindings.working_bindings", ">=", 3, "count")
    assert targets["backends"] == ("backends.working_backends", ">=", 5, "count")
    assert targets["precisions"] == ("precisions.verified_precisions", ">=", 4, "count")
    assert not [i.id for i in loaded.suite.indicators if i.pending]
    capabilities = ("custom_operators", "on_device_learning", "distributed_scheduling")
    for name in capabilities:
        assert targets[name] == (f"capabilities.{name}", ">=", 1, "count")
    for ind in loaded.suite.indicators:
        if ind.id not in ("language_bindings", "backends", "precisions", *capabilities):
            assert "harness default" in ind.source
