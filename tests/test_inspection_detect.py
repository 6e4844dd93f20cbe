"""D14 visual inspection: strict reading of the labelled set, the detect / fewshot /
throughput figures against hand counts and scipy's beta quantiles (exact Clopper-Pearson),
answers of a scripted SUT (misses, alarms, malformed answers, a flipping SUT for
repeatability), the reference detector on the seeded dev set, and one end-to-end run of the
example command SUT (examples/d14-detector) through the CLI with verify and audit."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from clihelpers import assert_one_line_error, isolated_env, run_cli
from scipy import stats

from harness.adapters.protocol import Sample, SampleOutput
from harness.errors import BadInput
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.inspection.detect import DetectArgs, DetectProbe
from harness.probes.inspection.fewshot import FewshotArgs, FewshotProbe
from harness.probes.inspection.manifest import read_manifest
from harness.probes.inspection.throughput import ThroughputArgs, ThroughputProbe
from harness.refengines import inspection as ref
from harness.schema import SutSpec

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "suites" / "d14-visual-inspection.yaml"
EXAMPLE = ROOT / "examples" / "d14-detector"


def run(
    probe: Any,
    args: Any,
    tmp: Path,
    datasets: dict[str, Path] | None = None,
    session: Any = None,
) -> tuple[list[str], ScoreResult, Path]:
    root = tmp / "evidence"
    failures = probe.collect(
        CollectContext(
            task_id="t",
            args=args,
            sut=SutSpec(),
            device="cpu",
            seed=0,
            quick=False,
            evidence=EvidenceWriter(root),
            datasets=datasets or {},
            session=session,
        )
    )
    result = probe.score(
        EvidenceReader(root), ScoreContext(task_id="t", args=args, confidence=0.95, hardware=None)
    )
    return failures, result, root


def cp_upper(count: int, n: int) -> float:
    return 100.0 if count == n else 100.0 * float(stats.beta.ppf(0.95, count + 1, n - count))


def cp_lower(count: int, n: int) -> float:
    return 0.0 if count == 0 else 100.0 * float(stats.beta.ppf(0.05, count, n - count + 1))


def figures(result: ScoreResult) -> dict[str, Any]:
    return {m.id: m for m in result.measurements}


def write_set(folder: Path, lines: list[dict[str, Any]], images: int | None = None) -> Path:
    """A manifest and tiny PNGs for every image it names."""
    folder.mkdir(parents=True, exist_ok=True)
    blank = ref.png_bytes(np.full((8, 8), 128, dtype=np.uint8))
    for line in lines:
        (folder / line["image"]).write_bytes(blank)
    path = folder / "set.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


# ------------------------------------------------------------------ reading


GOOD = {"id": "a", "image": "a.png", "defects": []}


@pytest.mark.parametrize(
    ("line", "needles"),
    [
        ("not json", ["line 1", "not JSON"]),
        ('{"image": "a.png", "defects": []}', ["line 1: id", "missing"]),
        ('{"id": "a", "image": "gone.png", "defects": []}', ["line 1: image", "not found"]),
        ('{"id": "a", "image": "a.png"}', ["line 1: defects", "missing"]),
        ('{"id": "a", "image": "a.png", "defects": [{"type": "dent"}]}', ["defects[0].type"]),
        ('{"id": "a", "image": "a.png", "defects": ["scratch"]}', ["defects[0]", "object"]),
        (
            '{"id": "a", "image": "a.png", "defects": [{"type": "spot", "bbox": [5, 0, 1, 2]}]}',
            ["defects[0].bbox", "x0 <= x1"],
        ),
        (
            '{"id": "a", "image": "a.png", "defects": [], "dimensions": {"len_mm": NaN}}',
            ["line 1"],
        ),
        (
            '{"id": "a", "image": "a.png", "defects": [], "dimensions": {"len_mm": "3"}}',
            ["line 1: dimensions.len_mm", "finite number"],
        ),
        ('{"id": "a", "image": "a.png", "defects": [], "split": "train"}', ["line 1: split"]),
        ('{"id": "a", "image": "a.png", "defects": []}\n' * 2, ["line 2: id", "duplicate"]),
        ("\n\n", ["empty inspection set"]),
    ],
)
def test_bad_sets_are_refused_naming_file_line_and_field(
    tmp_path: Path, line: str, needles: list[str]
) -> None:
    (tmp_path / "a.png").write_bytes(b"png")
    path = tmp_path / "set.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(BadInput) as error:
        read_manifest(path, ["scratch", "spot", "crack"])
    text = str(error.value)
    assert "set.jsonl" in text and "\n" not in text
    for needle in needles:
        assert needle in text, text


def test_the_dev_manifest_holds_what_was_drawn(tmp_path: Path) -> None:
    spec = ref.plan_set("p", 3, 0, 6)
    line = ref.manifest_line(spec[0], "x.png")
    d = next(d for s in spec for d in s.defects if d.type == "scratch")
    (r0, c0), (r1, c1) = d.points
    assert d.truth()["scratch_length_mm"] == pytest.approx(
        np.hypot(r1 - r0, c1 - c0) * ref.MM_PER_PX, abs=1e-4
    )
    assert {x["type"] for x in line["defects"]} == {x.type for x in spec[0].defects}
    # seeded: the same plan twice, another seed another plan
    assert ref.plan_set("p", 3, 0, 6) == spec
    assert ref.plan_set("p", 4, 0, 6) != spec


# ------------------------------------------------------------------ a scripted SUT


class Scripted:
    """Answers by image order; `flip` answers image 0 differently every other run."""

    def __init__(self, answers: Sequence[Any], flip: bool = False) -> None:
        self.answers = list(answers)
        self.flip = flip
        self.calls = 0
        self.seen: list[Any] = []

    def describe(self) -> dict[str, Any]:
        return {"adapter": "scripted"}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out = []
        for s in samples:
            self.seen.append(s.data)
            answer = self.answers[s.index]
            if self.flip and s.index == 0:
                self.calls += 1
                answer = json.dumps(
                    {"defective": self.calls % 2 == 0, "dimensions": {"len_mm": self.calls}}
                )
            if isinstance(answer, Exception):
                out.append(SampleOutput(s.index, None, f"crashed: {answer}", 0.0))
            else:
                out.append(SampleOutput(s.index, answer, None, 0.0))
        return out

    def close(self) -> None:
        pass


def answer(defective: bool, *types: str, **dims: float) -> str:
    return json.dumps(
        {"defective": defective, "defects": [{"type": t} for t in types], "dimensions": dims}
    )


def lab_set(tmp: Path) -> Path:
    lines = [
        {"id": "g0", "image": "g0.png", "defects": []},
        {"id": "g1", "image": "g1.png", "defects": []},
        {"id": "g2", "image": "g2.png", "defects": []},
        {"id": "d0", "image": "d0.png", "defects": [{"type": "scratch"}],
         "dimensions": {"len_mm": 2.0}},
        {"id": "d1", "image": "d1.png", "defects": [{"type": "scratch"}, {"type": "spot"}],
         "dimensions": {"len_mm": 1.0, "dia_mm": 0.5}},
        {"id": "d2", "image": "d2.png", "defects": [{"type": "spot"}, {"type": "crack"}]},
        {"id": "d3", "image": "d3.png", "defects": [{"type": "crack"}]},
    ]  # fmt: skip
    return write_set(tmp / "lab", lines)


def test_rates_recall_and_measurement_against_hand_counts(tmp_path: Path) -> None:
    answers = [
        answer(False),
        answer(True, "spot"),  # false alarm
        "not json",  # malformed: an alarm on a good image
        answer(True, "scratch", len_mm=2.05),  # within 0.1 mm
        answer(True, "scratch", len_mm=1.3, dia_mm=0.5),  # spot not named; len off by 0.3
        answer(True, "spot", "crack"),
        answer(False),  # miss
    ]
    sut = Scripted(answers)
    args = DetectArgs(repeats=2, min_type_images=1, min_type_recall_pct=0.0)
    failures, result, root = run(
        DetectProbe(), args, tmp_path, {"inspection": lab_set(tmp_path)}, sut
    )
    got = figures(result)
    assert failures and "1 failed" not in failures[0] and "malformed" in failures[0]
    # the SUT saw staged copies only, never the lab's folder
    assert all("/lab/" not in str(p) and Path(str(p)).name[:6].isdigit() for p in sut.seen)
    assert got["miss_rate"].value == pytest.approx(100 * 1 / 4)
    assert got["miss_rate"].ci.high == pytest.approx(cp_upper(1, 4))
    assert got["false_alarm_rate"].value == pytest.approx(100 * 2 / 3)
    assert got["false_alarm_rate"].ci.high == pytest.approx(cp_upper(2, 3))
    assert got["recall_scratch"].value == 100.0
    assert got["recall_spot"].value == pytest.approx(50.0)
    assert got["recall_crack"].value == pytest.approx(50.0)
    assert got["mixed_recall"].value == pytest.approx(50.0)  # d2 yes, d1 no
    assert got["mixed_recall"].ci.low == pytest.approx(cp_lower(1, 2))
    assert got["dimension_within_tolerance"].value == pytest.approx(100 * 2 / 3)
    assert got["dimension_max_error_mm"].value == pytest.approx(0.3)
    assert got["dimension_mae_mm"].value == pytest.approx((0.05 + 0.3 + 0.0) / 3)
    assert got["repeatability"].value == pytest.approx(100 * 6 / 7)  # the malformed one
    assert got["dimension_spread_mm"].value == 0.0
    assert not any(m.invalid_reason for m in result.measurements)
    # references reach the evidence with the session closed; score re-reads the copy
    assert (root / "set" / "manifest.jsonl").read_bytes() == (
        tmp_path / "lab/set.jsonl"
    ).read_bytes()


def test_a_flipping_sut_loses_repeatability_and_shows_its_spread(tmp_path: Path) -> None:
    answers = [answer(False)] * 3 + [answer(True, "scratch")] * 4
    args = DetectArgs(repeats=3)
    _, result, _ = run(
        DetectProbe(), args, tmp_path, {"inspection": lab_set(tmp_path)}, Scripted(answers, True)
    )
    got = figures(result)
    assert got["repeatability"].value == pytest.approx(100 * 6 / 7)
    assert got["repeatability"].details["changed_ids"] == ["g0"]
    assert got["dimension_spread_mm"].value == pytest.approx(2.0)  # 1, 2, 3 mm
    assert got["dimension_spread_pct"].value == pytest.approx(100 * 2.0 / 0.2)
    sd = got["dimension_spread_mm"].details["per_dimension_sd_mm"]["len_mm"]["max"]
    assert sd == pytest.approx(float(np.std([1, 2, 3])))


def test_the_reference_detector_on_the_dev_set(tmp_path: Path) -> None:
    args = DetectArgs(repeats=2, dev_good=20, dev_defective=20, min_type_images=5)
    failures, result, root = run(DetectProbe(), args, tmp_path)
    got = figures(result)
    assert failures == []
    # independent check: the dev images in the evidence, detected again here
    manifest = root / "set" / "manifest.jsonl"
    items = read_manifest(manifest, args.defect_types)
    detector = ref.part_detector("brick")
    missed = sum(
        not detector.detect(ref.load_gray(i.image))["defective"] for i in items if i.defective
    )
    assert got["miss_rate"].value == pytest.approx(100 * missed / 20)
    assert got["repeatability"].value == 100.0
    assert got["dimension_within_tolerance"].value >= 90
    for m in result.measurements:
        assert "harness dev set" in m.invalid_reason
    # a byte copy of the dev manifest passed as the lab's set is still the dev set
    again = tmp_path / "again"
    shutil.copytree(root / "set", again)
    _, copied, _ = run(
        DetectProbe(), args, tmp_path / "b", {"inspection": again / "manifest.jsonl"}
    )
    assert all("harness dev set" in m.invalid_reason for m in copied.measurements)


def test_score_refuses_an_edited_manifest_copy(tmp_path: Path) -> None:
    args = DetectArgs(repeats=2)
    answers = [answer(False)] * 7
    _, _, root = run(
        DetectProbe(), args, tmp_path, {"inspection": lab_set(tmp_path)}, Scripted(answers)
    )
    copy = root / "set" / "manifest.jsonl"
    copy.write_bytes(copy.read_bytes().replace(b'"defects": []', b'"defects": [ ]', 1))
    with pytest.raises(ValueError, match="sha256"):
        DetectProbe().score(
            EvidenceReader(root),
            ScoreContext(task_id="t", args=args, confidence=0.95, hardware=None),
        )


# ------------------------------------------------------------------ few-shot, throughput


def test_fewshot_sends_k_examples_first_then_scores_the_held_out(tmp_path: Path) -> None:
    args = FewshotArgs(dev_good=10, dev_defective=10, dev_train_good=3, dev_train_defective=1)
    failures, result, root = run(FewshotProbe(), args, tmp_path)
    got = figures(result)
    assert failures == []
    assert got["accuracy"].details["k"] == 4 and "k = 4" in got["accuracy"].method
    outputs = json.loads((root / "outputs.json").read_text())
    assert json.loads(outputs[0]["output"]) == {"trained": 4, "good_examples": 3}
    right = got["accuracy"].details["right"]
    assert got["accuracy"].ci.low == pytest.approx(cp_lower(right, 20))
    # a scripted SUT: its first sample is the training request, with k stated examples
    sut = Scripted(["{}"] + [answer(True, "spot")] * 20)
    run(FewshotProbe(), args, tmp_path / "s", session=sut)
    request = json.loads(sut.seen[0])["fewshot_train"]
    assert len(request) == 4 and sum(not e["defective"] for e in request) == 3
    assert all(Path(e["image"]).name[:6].isdigit() for e in request)


def test_fewshot_refuses_more_than_max_k_examples(tmp_path: Path) -> None:
    lines = [
        {"id": f"t{k}", "image": f"t{k}.png", "defects": [], "split": "train"} for k in range(3)
    ]
    lines.append({"id": "x", "image": "x.png", "defects": []})
    path = write_set(tmp_path, lines)
    with pytest.raises(BadInput, match=r"line 3: split.*at most 2"):
        FewshotProbe().check_datasets(FewshotArgs(max_k=2), {"fewshot": path})


def test_throughput_through_loadgen_offline(tmp_path: Path) -> None:
    args = ThroughputArgs(
        min_duration_s=0.05, performance_runs=1, dev_good=8, dev_defective=8, warmup_samples=4
    )
    failures, result, root = run(ThroughputProbe(), args, tmp_path)
    got = figures(result)
    assert failures == []
    assert got["throughput"].value > 0 and got["failed_samples"].value == 0
    assert "harness dev set" in got["throughput"].invalid_reason
    assert (root / "loadgen" / "runs" / "01-performance-1" / "mlperf_log_summary.txt").is_file()


# ------------------------------------------------------------------ end to end


def test_the_example_command_detector_runs_verifies_and_audits(tmp_path: Path) -> None:
    shipped = yaml.safe_load((EXAMPLE / "submission.yaml").read_text())
    folder = tmp_path / "sub"
    shutil.copytree(EXAMPLE, folder)
    shipped["sut"]["argv"][0] = sys.executable  # the interpreter this harness runs in
    (folder / "submission.yaml").write_text(yaml.safe_dump(shipped), encoding="utf-8")
    config = tmp_path / "xdg"
    config.mkdir()
    run_dir = tmp_path / "run"
    with isolated_env(config):
        result = run_cli(
            "run", SUITE, "--quick", "--submission", folder / "submission.yaml", "--out", run_dir
        )
        assert result.code == 0, result.stdout + result.stderr
        assert run_cli("verify", run_dir).code == 0
        audit = run_cli("audit", run_dir)
        assert audit.code == 0, audit.stdout + audit.stderr
    statement = json.loads((run_dir / "statement.json").read_text())
    verdicts = {v["indicator"]: v for v in statement["predicate"]["verdicts"]}
    for name in (
        "miss_rate",
        "false_alarm_rate",
        "repeatability",
        "throughput",
        "fewshot_accuracy",
    ):
        assert verdicts[name]["status"] == "INCONCLUSIVE", verdicts[name]
        assert "harness dev set" in verdicts[name]["reason"]
    for name in (
        "inspection_3d_miss_rate",
        "inspection_3d_false_alarm_rate",
        "inspection_3d_depth",
    ):
        assert verdicts[name]["status"] == "INCONCLUSIVE", verdicts[name]
        assert "harness dev set" in verdicts[name]["reason"]
    sut = json.loads((run_dir / "evidence/tasks/detect/sut.json").read_text())
    assert sut["reference"] is False and "command" in json.dumps(sut)


def test_a_bad_set_is_refused_before_the_run_writes_anything(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a", "image": "gone.png", "defects": []}\n', encoding="utf-8")
    config = tmp_path / "xdg"
    config.mkdir()
    with isolated_env(config):
        result = run_cli("run", SUITE, "--dataset", f"inspection={path}", "--out", tmp_path / "r")
    assert result.code == 2
    assert_one_line_error(result, "s.jsonl", "line 1: image")
    assert not (tmp_path / "r").exists()
