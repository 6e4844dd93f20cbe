"""D14 visual inspection: strict reading of the labelled set, the detect / fewshot /
throughput figures against hand counts and scipy's beta quantiles (exact Clopper-Pearson),
answers of a scripted SUT (misses, alarms, malformed answers, a flipping SUT for
repeatability), the reference detector on the seeded dev set, and one end-to-end run of the
example command SUT (examples/d14-detector) through the CLI with verify and audit."""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from clihelpers import assert_one_line_error, isolated_env, run_cli
from probehelpers import by_id, collect_and_score, cp_lower_pct, cp_upper_pct, score_context
from scipy import stats

from harness.adapters.protocol import Sample, SampleOutput
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import ScoreResult
from harness.probes.inspection.detect import DetectArgs, DetectProbe
from harness.probes.inspection.fewshot import FewshotArgs, FewshotProbe
from harness.probes.inspection.manifest import read_manifest
from harness.probes.inspection.throughput import ThroughputArgs, ThroughputProbe
from harness.refengines import inspection as ref

ROOT = Path(__file__).resolve().parents[1]
HEX_NAME = re.compile(r"^[0-9a-f]{16}\.png$")
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
    failures, result = collect_and_score(probe, args, root, datasets, session=session)
    return failures, result, root


FIRST_LEVEL = 10  # line k's image is a uniform 8 x 8 PNG of gray level 10 + k


def write_set(folder: Path, lines: list[dict[str, Any]], images: int | None = None) -> Path:
    """A manifest and a tiny PNG of its own (gray level 10 + k) for every line k."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, line in enumerate(lines):
        level = np.full((8, 8), FIRST_LEVEL + k, dtype=np.uint8)
        (folder / line["image"]).write_bytes(ref.png_bytes(level))
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


def line_of(sample: Sample) -> int:
    """The manifest line (0-based) of a staged image of `write_set`, from its gray level:
    the harness shuffles the order and renames the copies every run."""
    return round(float(ref.load_gray(str(sample.data))[0, 0]) * 255) - FIRST_LEVEL


class Scripted:
    """Answers the image of line k (`by_line`, read from its pixels) or sample k with
    answers[k]; `flip` answers the image of line `flip_line` differently every run."""

    def __init__(
        self, answers: Sequence[Any], flip: bool = False, by_line: bool = True, flip_line: int = 3
    ) -> None:
        self.answers = list(answers)
        self.flip = flip
        self.by_line = by_line
        self.flip_line = flip_line
        self.calls = 0
        self.seen: list[Any] = []

    def describe(self) -> dict[str, Any]:
        return {"adapter": "scripted"}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out = []
        for s in samples:
            self.seen.append(s.data)
            k = line_of(s) if self.by_line else s.index
            answer = self.answers[k]
            if self.flip and k == self.flip_line:
                self.calls += 1
                answer = json.dumps(
                    {
                        "defective": True,
                        "defects": [{"type": "scratch"}] * (self.calls % 2),
                        "dimensions": {"len_mm": self.calls},
                    }
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
    got = by_id(result)
    assert failures and "1 failed" not in failures[0] and "malformed" in failures[0]
    # the SUT saw staged copies only, under random names, never the lab's folder
    assert all("/lab/" not in str(p) and HEX_NAME.match(Path(str(p)).name) for p in sut.seen)
    assert got["miss_rate"].value == pytest.approx(100 * 1 / 4)
    assert got["miss_rate"].ci.high == pytest.approx(cp_upper_pct(1, 4))
    assert got["false_alarm_rate"].value == pytest.approx(100 * 2 / 3)
    assert got["false_alarm_rate"].ci.high == pytest.approx(cp_upper_pct(2, 3))
    assert got["recall_scratch"].value == 100.0
    assert got["recall_spot"].value == pytest.approx(50.0)
    assert got["recall_crack"].value == pytest.approx(50.0)
    assert got["mixed_recall"].value == pytest.approx(50.0)  # d2 yes, d1 no
    assert got["mixed_recall"].ci.low == pytest.approx(cp_lower_pct(1, 2))
    # precision: named spot on g1 (good) and d2 (holds a spot); scratch on d0, d1 (both hold it)
    assert got["precision_spot"].value == pytest.approx(50.0)
    assert got["precision_spot"].ci.low == pytest.approx(cp_lower_pct(1, 2))
    assert got["precision_scratch"].value == 100.0
    assert got["precision_crack"].value == 100.0  # d2
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
    got = by_id(result)
    assert got["repeatability"].value == pytest.approx(100 * 6 / 7)
    assert got["repeatability"].details["changed_ids"] == ["d0"]
    assert got["dimension_spread_mm"].value == pytest.approx(2.0)  # 1, 2, 3 mm
    assert got["dimension_spread_pct"].value == pytest.approx(100 * 2.0 / 0.2)
    sd = got["dimension_spread_mm"].details["per_dimension_sd_mm"]["len_mm"]["max"]
    assert sd == pytest.approx(float(np.std([1, 2, 3])))
    # one (image, dimension) pair: no order-statistic bound on the 95 % quantile (it takes
    # 59: 1 - 0.95 ** 59 >= 0.95 > 1 - 0.95 ** 58), so the figure cannot decide
    assert got["dimension_spread_mm"].n == 1
    assert got["dimension_spread_mm"].ci.high is None and not got["dimension_spread_mm"].exact
    assert "need 59" in got["dimension_spread_mm"].ci.need
    assert 1 - 0.95**59 >= 0.95 > 1 - 0.95**58


def test_the_reference_detector_on_the_dev_set(tmp_path: Path) -> None:
    args = DetectArgs(repeats=2, dev_good=20, dev_defective=20, min_type_images=5)
    failures, result, root = run(DetectProbe(), args, tmp_path)
    got = by_id(result)
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
            EvidenceReader(root), score_context(args, {"inspection": Path("given")})
        )


# ------------------------------------------------------------------ few-shot, throughput


def test_fewshot_sends_k_examples_first_then_scores_the_held_out(tmp_path: Path) -> None:
    args = FewshotArgs(dev_good=10, dev_defective=10, dev_train_good=3, dev_train_defective=1)
    failures, result, root = run(FewshotProbe(), args, tmp_path)
    got = by_id(result)
    assert failures == []
    assert got["accuracy"].details["k"] == 4 and "k = 4" in got["accuracy"].method
    outputs = json.loads((root / "outputs.json").read_text())
    assert json.loads(outputs[0]["output"]) == {"trained": 4, "good_examples": 3}
    right = got["accuracy"].details["right"]
    assert got["accuracy"].ci.low == pytest.approx(cp_lower_pct(right, 20))
    # a scripted SUT: its first sample is the training request, with k stated examples
    sut = Scripted(["{}"] + [answer(True, "spot")] * 20, by_line=False)
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
    got = by_id(result)
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


# ------------------------------------------------------------------ hostile answers and sets


ALL_TYPES = yaml.safe_load(SUITE.read_text())["tasks"][0]["args"]["defect_types"]
SHOTGUN = json.dumps(
    {"defective": True, "defects": [{"type": t} for t in ALL_TYPES], "dimensions": {"x_mm": 1.0}}
)


def mixed_set(tmp: Path) -> tuple[Path, list[dict[str, Any]]]:
    """30 good images and 45 with two types each: every type in 30 images."""
    pairs = [["scratch", "spot"], ["spot", "crack"], ["scratch", "crack"]]
    lines = [{"id": f"g{k}", "image": f"g{k}.png", "defects": []} for k in range(30)]
    for k in range(45):
        types = pairs[k % 3]
        lines.append(
            {"id": f"d{k}", "image": f"d{k}.png", "defects": [{"type": t} for t in types]}
        )
    return write_set(tmp / "mixed", lines), lines


def test_naming_every_type_on_every_image_buys_no_mixed_figure(tmp_path: Path) -> None:
    path, lines = mixed_set(tmp_path)
    args = DetectArgs(repeats=2, defect_types=ALL_TYPES)
    _, shot, _ = run(DetectProbe(), args, tmp_path / "a", {"inspection": path},
                     Scripted([SHOTGUN] * len(lines)))  # fmt: skip
    got = by_id(shot)
    assert got["recall_scratch"].value == 100.0  # recall alone is bought ...
    assert got["mixed_recall"].value == 0.0  # ... not naming exactly the true types
    # precision: every one of the 75 images names scratch, 30 hold one
    assert got["precision_scratch"].value == pytest.approx(100 * 30 / 75)
    assert got["precision_scratch"].ci.low == pytest.approx(cp_lower_pct(30, 75))
    assert got["mixed_types_passing"].value == 0
    table = got["mixed_types_passing"].details["types"]
    assert table["spot"]["precision_low_pct"] == pytest.approx(cp_lower_pct(30, 75))
    assert "hole" in got["mixed_types_passing"].details["named_but_absent"]
    # an exact answer earns all three (n = 30 at 100 %: lower bound 0.05 ** (1/30) > 90 %)
    exact = [answer(bool(x["defects"]), *(d["type"] for d in x["defects"])) for x in lines]
    _, right, _ = run(DetectProbe(), args, tmp_path / "b", {"inspection": path}, Scripted(exact))
    good = by_id(right)
    assert good["mixed_recall"].value == 100.0
    assert good["mixed_types_passing"].value == 3
    assert 0.05 ** (1 / 30) > 0.9


def test_the_shotgun_sut_gets_no_pass_on_miss_rate_through_the_cli(tmp_path: Path) -> None:
    """300 defective images answered defective (miss rate 0, upper bound < 1 %) by a SUT
    that calls every part defective: the false-alarm rate FAILs, the miss rate cannot
    PASS (trades_off_with)."""
    folder = tmp_path / "set"
    folder.mkdir()
    rng = np.random.default_rng(5)
    lines = []
    for k in range(320):
        (folder / f"i{k}.png").write_bytes(
            ref.png_bytes(rng.integers(0, 256, (16, 16), dtype=np.uint8))
        )
        defects = [{"type": "scratch"}] if k >= 20 else []
        lines.append({"id": f"i{k}", "image": f"i{k}.png", "defects": defects})
    manifest = folder / "m.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    script = tmp_path / "shotgun.py"
    script.write_text(
        "import sys\n"
        f"for line in sys.stdin:\n    print({SHOTGUN!r}, flush=True)\n",
        encoding="utf-8",
    )
    sub = tmp_path / "sub.yaml"
    sub.write_text(
        yaml.safe_dump(
            {
                "applicant": "Hostile", "product": "shotgun", "suite": "d14-visual-inspection",
                "sut": {"adapter": "command", "mode": "batch",
                        "argv": [sys.executable, str(script)], "timeout_s": 30},
            }
        ),
        encoding="utf-8",
    )  # fmt: skip
    config = tmp_path / "xdg"
    config.mkdir()
    run_dir = tmp_path / "run"
    with isolated_env(config):
        result = run_cli("run", SUITE, "--quick", "--submission", sub,
                         "--dataset", f"inspection={manifest}", "--out", run_dir)  # fmt: skip
        assert result.code in (0, 1), result.stdout + result.stderr
    statement = json.loads((run_dir / "statement.json").read_text())
    verdicts = {v["indicator"]: v for v in statement["predicate"]["verdicts"]}
    assert verdicts["false_alarm_rate"]["status"] == "FAIL"
    assert verdicts["miss_rate"]["status"] == "INCONCLUSIVE", verdicts["miss_rate"]
    assert "false_alarm_rate" in verdicts["miss_rate"]["reason"]
    assert not any(v["status"] == "PASS" for k, v in verdicts.items() if k != "repeatability")


def _png_rgb(path: Path) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    with Image.open(path) as image:
        image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("how", ["same path", "symlink", "byte copy", "re-encoded"])
def test_one_image_listed_twice_is_refused_naming_both_lines(tmp_path: Path, how: str) -> None:
    lines = [{"id": f"p{k}", "image": f"p{k}.png", "defects": []} for k in range(3)]
    path = write_set(tmp_path, lines)
    extra = {"id": "copy", "image": "p1.png", "defects": []}
    if how == "symlink":
        (tmp_path / "link.png").symlink_to(tmp_path / "p1.png")
        extra["image"] = "link.png"
    elif how == "byte copy":
        shutil.copyfile(tmp_path / "p1.png", tmp_path / "c.png")
        extra["image"] = "c.png"
    elif how == "re-encoded":
        (tmp_path / "c.png").write_bytes(_png_rgb(tmp_path / "p1.png"))
        assert (tmp_path / "c.png").read_bytes() != (tmp_path / "p1.png").read_bytes()
        extra["image"] = "c.png"
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(extra) + "\n")
    with pytest.raises(BadInput) as error:
        read_manifest(path, ["scratch"])
    text = str(error.value)
    assert "line 4: image" in text and "line 2" in text and "\n" not in text, text


def test_a_fewshot_test_image_may_not_be_a_training_example(tmp_path: Path) -> None:
    lines = [
        {"id": "t0", "image": "t0.png", "defects": [], "split": "train"},
        {"id": "x0", "image": "x0.png", "defects": []},
    ]
    path = write_set(tmp_path, lines)
    shutil.copyfile(tmp_path / "t0.png", tmp_path / "x0.png")
    with pytest.raises(BadInput, match=r"line 2: image.*line 1"):
        FewshotProbe().check_datasets(FewshotArgs(), {"fewshot": path})


class Caching:
    """A SUT that answers each input it has not seen by the parity of how many it has seen
    and caches the answer by `key` (the path, the file name or the sample index)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.cache: dict[Any, str] = {}
        self.paths: list[list[str]] = [[]]

    def describe(self) -> dict[str, Any]:
        return {"adapter": "caching"}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out = []
        for s in samples:
            path = str(s.data)
            self.paths[-1].append(path)
            k = {"path": path, "name": Path(path).name, "index": s.index}[self.key]
            if k not in self.cache:
                self.cache[k] = answer(len(self.cache) % 2 == 0)
            out.append(SampleOutput(s.index, self.cache[k], None, 0.0))
        return out

    def close(self) -> None:
        pass


@pytest.mark.parametrize("key", ["path", "name", "index"])
def test_repeats_send_fresh_names_in_a_fresh_order(tmp_path: Path, key: str) -> None:
    path, lines = mixed_set(tmp_path)
    sut = Caching(key)
    args = DetectArgs(repeats=2, defect_types=ALL_TYPES, batch_size=1000)
    _, result, root = run(DetectProbe(), args, tmp_path / "r", {"inspection": path}, sut)
    # a cache by path, name or position repeats nothing: about half the images change
    assert by_id(result)["repeatability"].value < 75
    outputs = json.loads((root / "outputs.json").read_text())
    orders = [r["order"] for r in outputs["runs"]]
    assert sorted(orders[0]) == list(range(75)) and orders[0] != orders[1]
    assert [r["id"] for r in outputs["runs"][1]["records"]] == [
        lines[k]["id"] for k in orders[1]
    ]


def test_answers_are_mapped_back_through_the_shuffle(tmp_path: Path) -> None:
    path, lines = mixed_set(tmp_path)
    exact = [answer(bool(x["defects"]), *(d["type"] for d in x["defects"])) for x in lines]
    sut = Scripted(exact)
    args = DetectArgs(repeats=3, defect_types=ALL_TYPES, batch_size=7)
    _, result, _ = run(DetectProbe(), args, tmp_path / "r", {"inspection": path}, sut)
    got = by_id(result)
    assert got["repeatability"].value == 100.0 and got["miss_rate"].value == 0.0
    assert got["false_alarm_rate"].value == 0.0 and got["mixed_recall"].value == 100.0
    runs = [sut.seen[k * 75 : (k + 1) * 75] for k in range(3)]
    folders = {Path(str(p)).parent for p in sut.seen}
    assert len(folders) == 3  # a fresh folder per run
    assert not set(runs[0]) & set(runs[1]) and not set(runs[1]) & set(runs[2])


class Drifting:
    """Answers every image with its true dimensions (constant) and a made-up one that
    drifts by 1 mm per run."""

    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self.lines = lines
        self.run_no = 0
        self.seen = 0

    def describe(self) -> dict[str, Any]:
        return {"adapter": "drifting"}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out = []
        for s in samples:
            line = self.lines[line_of(s)]
            self.seen += 1
            dims = {**line.get("dimensions", {}), "dummy_mm": float(self.seen // 7)}
            text = json.dumps({"defective": bool(line["defects"]), "dimensions": dims})
            out.append(SampleOutput(s.index, text, None, 0.0))
        return out

    def close(self) -> None:
        pass


def test_the_spread_is_over_the_true_dimensions_only(tmp_path: Path) -> None:
    lab = lab_set(tmp_path)
    lines = [json.loads(x) for x in lab.read_text().splitlines()]
    args = DetectArgs(repeats=3)
    _, result, _ = run(DetectProbe(), args, tmp_path / "r", {"inspection": lab}, Drifting(lines))
    spread = by_id(result)["dimension_spread_mm"]
    assert spread.value == 0.0 and spread.n == 3  # d0 len, d1 len and dia
    assert spread.details["ignored_not_a_true_dimension"] == 7
    assert spread.invalid_reason == ""
    assert spread.ci.high is None and "need 59" in spread.ci.need and "have 3" in spread.ci.need


def _dev_copy(root: Path, to: Path, rgb: bool = False) -> Path:
    """The dev set of an evidence folder under `to`, its manifest one newline longer (and,
    with `rgb`, every image re-encoded as RGB)."""
    shutil.copytree(root / "set", to)
    manifest = to / "manifest.jsonl"
    manifest.write_bytes(manifest.read_bytes() + b"\n")
    if rgb:
        for image in (to / "images").iterdir():
            image.write_bytes(_png_rgb(image))
    return manifest


def test_dev_images_passed_back_as_the_lab_set_never_decide(tmp_path: Path) -> None:
    args = DetectArgs(repeats=2, dev_good=6, dev_defective=6)
    _, _, root = run(DetectProbe(), args, tmp_path / "dev")
    for rgb in (False, True):
        manifest = _dev_copy(root, tmp_path / f"copy{rgb}", rgb)
        _, copied, _ = run(DetectProbe(), args, tmp_path / f"r{rgb}", {"inspection": manifest})
        assert copied.measurements
        for m in copied.measurements:
            assert m.invalid_reason.startswith("dev data: 12 of the set's 12 images"), m
        assert ("pixels" if rgb else "bytes") in copied.measurements[0].invalid_reason
    # images of the dev part from a set of another seed and size: still dev data
    other = tmp_path / "other"
    ref.write_set(other, "brick", ref.plan_set("brick", 99, 2, 2))
    _, result, _ = run(DetectProbe(), args, tmp_path / "o",
                       {"inspection": other / "manifest.jsonl"})  # fmt: skip
    assert all("a picture of the dev part 'brick'" in m.invalid_reason for m in result.measurements)
    # throughput on the same copy
    targs = ThroughputArgs(min_duration_s=0.02, performance_runs=1, warmup_samples=2,
                           dev_good=6, dev_defective=6)  # fmt: skip
    manifest = _dev_copy(root, tmp_path / "tcopy")
    _, timed, _ = run(ThroughputProbe(), targs, tmp_path / "t", {"inspection": manifest})
    assert "dev data" in by_id(timed)["throughput"].invalid_reason


def test_fewshot_dev_images_passed_back_never_decide(tmp_path: Path) -> None:
    args = FewshotArgs(dev_good=4, dev_defective=4, dev_train_good=2, dev_train_defective=1)
    _, _, root = run(FewshotProbe(), args, tmp_path / "dev")
    manifest = _dev_copy(root, tmp_path / "copy")
    _, copied, _ = run(FewshotProbe(), args, tmp_path / "r", {"fewshot": manifest})
    assert copied.measurements
    assert all("dev data: 11 of the set's 11" in m.invalid_reason for m in copied.measurements)


# ------------------------------------------------------------------ the auditor's findings


THROUGHPUT_SUITE = ROOT / "tests" / "data" / "d14-throughput-suite.yaml"
TINY_THROUGHPUT = dict(
    min_duration_s=0.02, performance_runs=1, warmup_samples=2, dev_good=2, dev_defective=2
)


def _loaded_answers(root: Path) -> dict[str, Any]:
    return json.loads((root / "answers.json").read_text())


def test_answers_of_x_under_load_make_the_throughput_invalid(tmp_path: Path) -> None:
    """Finding 1: a detector answering "x" to every image is fast, and its figure cannot
    decide; every malformed answer under load is a failed sample."""
    lab = lab_set(tmp_path)
    args = ThroughputArgs(**TINY_THROUGHPUT)
    _, result, root = run(ThroughputProbe(), args, tmp_path / "r", {"inspection": lab},
                          Scripted(["x"] * 7))  # fmt: skip
    got = by_id(result)
    answers = _loaded_answers(root)
    total = answers["loaded_answers"]
    assert total == sum(e["count"] for e in answers["loaded"]) > 0
    assert len(answers["unloaded"]) == 7  # the unloaded pass: one answer per image
    reason = got["throughput"].invalid_reason
    assert f"not valid answers: {total} of {total} malformed" in reason
    assert "harness dev set" not in reason  # the lab's set: the answers alone invalidate it
    assert got["failed_samples"].value == total
    assert got["throughput"].details["answers"]["malformed_under_load"] == total


class Drifts:
    """Right without load (the first 7 answers), then every image answered defective."""

    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self.lines = lines
        self.calls = 0

    def describe(self) -> dict[str, Any]:
        return {"adapter": "drifts"}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out = []
        for s in samples:
            self.calls += 1
            truth = bool(self.lines[line_of(s)]["defects"])
            text = answer(truth if self.calls <= len(self.lines) else True)
            out.append(SampleOutput(s.index, text, None, 0.0))
        return out

    def close(self) -> None:
        pass


def test_answers_that_change_under_load_make_the_throughput_invalid(tmp_path: Path) -> None:
    lab = lab_set(tmp_path)
    lines = [json.loads(x) for x in lab.read_text().splitlines()]
    args = ThroughputArgs(**TINY_THROUGHPUT)
    _, result, _ = run(ThroughputProbe(), args, tmp_path / "r", {"inspection": lab},
                       Drifts(lines))  # fmt: skip
    got = by_id(result)
    # the 3 good images are answered defective under load: 4 of 7 keep their decision
    assert "answers differently under load: 4 of the 7 images" in got["throughput"].invalid_reason
    assert got["failed_samples"].value == 0  # well-formed answers, only different ones
    # the same answers with and without load: nothing to say against the figure
    steady = [answer(bool(x["defects"])) for x in lines]
    _, fine, _ = run(ThroughputProbe(), args, tmp_path / "s", {"inspection": lab},
                     Scripted(steady))  # fmt: skip
    assert by_id(fine)["throughput"].details["answers"]["agreement_pct"] == 100.0
    assert "answer" not in by_id(fine)["throughput"].invalid_reason


def test_score_notices_answers_under_load_edited_in_the_evidence(tmp_path: Path) -> None:
    lab = lab_set(tmp_path)
    args = ThroughputArgs(**TINY_THROUGHPUT)
    _, _, root = run(ThroughputProbe(), args, tmp_path / "r", {"inspection": lab},
                     Scripted(["x"] * 7))  # fmt: skip
    ctx = score_context(args, {"inspection": lab})
    path = root / "answers.json"
    original = path.read_text()
    # the auditor drops the malformed answers under load: LoadGen asked for them
    edited = json.loads(original)
    edited["loaded"], edited["loaded_answers"] = [], 0
    path.write_text(json.dumps(edited))
    reason = by_id(ThroughputProbe().score(EvidenceReader(root), ctx))["throughput"]
    assert "records 0 answers under load, but LoadGen's warm-up and runs asked" in (
        reason.invalid_reason
    )
    # ... or rewrites them as good answers, one per (sample, output) with its count
    edited = json.loads(original)
    for entry in edited["loaded"]:
        entry["output"] = answer(False)
    for record in edited["unloaded"]:
        record["output"] = answer(False)
    path.write_text(json.dumps(edited))
    ok = by_id(ThroughputProbe().score(EvidenceReader(root), ctx))["throughput"]
    assert ok.invalid_reason == ""  # answers, not flags: what the evidence says is judged
    # counts that do not add up are refused
    edited["loaded_answers"] += 1
    path.write_text(json.dumps(edited))
    with pytest.raises(ValueError, match="counts sum to"):
        ThroughputProbe().score(EvidenceReader(root), ctx)


def _sub(tmp: Path, name: str, body: str) -> Path:
    script = tmp / f"{name}.py"
    script.write_text(body, encoding="utf-8")
    sub = tmp / f"{name}.yaml"
    sub.write_text(
        yaml.safe_dump(
            {
                "applicant": "Test", "product": name, "suite": "test-d14-throughput",
                "sut": {"adapter": "command", "mode": "batch",
                        "argv": [sys.executable, str(script)], "timeout_s": 30},
            }
        ),
        encoding="utf-8",
    )  # fmt: skip
    return sub


def test_the_x_detector_gets_no_throughput_pass_through_the_cli(tmp_path: Path) -> None:
    lines = [{"id": f"i{k}", "image": f"i{k}.png", "defects": []} for k in range(12)]
    manifest = write_set(tmp_path / "set", lines)
    x = _sub(tmp_path, "x", "import sys\nfor line in sys.stdin:\n    print('x', flush=True)\n")
    good = _sub(
        tmp_path,
        "good",
        "import sys\nfor line in sys.stdin:\n    print('{\"defective\": false}', flush=True)\n",
    )
    config = tmp_path / "xdg"
    config.mkdir()
    verdicts = {}
    with isolated_env(config):
        for name, sub in (("x", x), ("good", good)):
            out = tmp_path / f"run-{name}"
            result = run_cli("run", THROUGHPUT_SUITE, "--submission", sub,
                             "--dataset", f"inspection={manifest}", "--out", out)  # fmt: skip
            # 3: the task is partial (its collect reports the malformed answers)
            assert result.code in (0, 1, 3), result.stdout + result.stderr
            assert run_cli("verify", out).code == 0
            audit = run_cli("audit", out)
            assert audit.code == 0, audit.stdout + audit.stderr
            statement = json.loads((out / "statement.json").read_text())
            verdicts[name] = {v["indicator"]: v for v in statement["predicate"]["verdicts"]}
    assert verdicts["x"]["throughput"]["status"] != "PASS"
    assert "not valid answers" in verdicts["x"]["throughput"]["reason"]
    assert verdicts["good"]["throughput"]["status"] == "PASS", verdicts["good"]["throughput"]


def _items(root: Path) -> tuple[Path, dict[str, Any]]:
    path = root / "items.json"
    return path, json.loads(path.read_text())


@pytest.mark.parametrize("probe_name", ["detect", "throughput"])
def test_dev_ness_comes_from_the_run_not_the_evidence(tmp_path: Path, probe_name: str) -> None:
    """Finding 2: clearing `dev_set` / `generated` in the evidence of a dev-set run does not
    make its figures valid: the run was given no --dataset (the signed header)."""
    if probe_name == "detect":
        probe: Any = DetectProbe()
        args: Any = DetectArgs(repeats=2, dev_good=3, dev_defective=3)
    else:
        probe, args = ThroughputProbe(), ThroughputArgs(**TINY_THROUGHPUT)
    _, result, root = run(probe, args, tmp_path / "r")
    assert all("harness dev set" in m.invalid_reason for m in result.measurements)
    path, items = _items(root)
    items["source"].update({"dev_set": None, "generated": False, "path": "/lab/set.jsonl"})
    path.write_text(json.dumps(items))
    with pytest.raises(ValueError, match="given no --dataset inspection"):
        probe.score(EvidenceReader(root), score_context(args))
    # the other way round: a lab set's evidence claiming a generated set
    _, _, lab_root = run(probe, args, tmp_path / "l", {"inspection": lab_set(tmp_path)},
                         Scripted([answer(False)] * 7))  # fmt: skip
    path, items = _items(lab_root)
    items["source"].update({"generated": True, "path": None})
    path.write_text(json.dumps(items))
    with pytest.raises(ValueError, match="given --dataset inspection"):
        probe.score(EvidenceReader(lab_root), score_context(args, {"inspection": Path("x")}))


def test_a_lab_set_whose_recorded_digests_are_dev_images_never_decides(tmp_path: Path) -> None:
    """Finding 2: `dev_images` cleared in the evidence; the recorded sha256 of the images
    are regenerated dev images all the same."""
    args = DetectArgs(repeats=2, dev_good=4, dev_defective=4)
    _, _, root = run(DetectProbe(), args, tmp_path / "dev")
    lab = _dev_copy(root, tmp_path / "lab")
    _, result, again = run(DetectProbe(), args, tmp_path / "r", {"inspection": lab},
                           Scripted([answer(False)] * 8, by_line=False))  # fmt: skip
    assert all("dev data" in m.invalid_reason for m in result.measurements)
    path, items = _items(again)
    items["source"]["dev_images"] = []
    path.write_text(json.dumps(items))
    rescored = DetectProbe().score(EvidenceReader(again), score_context(args, {"inspection": lab}))
    assert all("dev data: 8 of the set's 8" in m.invalid_reason for m in rescored.measurements)


@pytest.mark.parametrize("edit", ["flag", "bytes", "missing"])
def test_a_dev_sets_images_are_always_checked(tmp_path: Path, edit: str) -> None:
    """Finding 3: `images_copied` cleared, an image copy edited or removed: refused."""
    args = DetectArgs(repeats=2, dev_good=3, dev_defective=3)
    _, _, root = run(DetectProbe(), args, tmp_path)
    path, items = _items(root)
    image = root / "set" / items["source"]["images"][2]["image"]
    if edit == "flag":
        items["source"]["images_copied"] = False
        path.write_text(json.dumps(items))
        match = "always copied"
    elif edit == "bytes":
        image.write_bytes(image.read_bytes() + b"\0")
        match = "sha256 differs"
    else:
        image.unlink()
        match = "missing"
    with pytest.raises(ValueError, match=match):
        DetectProbe().score(EvidenceReader(root), score_context(args))


def test_the_throughput_task_copies_and_checks_a_dev_sets_images(tmp_path: Path) -> None:
    args = ThroughputArgs(**TINY_THROUGHPUT)
    _, _, root = run(ThroughputProbe(), args, tmp_path)
    path, items = _items(root)
    assert items["source"]["images_copied"] is True
    assert len(list((root / "set" / "images").iterdir())) == 4
    items["source"]["images_copied"] = False
    path.write_text(json.dumps(items))
    with pytest.raises(ValueError, match="always copied"):
        ThroughputProbe().score(EvidenceReader(root), score_context(args))


def test_the_spread_bound_is_an_order_statistic_on_its_quantile(tmp_path: Path) -> None:
    """Finding 4: dimension_spread_* and dimension_max_error_mm are sample statistics, never
    `exact`; the spread's bound is the order statistic that bounds its 95 % quantile."""
    n = 80
    lines = [
        {"id": f"d{k}", "image": f"d{k}.png", "defects": [{"type": "scratch"}],
         "dimensions": {"len_mm": 1.0}}
        for k in range(n)
    ]  # fmt: skip
    path = write_set(tmp_path / "set", lines)
    spreads = [0.001 * k for k in range(n)]  # line k: answered 1.0, then 1.0 + spread

    class Spreads:
        def __init__(self) -> None:
            self.calls = 0

        def describe(self) -> dict[str, Any]:
            return {"adapter": "spreads"}

        def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
            out = []
            for s in samples:
                k = line_of(s)
                value = 1.0 + (spreads[k] if self.calls >= n else 0.0)
                self.calls += 1
                out.append(SampleOutput(s.index, answer(True, "scratch", len_mm=value), None, 0))
            return out

        def close(self) -> None:
            pass

    _, result, _ = run(DetectProbe(), DetectArgs(repeats=2), tmp_path / "r",
                       {"inspection": path}, Spreads())  # fmt: skip
    got = by_id(result)
    spread = got["dimension_spread_mm"]
    assert not spread.exact and not got["dimension_max_error_mm"].exact
    assert not got["dimension_spread_pct"].exact
    # independent: the smallest j with P(Binomial(80, 0.95) <= j - 1) >= 0.95, by scipy
    j = next(j for j in range(1, n + 1) if stats.binom.cdf(j - 1, n, 0.95) >= 0.95)
    assert spread.details["bound_order_statistic"] == j
    assert spread.ci.high == pytest.approx(sorted(spreads)[j - 1], abs=1e-12)
    assert spread.value == pytest.approx(sorted(spreads)[math.ceil(0.95 * n) - 1], abs=1e-12)
    assert spread.details["largest_spread_mm"] == pytest.approx(max(spreads), abs=1e-12)
    assert got["dimension_spread_pct"].ci.high == pytest.approx(100 * spread.ci.high / 0.2)
    # the bound covers the 95 % quantile at least 95 % of the time (uniform spreads)
    rng = np.random.default_rng(1)
    trials = rng.random((4000, n))
    covered = np.mean(np.sort(trials, axis=1)[:, j - 1] >= 0.95)
    assert covered >= 0.94
    # the largest error is judged INCONCLUSIVE at best: no bound, not exact
    from harness.judge import judge
    from harness.schema import Indicator

    ind = Indicator(id="e", title="e", metric="detect.dimension_max_error_mm", op="<=",
                    target=10.0, unit="mm", source="test")  # fmt: skip
    assert judge(ind, got["dimension_max_error_mm"], None, None).status == "INCONCLUSIVE"
