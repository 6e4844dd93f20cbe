"""models.reference: a real collect of tiny reference networks on this CPU, scoring as a pure
function of the evidence, corrupted comparisons dropping out of the counts, and torch vs ONNX
Runtime agreement recomputed here with numpy."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from pydantic import ValidationError

from harness import jsonio, refmodels, suites
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.models import (
    DEFAULT_TOLERANCES,
    ModelsArgs,
    ModelsProbe,
    accuracy_failures,
    compare,
    config_for,
    export_onnx,
    reference_inputs,
    seeds,
)
from harness.schema import SutSpec

SEED = 3
TINY: dict[str, Any] = {
    "vision_image_size": 32,
    "vision_width": 8,
    "vision_blocks": [1, 1],
    "vision_classes": 10,
    "language_vocab": 100,
    "language_hidden": 32,
    "language_layers": 1,
    "language_heads": 2,
    "language_seq_len": 16,
    "language_classes": 8,
    "speech_frames": 32,
    "speech_channels": 4,
    "speech_hidden": 16,
    "speech_layers": 1,
    "speech_symbols": 8,
    "batch": 4,
    "accuracy_samples": 8,
    "warmup": 1,
    "min_repeat_s": 0.01,
    "train_batch": 4,
    "train_warmup": 1,
    "train_steps": 1,
    "max_run_s": 20,
}


def _collect(out: Path, args: ModelsArgs, device: str = "cpu") -> list[str]:
    ctx = CollectContext(
        task_id="models",
        args=args,
        sut=SutSpec(),
        device=device,
        seed=SEED,
        quick=True,
        evidence=EvidenceWriter(out),
    )
    return ModelsProbe().collect(ctx)


def _score(evidence: Path, args: ModelsArgs) -> ScoreResult:
    return ModelsProbe().score(EvidenceReader(evidence), ScoreContext("models", args, 0.95, None))


def _values(result: ScoreResult) -> dict[str, float]:
    return {m.id: m.value for m in result.measurements}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelsArgs, list[str], float]:
    """One real collect of the three families (and the ONNX ResNet-50) on this CPU."""
    out = tmp_path_factory.mktemp("models") / "evidence"
    args = ModelsArgs.model_validate(TINY)
    t0 = time.perf_counter()
    failures = _collect(out, args)
    return out, args, failures, time.perf_counter() - t0


@pytest.fixture
def evidence_copy(tiny: tuple[Path, ModelsArgs, list[str], float], tmp_path: Path) -> Path:
    target = tmp_path / "evidence"
    shutil.copytree(tiny[0], target)
    return target


def _edit(path: Path, change: Any) -> None:
    record = jsonio.read(path)
    change(record)
    jsonio.write(path, record)


# ------------------------------------------------------------------ collect + score


def test_collect_runs_everything_this_cpu_can(
    tiny: tuple[Path, ModelsArgs, list[str], float],
) -> None:
    out, args, failures, seconds = tiny
    assert failures == []
    assert seconds < 120  # a hang guard, not a timing (shared machines are noisy)
    result = _score(out, args)
    values = _values(result)
    unmeasured = {u.id: u.reason for u in result.unmeasured}
    # every metric the probe declares is either measured or explained
    assert set(ModelsProbe().metrics(args)) == set(values) | set(unmeasured)
    for family in ("vision", "language", "speech"):
        for precision in ("fp32", "bf16"):
            assert values[f"{family}.torch.{precision}.infer_throughput"] > 0
            assert values[f"{family}.train.{precision}.throughput"] > 0
        assert values[f"{family}.onnxruntime_cpu.fp32.infer_throughput"] > 0
        assert values[f"{family}.torch.fp32.cosine"] == pytest.approx(1.0, abs=1e-12)
        assert values[f"{family}.torch.bf16.cosine"] >= DEFAULT_TOLERANCES["bf16"].min_cosine
        assert values[f"{family}.onnxruntime_cpu.fp32.max_rel_err"] < 1e-4
        assert "device under test is cpu" in unmeasured[f"{family}.onnxruntime_cuda.fp32.cosine"]
    assert values["vision_resnet50.onnxruntime_cpu.fp32.infer_throughput"] > 0
    assert values["networks"] == 3
    assert values["inference_networks"] == 3
    assert values["frameworks"] == 2
    counts = {m.id: m for m in result.measurements if m.unit == "count"}
    assert all(m.ci is None for m in counts.values())  # exact counts
    assert counts["frameworks"].details["onnxruntime"].startswith("ok")
    # the throughput figures carry order-statistic bounds around the median
    m = next(x for x in result.measurements if x.id == "speech.torch.fp32.infer_throughput")
    assert m.ci is not None and m.ci.low is not None and m.ci.high is not None
    assert m.ci.low <= m.value <= m.ci.high
    assert "seeded random" in m.method


def test_evidence_holds_the_raw_numbers(tiny: tuple[Path, ModelsArgs, list[str], float]) -> None:
    out, args, _, _ = tiny
    run = jsonio.read(out / "inference/language.torch.bf16.json")
    assert run["status"] == "measured"
    assert len(run["repeat_s"]) == args.repeats and run["iters"] >= 1
    assert set(run["accuracy"]) >= {"max_abs_err", "max_rel_err", "cosine", "top1_agreement"}
    model = jsonio.read(out / "models/speech.json")
    assert len(model["onnx"]["sha256"]) == 64 and model["onnx"]["bytes"] > 0
    assert "seeded random" in model["weights"]
    train = jsonio.read(out / "training/vision.fp32.json")
    assert len(train["repeat_s"]) == args.train_repeats
    assert len(train["losses"]) == args.train_repeats * args.train_steps
    assert train["warmup_losses"][0] == pytest.approx(train["reference_loss"], rel=1e-4)
    resnet = jsonio.read(out / "models/vision_resnet50.json")
    assert resnet["input"]["shape"] == [1, 3, 224, 224] and len(resnet["sha256"]) == 64


def test_score_is_a_pure_function_of_the_evidence(
    tiny: tuple[Path, ModelsArgs, list[str], float], evidence_copy: Path
) -> None:
    out, args, _, _ = tiny
    first, second = _score(out, args), _score(out, args)
    moved = _score(evidence_copy, args)
    dump = [m.model_dump() for m in first.measurements]
    assert dump == [m.model_dump() for m in second.measurements]
    assert dump == [m.model_dump() for m in moved.measurements]
    assert first.unmeasured == second.unmeasured == moved.unmeasured


def test_a_corrupted_precision_fails_and_drops_out(
    tiny: tuple[Path, ModelsArgs, list[str], float], evidence_copy: Path
) -> None:
    _, args, _, _ = tiny

    def corrupt(record: dict[str, Any]) -> None:
        record["accuracy"].update(cosine=0.5, top1_agreement=0.25, max_rel_err=0.9)

    _edit(evidence_copy / "inference/language.torch.bf16.json", corrupt)
    result = _score(evidence_copy, args)
    values = _values(result)
    unmeasured = {u.id: u.reason for u in result.unmeasured}
    assert values["language.torch.bf16.cosine"] == 0.5  # the failing figure is reported
    assert "language.torch.bf16.infer_throughput" not in values
    assert "cosine 0.500000 < 0.99" in unmeasured["language.torch.bf16.infer_throughput"]
    counts = {m.id: m for m in result.measurements if m.unit == "count"}
    assert "language.torch.bf16" not in counts["inference_networks"].details["language"]
    assert values["inference_networks"] == 3  # fp32 still passes for language

    # one family's ONNX Runtime run failing takes ONNX Runtime out of the frameworks count
    _edit(evidence_copy / "inference/speech.onnxruntime_cpu.fp32.json", corrupt)
    values = _values(_score(evidence_copy, args))
    assert values["frameworks"] == 1
    assert values["inference_networks"] == 3

    # every inference run of a family failing takes the family out of both network counts
    for name in ("language.torch.fp32", "language.torch.fp16", "language.onnxruntime_cpu.fp32"):
        _edit(evidence_copy / f"inference/{name}.json", corrupt)
    result = _score(evidence_copy, args)
    values = _values(result)
    assert values["inference_networks"] == 2
    assert values["networks"] == 2
    assert values["frameworks"] == 0
    counts = {m.id: m for m in result.measurements if m.unit == "count"}
    assert counts["networks"].details["language"].startswith("inference not passed")


def test_non_finite_losses_fail_training(
    tiny: tuple[Path, ModelsArgs, list[str], float], evidence_copy: Path
) -> None:
    _, args, _, _ = tiny

    def nan_loss(record: dict[str, Any]) -> None:
        record["losses"][-1] = None  # how a NaN / inf loss is stored

    _edit(evidence_copy / "training/speech.fp32.json", nan_loss)
    result = _score(evidence_copy, args)
    unmeasured = {u.id: u.reason for u in result.unmeasured}
    assert "losses are not finite" in unmeasured["speech.train.fp32.throughput"]
    assert _values(result)["networks"] == 3  # bf16 training still passed

    def wrong_start(record: dict[str, Any]) -> None:
        record["warmup_losses"][0] = record["reference_loss"] * 1.5

    _edit(evidence_copy / "training/speech.bf16.json", wrong_start)
    result = _score(evidence_copy, args)
    unmeasured = {u.id: u.reason for u in result.unmeasured}
    assert "differs from the FP32 CPU reference" in unmeasured["speech.train.bf16.throughput"]
    values = _values(result)
    assert values["networks"] == 2
    assert values["inference_networks"] == 3


def test_torch_and_onnxruntime_agree_on_the_exported_models(
    tiny: tuple[Path, ModelsArgs, list[str], float], tmp_path: Path
) -> None:
    out, args, _, _ = tiny
    for family in refmodels.FAMILIES:
        seed = seeds(SEED, family)
        ref = refmodels.build(family, config_for(args, family), seed["weights"])
        inputs = reference_inputs(ref, args.accuracy_samples, seed["accuracy"])
        with torch.no_grad():
            expected = ref.module(inputs).double().numpy()
        path = tmp_path / f"{family}.onnx"
        export_onnx(ref, path, inputs[:1])
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": inputs.numpy()})[0].astype(np.float64)
        # the comparison, worked out here independently of harness.probes.models.compare
        rel = np.max(np.abs(got - expected)) / np.max(np.abs(expected))
        cosine = got.ravel() @ expected.ravel()
        cosine /= np.linalg.norm(got) * np.linalg.norm(expected)
        top1 = np.mean(got.argmax(-1) == expected.argmax(-1))
        assert rel < 1e-5 and cosine > 1 - 1e-9 and top1 == 1.0, family
        assert np.std(expected) > 0  # random weights give non-trivial outputs
        # and the evidence of the collect says the same
        run = jsonio.read(out / f"inference/{family}.onnxruntime_cpu.fp32.json")
        assert run["accuracy"]["max_rel_err"] == pytest.approx(rel, abs=1e-6)
        assert run["accuracy"]["cosine"] == pytest.approx(cosine, abs=1e-9)
        assert run["accuracy"]["top1_agreement"] == top1


# ------------------------------------------------------------------ pieces


def test_compare_by_hand() -> None:
    ref = np.array([[1.0, 2.0, 0.0], [0.0, -4.0, 3.0]])
    got = np.array([[1.0, 2.5, 0.0], [0.0, -4.0, 3.5]])
    acc = compare(got, ref)
    assert acc["max_abs_err"] == 0.5
    assert acc["max_rel_err"] == 0.5 / 4.0
    assert acc["top1_agreement"] == 1.0  # argmax: (1, 2) in both
    assert acc["decisions"] == 2
    expected_cos = (1 + 5 + 16 + 10.5) / (np.sqrt(1 + 6.25 + 16 + 12.25) * np.sqrt(1 + 4 + 16 + 9))
    assert acc["cosine"] == pytest.approx(expected_cos)
    flipped = compare(
        np.array([[1.0, 2.0, 0.0], [0.0, -4.0, 5.0]]), ref + np.array([[0, 0, 0], [9, 0, 0]])
    )
    assert flipped["top1_agreement"] == 0.5
    bad = compare(np.array([[np.nan, 0.0, 0.0], [0.0, 0.0, 0.0]]), ref)
    assert bad["finite"] is False and bad["cosine"] is None and bad["non_finite"] == 1


def test_top1_flips_at_reference_near_ties_are_excused() -> None:
    ref = np.array([[1.0, 0.999, 0.0]] * 5 + [[1.0, 0.0, 0.0]] * 5)  # five near-ties
    got = ref.copy()
    got[:5, 1] += 0.002  # flips the five near-ties
    acc = compare(got, ref)
    assert acc["top1_agreement"] == 0.5
    assert acc["top1_disagreement_gaps"] == pytest.approx([0.001] * 5)
    tol = DEFAULT_TOLERANCES["bf16"]
    assert tol.tie_margin > 0.001
    assert accuracy_failures(acc, tol) == []
    got[5:, 1] += 1.5  # flips the clear decisions too
    misses = accuracy_failures(compare(got, ref), tol)
    assert any(m.startswith("top-1 agreement 0.5000 < 0.9") for m in misses)
    # strict fp32 tolerance: a 0.001 gap is no near-tie
    assert any("top-1" in m for m in accuracy_failures(acc, DEFAULT_TOLERANCES["fp32"]))


def test_over_budget_runs_are_skipped_with_the_estimate(tmp_path: Path) -> None:
    args = ModelsArgs.model_validate(
        {**TINY, "families": ["speech"], "backends": ["torch"], "max_run_s": 1e-6}
    )
    assert _collect(tmp_path / "ev", args) == []
    result = _score(tmp_path / "ev", args)
    unmeasured = {u.id: u.reason for u in result.unmeasured}
    assert "s budget per run" in unmeasured["speech.torch.fp32.infer_throughput"]
    assert "s budget per run" in unmeasured["speech.train.bf16.throughput"]
    values = _values(result)
    assert values["inference_networks"] == 0 and values["networks"] == 0
    assert values["frameworks"] == 0


def test_warm_ups_recheck_the_budget_with_the_real_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.probes.models.timing as timing

    # a probe that claims every small call is free: the warm-ups must still catch the budget
    monkeypatch.setattr(timing, "_probe", lambda *_a, **_k: (1e-9, [1e-9]))
    args = ModelsArgs.model_validate(
        {
            **TINY,
            "families": ["speech"],
            "backends": ["torch"],
            "max_run_s": 1e-5,
            "min_repeat_s": 1e-9,
        }
    )
    assert _collect(tmp_path / "ev", args) == []
    run = jsonio.read(tmp_path / "ev/inference/speech.torch.fp32.json")
    assert run["status"] == "skipped" and "after 1 warm-ups" in run["reason"]
    assert len(run["warmup_s"]) == 1
    train = jsonio.read(tmp_path / "ev/training/speech.fp32.json")
    assert train["status"] == "skipped" and "after 1 warm-up steps" in train["reason"]
    assert _values(_score(tmp_path / "ev", args))["networks"] == 0


def test_args_are_checked_and_tolerances_filled() -> None:
    with pytest.raises(ValidationError, match="multiple of"):
        ModelsArgs.model_validate({"language_hidden": 30, "language_heads": 4})
    with pytest.raises(ValidationError):
        ModelsArgs.model_validate({"repeats": 3})  # fewer than 5 timed repeats
    with pytest.raises(ValidationError, match="duplicate"):
        ModelsArgs.model_validate({"precisions": ["fp32", "fp32"]})
    args = ModelsArgs.model_validate(
        {
            "tolerances": {
                "bf16": {
                    "min_cosine": 0.9,
                    "min_top1_agreement": 0.5,
                    "max_rel_err": 0.5,
                    "max_loss_rel_diff": 0.1,
                    "tie_margin": 0.05,
                }
            }
        }
    )
    assert args.tolerances["bf16"].min_cosine == 0.9
    assert args.tolerances["fp32"] == DEFAULT_TOLERANCES["fp32"]
    metrics = ModelsProbe().metrics(ModelsArgs.model_validate({"backends": ["torch"]}))
    assert "vision_resnet50.onnxruntime_cpu.fp32.infer_throughput" not in metrics
    assert metrics["networks"] == metrics["frameworks"] == "count"
    assert metrics["vision.train.bf16.throughput"] == "samples/s"


@pytest.mark.parametrize(
    ("suite", "metric"),
    [
        ("d01-cloud-training-chip", "models.networks"),
        ("d01-cloud-inference-chip", "models_loadgen.inference_networks"),
        ("d02-edge-chip", "models_loadgen.inference_networks"),
        ("d02-terminal-chip", "models_loadgen.inference_networks"),
    ],
)
def test_suites_measure_the_models_indicators(suite: str, metric: str) -> None:
    for quick in (False, True):
        loaded = suites.load(suites.resolve(suite), quick)
        indicators = {i.id: i for i in loaded.suite.indicators}
        assert indicators["models"].metric == metric and indicators["models"].pending is None
        assert indicators["models"].target == 3 and indicators["models"].op == ">="
        if "frameworks" in indicators:
            assert indicators["frameworks"].metric == "models.frameworks"
            assert indicators["frameworks"].pending is None
        task = next(t for t in loaded.tasks if t.id == metric.split(".")[0])
        assert metric in task.metric_units
