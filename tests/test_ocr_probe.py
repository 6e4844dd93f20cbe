"""models.ocr: the real trained PP-OCRv4 recognition model (shipped in rapidocr-onnxruntime)
reads rendered lines in FP32, FP16 and INT8; figures checked against independent counts."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import jiwer
import pytest

from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.ocr import OcrArgs, OcrProbe
from harness.schema import Measurement, SutSpec
from harness.scoring.text import character_error_rate, levenshtein

LINES = 12


@dataclass
class Run:
    root: Path
    args: OcrArgs
    failures: list[str]

    def score(self, root: Path | None = None) -> ScoreResult:
        return OcrProbe().score(
            EvidenceReader(root or self.root), ScoreContext("t", self.args, 0.95, None)
        )


def _m(result: ScoreResult, mid: str) -> Measurement:
    return next(m for m in result.measurements if m.id == mid)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("ocr")
    args = OcrArgs(lines=LINES)
    ctx = CollectContext(
        task_id="t",
        args=args,
        sut=SutSpec(),
        device="cpu",
        seed=0,
        quick=True,
        evidence=EvidenceWriter(root),
    )
    return Run(root, args, OcrProbe().collect(ctx))


def _labels(root: Path) -> list[str]:
    return [s["text"] for s in json.loads((root / "labels.json").read_text())]


def _predictions(root: Path, p: str) -> list[str]:
    return list(json.loads((root / f"{p}.json").read_text())["predictions"])


def test_levenshtein_matches_jiwer() -> None:
    pairs = [("A7K 2031", "A7K2031"), ("", ""), ("abc", ""), ("kitten", "sitting"), ("Q", "Q")]
    for a, b in pairs:
        if a:
            assert levenshtein(a, b) / len(a) == pytest.approx(jiwer.cer(a, b))
        assert levenshtein(a, b) == levenshtein(b, a)
    refs, hyps = ["A7K 2031", "B00 1111"], ["A7K2031", "B00 1l11"]
    assert character_error_rate(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps))


def test_every_precision_measured_with_its_ops(run: Run) -> None:
    assert run.failures == []
    result = run.score()
    assert result.unmeasured == []
    labels = _labels(run.root)
    assert len(labels) == LINES and len(list((run.root / "images").glob("*.png"))) == LINES
    int8 = json.loads((run.root / "int8.json").read_text())["graph"]["quantised_ops"]
    assert int8.get("DynamicQuantizeLinear", 0) > 0
    assert int8.get("ConvInteger", 0) + int8.get("MatMulInteger", 0) > 0
    fp16 = json.loads((run.root / "fp16.json").read_text())["graph"]
    assert fp16["initializer_types"].get("float16", 0) + fp16["constant_types"].get("float16", 0)


def test_figures_match_independent_counts(run: Run) -> None:
    result = run.score()
    labels = _labels(run.root)
    for p in ("fp32", "fp16", "int8"):
        preds = _predictions(run.root, p)
        right = sum(a == b for a, b in zip(preds, labels, strict=True))
        assert _m(result, f"{p}.exact_match").value == pytest.approx(100.0 * right / LINES)
        assert _m(result, f"{p}.cer").value == pytest.approx(100.0 * jiwer.cer(labels, preds))
    fp32 = _m(result, "fp32.exact_match")
    assert fp32.value >= 50.0  # the trained model reads clean rendered text
    drop = _m(result, "int8.accuracy_drop").value
    assert drop == pytest.approx(fp32.value - _m(result, "int8.exact_match").value)


def test_score_is_pure_and_tamper_changes_it(run: Run, tmp_path: Path) -> None:
    assert run.score() == run.score()
    copy = tmp_path / "evidence"
    shutil.copytree(run.root, copy)
    labels = _labels(copy)
    record = json.loads((copy / "fp32.json").read_text())
    before = _m(run.score(copy), "fp32.exact_match").value
    index = next(
        i for i, (a, b) in enumerate(zip(record["predictions"], labels, strict=True)) if a == b
    )
    record["predictions"][index] = labels[index] + "X"
    (copy / "fp32.json").write_text(json.dumps(record))
    after = _m(run.score(copy), "fp32.exact_match").value
    assert after == pytest.approx(before - 100.0 / LINES)


def test_tampered_image_is_refused(run: Run, tmp_path: Path) -> None:
    copy = tmp_path / "evidence"
    shutil.copytree(run.root, copy)
    (copy / "images" / "00000.png").write_bytes(b"not the image")
    with pytest.raises(ValueError, match="sha256"):
        run.score(copy)
