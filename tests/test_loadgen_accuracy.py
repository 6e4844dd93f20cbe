"""inference.loadgen `accuracy_metric`: real LoadGen AccuracyOnly runs over real SUTs (an ONNX
model behind the onnx adapter, a Python function behind the callable adapter), scored
against labelled datasets (npz, text_lines with labels). Every expected figure is computed
here independently: the correct count from the model's maths, the bounds from scipy's
binomtest."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from scipy.stats import binomtest

from harness import jsonio
from harness.errors import BadInput
from harness.evidence import EvidenceReader, EvidenceWriter, sha256_file
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.loadgen import (
    LABELS_FILE,
    LoadgenArgs,
    LoadgenProbe,
    build_dataset,
    decode_output,
    encode_output,
)
from harness.schema import Measurement, SutSpec, Unmeasured

CLASSES = 5
FEATURES = 16
WEIGHTS = np.random.default_rng(11).standard_normal((FEATURES, CLASSES)).astype(np.float32)
FAST = {"min_duration_s": 0.2, "min_query_count": 1, "warmup_samples": 2, "performance_runs": 1}

# ------------------------------------------------------------------------ helpers


def _model(path: Path) -> Path:
    """logits = x @ W: a real ONNX graph with known weights."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["logits"])],
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, FEATURES])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES])],
        [numpy_helper.from_array(WEIGHTS, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _classified_npz(path: Path, count: int, flipped: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """x: random vectors whose top class under W leads the runner-up clearly (no float32
    vs float64 tie can change it); y: that class, except at `flipped`, deliberately wrong."""
    rng = np.random.default_rng(5)
    rows: list[np.ndarray] = []
    while len(rows) < count:
        x = rng.standard_normal(FEATURES).astype(np.float32)
        logits = np.sort(x.astype(np.float64) @ WEIGHTS.astype(np.float64))
        if logits[-1] - logits[-2] > 1e-2:
            rows.append(x)
    xs = np.stack(rows).reshape(count, 1, FEATURES)
    truth = np.argmax(xs[:, 0, :].astype(np.float64) @ WEIGHTS.astype(np.float64), axis=1)
    ys = truth.astype(np.int64)
    for i in flipped:
        ys[i] = (ys[i] + 1) % CLASSES
    np.savez(path, x=xs, y=ys)
    return xs, ys


def _run(
    tmp_path: Path, spec: SutSpec, confidence: float = 0.95, **raw: Any
) -> tuple[ScoreResult, Path, LoadgenArgs]:
    args = LoadgenArgs.model_validate(raw)
    root = tmp_path / "evidence"
    ctx = CollectContext("lg", args, spec, "cpu", 3, True, EvidenceWriter(root))
    probe = LoadgenProbe()
    probe.collect(ctx)
    sctx = ScoreContext("lg", args, confidence, None)
    first = probe.score(EvidenceReader(root), sctx)
    assert first == probe.score(EvidenceReader(root), sctx)  # a pure function of evidence
    produced = {m.id for m in first.measurements} | {u.id for u in first.unmeasured}
    assert produced == set(probe.metrics(args))
    return first, root, args


def _by_id(result: ScoreResult) -> tuple[dict[str, Measurement], dict[str, Unmeasured]]:
    return {m.id: m for m in result.measurements}, {u.id: u for u in result.unmeasured}


def _assert_exact_bounds(m: Measurement, correct: int, n: int, confidence: float) -> None:
    """One-sided Clopper-Pearson bounds at `confidence` are the two-sided exact interval at
    1 - 2 * (1 - confidence)."""
    ci = binomtest(correct, n).proportion_ci(
        confidence_level=1 - 2 * (1 - confidence), method="exact"
    )
    assert m.ci is not None and m.ci.low is not None and m.ci.high is not None
    assert m.ci.low == pytest.approx(100 * ci.low, rel=1e-9, abs=1e-12)
    assert m.ci.high == pytest.approx(100 * ci.high, rel=1e-9, abs=1e-12)
    assert m.ci.confidence == confidence
    assert m.ci.low <= m.value <= m.ci.high


def _callable_sut() -> SutSpec:
    # tests/sut_fixtures.py: upper-cases its input, raises on "crash"
    return SutSpec(adapter="callable", target="sut_fixtures:answer")


# ------------------------------------------------------------------------ tests


def test_onnx_classifier_top1_on_npz(tmp_path: Path) -> None:
    flipped = [2, 9, 17, 30]
    xs, ys = _classified_npz(tmp_path / "data.npz", 40, flipped)
    model = _model(tmp_path / "classifier.onnx")
    result, root, args = _run(
        tmp_path,
        SutSpec(adapter="onnx", model=str(model), providers=["CPUExecutionProvider"]),
        confidence=0.9,
        scenario="Offline",
        dataset={"kind": "npz", "path": str(tmp_path / "data.npz")},
        accuracy=True,
        accuracy_metric="top1",
        **FAST,
    )
    measured, unmeasured = _by_id(result)
    assert not unmeasured
    # independently: the classifier's answer is argmax(x @ W); only flipped labels disagree
    predicted = np.argmax(xs[:, 0, :] @ WEIGHTS, axis=1)
    correct = int(np.sum(predicted == ys))
    assert correct == len(ys) - len(flipped)
    acc = measured["accuracy"]
    assert acc.unit == "%" and acc.n == len(ys)
    assert acc.value == pytest.approx(100 * correct / len(ys))
    _assert_exact_bounds(acc, correct, len(ys), 0.9)
    assert measured["accuracy_errors"].value == 0
    assert sorted(w["qsl_idx"] for w in acc.details["first_wrong"]) == flipped
    # the labels are in the evidence, with the dataset file's digest
    labels = jsonio.read(root / LABELS_FILE)
    assert labels["labels"] == {str(i): int(y) for i, y in enumerate(ys)}
    assert labels["source"]["sha256"] == sha256_file(tmp_path / "data.npz")
    assert labels["kind"] == "int"
    # score() never reads the dataset: it scores the same without it
    (tmp_path / "data.npz").unlink()
    again = LoadgenProbe().score(EvidenceReader(root), ScoreContext("lg", args, 0.9, None))
    assert _by_id(again)[0]["accuracy"] == acc


def test_text_sut_exact_match_with_a_failing_sample(tmp_path: Path) -> None:
    words = ["cat", "dog", "crash", "bird", "fish", "owl", "ant", "bee", "elk", "yak"]
    lines = tmp_path / "words.txt"
    lines.write_text("\n".join(words[:4]) + "\n\n" + "\n".join(words[4:]) + "\n")
    answers = [w.upper() for w in words]
    answers[1] = "WOLF"  # deliberately wrong labels
    answers[7] = "WASP"
    (tmp_path / "labels.txt").write_text("\n".join(f"  {a} " for a in answers) + "\n")
    result, root, _ = _run(
        tmp_path,
        _callable_sut(),
        scenario="Offline",
        target_qps=500,
        dataset={"kind": "text_lines", "path": str(lines), "labels": str(tmp_path / "labels.txt")},
        accuracy=True,
        accuracy_metric="exact_match",
        **FAST,
    )
    measured, _ = _by_id(result)
    # independently: upper-cased words match their labels except the two wrong labels and
    # "crash", on which the SUT raises: a failed sample counts as wrong
    correct = sum(1 for w, a in zip(words, answers, strict=True) if w != "crash" and w.upper() == a)
    assert correct == 7
    acc = measured["accuracy"]
    assert acc.value == pytest.approx(100 * correct / len(words))
    assert acc.n == len(words)
    _assert_exact_bounds(acc, correct, len(words), 0.95)
    assert measured["accuracy_errors"].value == 1
    assert acc.details["first_unscorable"] == [{"qsl_idx": 2, "why": "the sample failed"}]
    assert acc.details["wrong"] == 2
    assert "counts as wrong" in acc.method
    assert measured["failed_samples"].value > 0
    assert jsonio.read(root / LABELS_FILE)["kind"] == "text"


def test_text_class_ids_top1_and_a_failing_sample(tmp_path: Path) -> None:
    """npz of text inputs: the SUT answers a class id as text ("3"); top1 reads it."""
    xs = np.array(["3", "1", "4", "crash", "0", "2", "4", "1"])
    ys = np.array([3, 1, 4, 0, 0, 1, 4, 1])  # sample 5 deliberately wrong, 3 fails
    np.savez(tmp_path / "ids.npz", x=xs, y=ys)
    result, _, _ = _run(
        tmp_path,
        _callable_sut(),
        scenario="SingleStream",
        dataset={"kind": "npz", "path": str(tmp_path / "ids.npz")},
        accuracy=True,
        accuracy_metric="top1",
        **FAST,
    )
    measured, _ = _by_id(result)
    correct = sum(1 for x, y in zip(xs, ys, strict=True) if x != "crash" and int(x) == y)
    assert correct == 6
    assert measured["accuracy"].value == pytest.approx(100 * correct / len(xs))
    _assert_exact_bounds(measured["accuracy"], correct, len(xs), 0.95)
    assert measured["accuracy_errors"].value == 1


def test_missing_labels_or_accuracy_run_is_unmeasured(tmp_path: Path) -> None:
    xs = np.array(["1", "2", "0", "1"])
    np.savez(tmp_path / "ids.npz", x=xs, y=np.array([1, 2, 0, 1]))
    result, root, args = _run(
        tmp_path,
        _callable_sut(),
        scenario="Offline",
        target_qps=200,
        dataset={"kind": "npz", "path": str(tmp_path / "ids.npz")},
        accuracy=True,
        accuracy_metric="top1",
        **FAST,
    )
    assert _by_id(result)[0]["accuracy"].value == 100.0
    probe, sctx = LoadgenProbe(), ScoreContext("lg", args, 0.95, None)

    (root / LABELS_FILE).unlink()
    measured, unmeasured = _by_id(probe.score(EvidenceReader(root), sctx))
    assert "accuracy" not in measured and "accuracy_errors" not in measured
    assert "no labels" in unmeasured["accuracy"].reason
    assert unmeasured["accuracy_errors"].reason == unmeasured["accuracy"].reason
    assert "throughput" in measured  # the rest is still scored

    shutil.rmtree(root / "runs" / "02-accuracy")
    _, unmeasured = _by_id(probe.score(EvidenceReader(root), sctx))
    assert "no accuracy run" in unmeasured["accuracy"].reason

    shutil.rmtree(root / "runs")
    result = probe.score(EvidenceReader(root), sctx)
    _, unmeasured = _by_id(result)
    ids = [u.id for u in result.unmeasured]
    assert len(ids) == len(set(ids))  # each metric reported once
    assert "no accuracy run" in unmeasured["accuracy"].reason


def test_args_and_labels_are_checked(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 2), np.float32), y=np.array([0, 1, 1]))
    npz = {"kind": "npz", "path": str(tmp_path / "d.npz")}
    with pytest.raises(ValueError, match="needs accuracy: true"):
        LoadgenArgs(scenario="Offline", dataset=npz, accuracy_metric="top1")
    with pytest.raises(ValueError, match="labelled dataset"):
        LoadgenArgs(scenario="Offline", accuracy=True, accuracy_metric="top1")
    text = tmp_path / "t.txt"
    text.write_text("a\nb\n")
    with pytest.raises(ValueError, match="labelled dataset"):
        LoadgenArgs(
            scenario="Offline",
            accuracy=True,
            accuracy_metric="exact_match",
            dataset={"kind": "text_lines", "path": str(text)},
        )
    with pytest.raises(ValueError, match="accuracy_metric"):
        LoadgenArgs(scenario="Offline", dataset=npz, accuracy=True, accuracy_metric="wer")
    args = LoadgenArgs(scenario="Offline", dataset=npz, accuracy=True, accuracy_metric="top1")
    assert LoadgenProbe().metrics(args)["accuracy"] == "%"
    assert LoadgenProbe().metrics(args)["accuracy_errors"] == "count"
    assert "accuracy" not in LoadgenProbe().metrics(LoadgenArgs(scenario="Offline", dataset=npz))

    def collect(dataset: dict[str, Any], metric: str) -> None:
        a = LoadgenArgs(scenario="Offline", dataset=dataset, accuracy=True, accuracy_metric=metric)
        ctx = CollectContext(
            "lg", a, _callable_sut(), "cpu", 0, True, EvidenceWriter(tmp_path / "e")
        )
        LoadgenProbe().collect(ctx)

    (tmp_path / "two.txt").write_text("A\n")
    with pytest.raises(BadInput, match="1 labels for the 2 non-empty lines"):
        collect(
            {**{"kind": "text_lines", "path": str(text)}, "labels": str(tmp_path / "two.txt")},
            "exact_match",
        )
    np.savez(tmp_path / "s.npz", x=np.zeros((2, 2)), y=np.array(["a", "b"]))
    with pytest.raises(BadInput, match="top1 compares class ids"):
        collect({"kind": "npz", "path": str(tmp_path / "s.npz")}, "top1")
    np.savez(tmp_path / "short.npz", x=np.zeros((3, 2)), y=np.array([1, 2]))
    with pytest.raises(ValueError, match="2 labels for 3 samples"):
        build_dataset({"kind": "npz", "path": str(tmp_path / "short.npz")}, None, 0)
    np.savez(tmp_path / "nox.npz", y=np.array([1, 2]))
    with pytest.raises(ValueError, match="has no x"):
        build_dataset({"kind": "npz", "path": str(tmp_path / "nox.npz")}, None, 0)
    np.savez(tmp_path / "float.npz", x=np.zeros((2, 2)), y=np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="integer class ids or strings"):
        build_dataset({"kind": "npz", "path": str(tmp_path / "float.npz")}, None, 0)
    samples = build_dataset({**npz, "count": 2}, None, 0)
    assert [s.index for s in samples] == [0, 1] and samples[0].data.shape == (2,)


def test_decoding_is_the_test01_decoding() -> None:
    """decode_output inverts encode_output for every kind the driver records."""
    cases: list[Any] = [
        "héllo",
        b"\x00\x01",
        np.arange(6, dtype=np.float32).reshape(2, 3),
        {"b": np.arange(3, dtype=np.int64), "a": np.ones(2, np.float16)},
    ]
    for out in cases:
        _, _, hold, desc = encode_output(out)
        got = decode_output(bytes(hold), desc)
        if isinstance(out, dict):
            assert sorted(got) == sorted(out)
            for key in out:
                assert np.array_equal(got[key], out[key]) and got[key].dtype == out[key].dtype
        elif isinstance(out, np.ndarray):
            assert np.array_equal(got, out) and got.dtype == out.dtype
        else:
            assert got == out
    _, _, hold, desc = encode_output(np.zeros(4, np.float32))
    assert decode_output(bytes(hold)[:-1], desc) is None  # does not fit its format
    assert decode_output(b"", {"kind": "failed"}) is None
