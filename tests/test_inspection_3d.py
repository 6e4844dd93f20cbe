"""D14 3D inspection (`inspection.inspect3d`): strict reading of the height-map set, the
figures of a scripted SUT against hand counts and scipy's beta quantiles (exact
Clopper-Pearson), the reference height-map detector on hand-drawn maps and on the seeded dev
set, one CLI run (tests/data/d14-3d-suite.yaml) with verify and audit, and the suite's units
(images/s against samples/s, the spread in mm)."""

from __future__ import annotations

import io
import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clihelpers import assert_one_line_error, isolated_env, run_cli
from PIL import Image
from probehelpers import by_id, collect_and_score, cp_lower_pct, cp_upper_pct, score_context

from harness.adapters.protocol import Sample, SampleOutput
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.judge import judge
from harness.probes.base import ScoreResult
from harness.probes.inspection.heightmaps import load_map, read_height_manifest
from harness.probes.inspection.inspect3d import Inspect3dArgs, Inspect3dProbe
from harness.refengines import inspection3d as ref
from harness.schema import Interval, Measurement
from harness.suites import load

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "suites" / "d14-visual-inspection.yaml"
TINY = ROOT / "tests" / "data" / "d14-3d-suite.yaml"
VOCABULARY = ["dent", "bump", "scratch"]


def run(
    args: Inspect3dArgs,
    tmp: Path,
    datasets: dict[str, Path] | None = None,
    session: Any = None,
) -> tuple[list[str], ScoreResult, Path]:
    root = tmp / "evidence"
    probe = Inspect3dProbe()
    failures, result = collect_and_score(probe, args, root, datasets, session=session)
    return failures, result, root


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array) if mode is None else Image.fromarray(array, mode=mode)
    image.save(buffer, format="PNG")
    return buffer.getvalue()


FLAT = np.zeros((8, 8), dtype=np.float32)


def write_set(folder: Path, lines: list[dict[str, Any]]) -> Path:
    """A manifest and a flat 8 x 8 .npy map of its own (at height k um) for every line k
    naming a .npy map not there yet."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, line in enumerate(lines):
        name = str(line["height_map"])
        if name.endswith(".npy") and not (folder / name).exists():
            (folder / name).write_bytes(npy(FLAT + np.float32(0.001 * k)))
    path = folder / "set.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


# ------------------------------------------------------------------ reading


def _maps(folder: Path) -> None:
    nan = np.zeros((8, 8))
    nan[2, 5] = np.nan
    inf = np.zeros((8, 8))
    inf[1, 1] = np.inf
    files = {
        "ok.npy": npy(FLAT),
        "nan.npy": npy(nan),
        "inf.npy": npy(inf),
        "empty.npy": npy(np.zeros((0, 0))),
        "line.npy": npy(np.zeros(16)),
        "tiny.npy": npy(np.zeros((3, 8))),
        "text.npy": npy(np.array(["a", "b"])),
        "eight.png": png(np.zeros((8, 8), dtype=np.uint8)),
        "rgb.png": png(np.zeros((8, 8, 3), dtype=np.uint8)),
        "sixteen.png": png(np.full((8, 8), 1000, dtype=np.uint16)),
        "broken.png": b"\x89PNG not really",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)


def line(height_map: str, extra: str = "", defects: str = "[]") -> str:
    """One manifest line (raw text, so that NaN can be written)."""
    return f'{{"id": "a", "height_map": "{height_map}", "defects": {defects}{extra}}}'


SCALE = ', "height_scale_mm": 0.001'


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (line("nan.npy"), ["line 1: height_map", "NaN", "row 2, column 5"]),
        (line("inf.npy"), ["line 1: height_map", "infinite"]),
        (line("empty.npy"), ["line 1: height_map", "empty"]),
        (line("line.npy"), ["line 1: height_map", "2-D"]),
        (line("tiny.npy"), ["line 1: height_map", "4 x 4"]),
        (line("text.npy"), ["line 1: height_map", "float"]),
        (line("eight.png", SCALE), ["line 1: height_map", "8-bit"]),
        (line("rgb.png", SCALE), ["line 1: height_map", "16-bit"]),
        (line("broken.png", SCALE), ["line 1: height_map", "readable"]),
        (line("sixteen.png"), ["line 1: height_scale_mm", "missing"]),
        (line("gone.npy"), ["line 1: height_map", "not found"]),
        (line("ok.tif"), ["line 1: height_map", ".npy or .png"]),
        ('{"id": "a", "height_map": "ok.npy"}', ["line 1: defects", "missing"]),
        (line("ok.npy", defects='[{"type": "spot"}]'), ["line 1: defects[0].type", "unknown"]),
        (line("ok.npy", ', "dimensions": {"depth_mm": NaN}'), ["line 1"]),
        (
            line("ok.npy", ', "dimensions": {"depth_mm": -0.1}'),
            ["line 1: dimensions.depth_mm", "> 0"],
        ),
        (
            line("ok.npy", ', "dimensions": {"width_mm": 1}'),
            ["line 1: dimensions.width_mm", "unknown"],
        ),
        (line("ok.npy", ', "pixel_mm": 0'), ["line 1: pixel_mm", "> 0"]),
        (line("ok.npy", ', "image": "x.png"'), ["line 1: image", "unknown field"]),
        ((line("ok.npy") + "\n") * 2, ["line 2: id", "duplicate"]),
        ("\n\n", ["empty height-map set"]),
    ],
)
def test_bad_sets_are_refused_naming_file_line_and_field(
    tmp_path: Path, text: str, needles: list[str]
) -> None:
    _maps(tmp_path)
    path = tmp_path / "set.jsonl"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(BadInput) as error:
        read_height_manifest(path, VOCABULARY)
    message = str(error.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    for needle in needles:
        assert needle in message, message


def test_a_16_bit_png_is_read_in_its_height_units(tmp_path: Path) -> None:
    units = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    (tmp_path / "m.png").write_bytes(png(units))
    (tmp_path / "m.npy").write_bytes(npy(units.astype(np.float64) / 2))
    path = write_set(
        tmp_path,
        [
            {"id": "p", "height_map": "m.png", "defects": [], "height_scale_mm": 0.0005},
            {"id": "n", "height_map": "m.npy", "defects": [{"type": "dent"}], "pixel_mm": 0.02},
        ],
    )
    png_item, npy_item = read_height_manifest(path, VOCABULARY)
    assert np.array_equal(load_map(png_item, path), units.astype(np.float64) * 0.0005)
    assert np.array_equal(load_map(npy_item, path), units.astype(np.float64) / 2)
    assert npy_item.pixel_mm == 0.02 and npy_item.types == ("dent",)


# ------------------------------------------------------------------ the detector


def _surface(shape: tuple[int, int] = (96, 96), seed: int = 1) -> np.ndarray:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    noise = np.random.default_rng(seed).normal(0, 0.002, shape)
    return 3.0 + 0.003 * cols - 0.002 * rows + 0.008 * np.sin(cols / 25.0) + noise


def test_the_detector_finds_a_drawn_dent_bump_and_scratch_with_their_depths() -> None:
    height = _surface()
    rows, cols = np.mgrid[0:96, 0:96].astype(np.float64)
    # a dent 0.05 mm deep at (20, 20), radius 6 (a cosine bowl, written out here)
    d = np.hypot(rows - 20, cols - 20)
    height -= np.where(d < 6, 0.05 * 0.5 * (1 + np.cos(np.pi * d / 6)), 0.0)
    # a bump 0.08 mm high at (70, 24), radius 5
    d = np.hypot(rows - 70, cols - 24)
    height += np.where(d < 5, 0.08 * 0.5 * (1 + np.cos(np.pi * d / 5)), 0.0)
    # a horizontal groove 0.04 mm deep along row 60, columns 55..85, half-width 1.5 px
    d = np.abs(rows - 60)
    along = (cols >= 55) & (cols <= 85)
    height -= np.where(along, 0.04 * np.clip(1 - (d / 1.5) ** 2, 0, None), 0.0)
    answer = ref.HeightMapDetector().detect(height)
    assert answer["defective"] is True
    assert sorted(x["type"] for x in answer["defects"]) == ["bump", "dent", "scratch"]
    assert answer["dimensions"]["depth_mm"] == pytest.approx(0.05, abs=0.008)
    assert answer["dimensions"]["height_mm"] == pytest.approx(0.08, abs=0.008)
    good = ref.HeightMapDetector().detect(_surface(seed=2))
    assert good["defective"] is False and good["defects"] == []


def test_the_dev_truth_is_the_drawn_extreme() -> None:
    specs = ref.plan_set("m", 5, 2, 6)
    assert ref.plan_set("m", 5, 2, 6) == specs and ref.plan_set("m", 6, 2, 6) != specs
    for spec in specs:
        truth = spec.truth()
        dents = [d for d in spec.defects if d.type != "bump"]
        bumps = [d for d in spec.defects if d.type == "bump"]
        assert ("depth_mm" in truth) == bool(dents) and ("height_mm" in truth) == bool(bumps)
        for d in spec.defects:
            extreme = float(np.abs(d.field((ref.MAP_PX, ref.MAP_PX))).max())
            assert extreme <= d.amplitude_mm + 1e-12
            if d.type != "scratch":  # the pixel nearest the centre, by the bowl's formula
                r, c = d.points[0]
                dist = math.hypot(r - round(r), c - round(c))
                nearest = d.amplitude_mm * 0.5 * (1 + math.cos(math.pi * dist / d.size))
                assert extreme >= nearest - 1e-12
        if bumps:
            assert truth["height_mm"] == round(max(
                float(d.field((ref.MAP_PX, ref.MAP_PX)).max()) for d in bumps
            ), 5)  # fmt: skip


# ------------------------------------------------------------------ a scripted SUT


class Scripted:
    def __init__(self, answers: Sequence[Any]) -> None:
        self.answers = list(answers)
        self.seen: list[Any] = []

    def describe(self) -> dict[str, Any]:
        return {"adapter": "scripted"}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out = []
        for s in samples:
            self.seen.append(s.data)
            a = self.answers[s.index]
            if isinstance(a, Exception):
                out.append(SampleOutput(s.index, None, f"crashed: {a}", 0.0))
            else:
                out.append(SampleOutput(s.index, a, None, 0.0))
        return out

    def close(self) -> None:
        pass


def answer(defective: bool, *types: str, **dims: float) -> str:
    return json.dumps(
        {"defective": defective, "defects": [{"type": t} for t in types], "dimensions": dims}
    )


def lab_set(tmp: Path) -> Path:
    lines = [
        {"id": "g0", "height_map": "g0.npy", "defects": []},
        {"id": "g1", "height_map": "g1.npy", "defects": []},
        {"id": "g2", "height_map": "g2.npy", "defects": []},
        {"id": "d0", "height_map": "d0.npy", "defects": [{"type": "dent"}],
         "dimensions": {"depth_mm": 0.05}},
        {"id": "d1", "height_map": "d1.npy", "defects": [{"type": "dent"}, {"type": "bump"}],
         "dimensions": {"depth_mm": 0.1, "height_mm": 0.04}},
        {"id": "d2", "height_map": "d2.npy", "defects": [{"type": "scratch"}],
         "dimensions": {"depth_mm": 0.03}},
        {"id": "d3", "height_map": "d3.npy", "defects": [{"type": "bump"}]},
        {"id": "d4", "height_map": "d4.npy", "defects": [{"type": "scratch"}]},
    ]  # fmt: skip
    return write_set(tmp / "lab", lines)


def test_rates_recall_and_depth_error_against_hand_counts(tmp_path: Path) -> None:
    answers = [
        answer(False),
        answer(True, "bump"),  # false alarm
        "not json",  # malformed: an alarm on a good map
        answer(True, "dent", depth_mm=0.055),  # within 0.01 mm
        answer(True, "dent", depth_mm=0.13, height_mm=0.04),  # bump not named; depth off 0.03
        answer(True, "dent"),  # scratch not named; its depth not answered
        answer(False),  # miss
        ValueError("boom"),  # failed: a miss
    ]
    sut = Scripted(answers)
    failures, result, root = run(
        Inspect3dArgs(), tmp_path, {"inspection3d": lab_set(tmp_path)}, sut
    )
    got = by_id(result)
    assert failures and "1 failed and 1 malformed answers of 8" in failures[0]
    # the SUT saw staged copies only, never the lab's folder
    assert all(
        "/lab/" not in str(p) and Path(str(p)).name == f"{k:06d}.npy"
        for k, p in enumerate(sut.seen)
    )
    assert got["miss_rate"].value == pytest.approx(100 * 2 / 5)
    assert got["miss_rate"].ci is not None
    assert got["miss_rate"].ci.high == pytest.approx(cp_upper_pct(2, 5))
    assert got["false_alarm_rate"].value == pytest.approx(100 * 2 / 3)
    assert got["false_alarm_rate"].ci is not None
    assert got["false_alarm_rate"].ci.high == pytest.approx(cp_upper_pct(2, 3))
    assert got["recall_dent"].value == 100.0  # d0, d1
    assert got["recall_bump"].value == 0.0  # d1, d3
    assert got["recall_scratch"].value == 0.0  # d2 answered dent, d4 failed
    assert got["recall_dent"].ci is not None
    assert got["recall_dent"].ci.low == pytest.approx(cp_lower_pct(2, 2))
    # true: d0 depth, d1 depth + height, d2 depth = 4 pairs; within: d0, d1 height
    assert got["depth_within_tolerance"].value == pytest.approx(50.0)
    assert got["depth_within_tolerance"].ci is not None
    assert got["depth_within_tolerance"].ci.low == pytest.approx(cp_lower_pct(2, 4))
    assert got["depth_mae_mm"].value == pytest.approx((0.005 + 0.03 + 0.0) / 3)
    assert got["depth_max_error_mm"].value == pytest.approx(0.03)
    # the largest error is a sample statistic: not exact, no bound (INCONCLUSIVE at best)
    assert not got["depth_max_error_mm"].exact and got["depth_max_error_mm"].ci is None
    assert not any(m.invalid_reason for m in result.measurements)
    assert (root / "set" / "manifest.jsonl").read_bytes() == (
        tmp_path / "lab/set.jsonl"
    ).read_bytes()
    assert not (root / "set" / "maps").exists()  # a lab's maps: digests only


def test_score_refuses_an_edited_manifest_copy(tmp_path: Path) -> None:
    args = Inspect3dArgs()
    _, _, root = run(
        args, tmp_path, {"inspection3d": lab_set(tmp_path)}, Scripted([answer(False)] * 8)
    )
    copy = root / "set" / "manifest.jsonl"
    copy.write_bytes(copy.read_bytes().replace(b'"defects": []', b'"defects": [ ]', 1))
    with pytest.raises(ValueError, match="sha256"):
        Inspect3dProbe().score(
            EvidenceReader(root), score_context(args, {"inspection3d": Path("given")})
        )


# ------------------------------------------------------------------ the dev set


def test_the_reference_detector_on_the_dev_set(tmp_path: Path) -> None:
    args = Inspect3dArgs(dev_good=15, dev_defective=15)
    failures, result, root = run(args, tmp_path)
    got = by_id(result)
    assert failures == []
    # independent check: the maps in the evidence, detected again here, counted here
    manifest = root / "set" / "manifest.jsonl"
    items = read_height_manifest(manifest, VOCABULARY)
    detector = ref.HeightMapDetector()
    answers = [detector.detect(np.load(i.map)) for i in items]
    missed = sum(not a["defective"] for i, a in zip(items, answers, strict=True) if i.defective)
    alarms = sum(a["defective"] for i, a in zip(items, answers, strict=True) if not i.defective)
    assert got["miss_rate"].value == pytest.approx(100 * missed / 15)
    assert got["false_alarm_rate"].value == pytest.approx(100 * alarms / 15)
    assert got["miss_rate"].n == 15
    pairs = [
        (a, k, v) for i, a in zip(items, answers, strict=True) for k, v in i.dimensions.items()
    ]
    within = sum(abs(a.get("dimensions", {}).get(k, math.inf) - v) <= 0.01 for a, k, v in pairs)
    assert got["depth_within_tolerance"].value == pytest.approx(100 * within / len(pairs))
    assert got["depth_within_tolerance"].value >= 90
    for m in result.measurements:
        assert "harness dev set" in m.invalid_reason
    # a byte copy of the dev manifest passed as the lab's set is still the dev set
    again = tmp_path / "again"
    shutil.copytree(root / "set", again)
    _, copied, _ = run(args, tmp_path / "b", {"inspection3d": again / "manifest.jsonl"})
    assert all("harness dev set" in m.invalid_reason for m in copied.measurements)


# ------------------------------------------------------------------ the suite and the CLI


def test_the_suite_declares_the_3d_task_and_its_units() -> None:
    loaded = load(SUITE, quick=False)
    indicators = {i.id: i for i in loaded.suite.indicators}
    assert not any(i.pending for i in indicators.values())
    assert "inspection_3d" not in indicators
    assert indicators["inspection_3d_miss_rate"].metric == "inspect3d.miss_rate"
    assert indicators["inspection_3d_depth"].metric == "inspect3d.depth_within_tolerance"
    spread = indicators["measurement_spread"]
    assert (spread.metric, spread.unit, spread.target) == ("detect.dimension_spread_mm", "mm", 0.02)
    throughput = indicators["throughput"]
    assert throughput.unit == "images/s"
    # LoadGen reports samples/s: the judge converts (one sample is one image)
    measured = Measurement(
        id="throughput", value=25.0, unit="samples/s", n=5, repeats=5, method="m",
        exact="test",
    )  # fmt: skip
    verdict = judge(throughput, measured, None, None)
    assert verdict.status == "PASS" and verdict.value == 25.0 and verdict.unit == "images/s"
    # the spread in mm: judged on its order-statistic bound, never as an exact figure
    bound = Interval(low=None, high=0.015, confidence=0.95, method="order statistic")
    spread_m = Measurement(
        id="dimension_spread_mm", value=0.03, unit="mm", n=80, repeats=3, method="m", ci=bound,
    )  # fmt: skip
    assert judge(spread, spread_m, None, None).status == "FAIL"
    assert judge(spread, spread_m.model_copy(update={"value": 0.01}), None, None).status == "PASS"
    no_bound = spread_m.model_copy(
        update={"value": 0.01, "ci": bound.model_copy(update={"high": None, "need": "need 59"})}
    )
    assert judge(spread, no_bound, None, None).status == "INCONCLUSIVE"


def test_the_3d_task_runs_verifies_and_audits_through_the_cli(tmp_path: Path) -> None:
    config = tmp_path / "xdg"
    config.mkdir()
    run_dir = tmp_path / "run"
    with isolated_env(config):
        result = run_cli("run", TINY, "--out", run_dir)
        assert result.code == 0, result.stdout + result.stderr
        assert run_cli("verify", run_dir).code == 0
        audit = run_cli("audit", run_dir)
        assert audit.code == 0, audit.stdout + audit.stderr
    statement = json.loads((run_dir / "statement.json").read_text())
    verdicts = {v["indicator"]: v for v in statement["predicate"]["verdicts"]}
    for name in (
        "inspection_3d_miss_rate",
        "inspection_3d_false_alarm_rate",
        "inspection_3d_depth",
    ):
        assert verdicts[name]["status"] == "INCONCLUSIVE", verdicts[name]
        assert "harness dev set" in verdicts[name]["reason"]
    sut = json.loads((run_dir / "evidence/tasks/inspect3d/sut.json").read_text())
    assert sut["reference"] is True


def test_a_bad_height_map_is_refused_before_the_run_writes_anything(tmp_path: Path) -> None:
    bad = np.zeros((8, 8))
    bad[3, 4] = np.nan
    (tmp_path / "m.npy").write_bytes(npy(bad))
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a", "height_map": "m.npy", "defects": []}\n', encoding="utf-8")
    config = tmp_path / "xdg"
    config.mkdir()
    with isolated_env(config):
        result = run_cli("run", TINY, "--dataset", f"inspection3d={path}", "--out", tmp_path / "r")
    assert result.code == 2
    assert_one_line_error(result, "s.jsonl", "line 1: height_map", "NaN")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------ hostile answers and sets


def test_naming_every_type_shows_in_the_3d_precision(tmp_path: Path) -> None:
    every = answer(True, *ref.DEFECT_TYPES)
    _, result, _ = run(
        Inspect3dArgs(), tmp_path, {"inspection3d": lab_set(tmp_path)}, Scripted([every] * 8)
    )
    got = by_id(result)
    assert got["recall_dent"].value == 100.0
    # 8 maps name dent, 2 hold one (d0, d1); bump: d1, d3; scratch: d2, d4
    for kind in ("dent", "bump", "scratch"):
        assert got[f"precision_{kind}"].value == pytest.approx(100 * 2 / 8)
        assert got[f"precision_{kind}"].ci is not None
        assert got[f"precision_{kind}"].ci.low == pytest.approx(cp_lower_pct(2, 8))


@pytest.mark.parametrize("how", ["same path", "byte copy", "same heights"])
def test_one_height_map_listed_twice_is_refused(tmp_path: Path, how: str) -> None:
    lines: list[dict[str, Any]] = [
        {"id": f"m{k}", "height_map": f"m{k}.npy", "defects": []} for k in range(3)
    ]
    extra = {"id": "x", "height_map": "m1.npy", "defects": []}
    lines.append(extra)
    if how != "same path":
        extra["height_map"] = "x.npy"
    path = write_set(tmp_path, lines)
    heights = np.load(tmp_path / "m1.npy")
    if how == "byte copy":
        (tmp_path / "x.npy").write_bytes((tmp_path / "m1.npy").read_bytes())
    elif how == "same heights":  # float64 of the float32 map: other bytes, the same mm
        (tmp_path / "x.npy").write_bytes(npy(heights.astype(np.float64)))
    with pytest.raises(BadInput) as error:
        read_height_manifest(path, VOCABULARY)
    text = str(error.value)
    assert "line 4: height_map" in text and "line 2" in text, text


def test_dev_maps_passed_back_as_the_lab_set_never_decide(tmp_path: Path) -> None:
    args = Inspect3dArgs(dev_good=4, dev_defective=4)
    _, _, root = run(args, tmp_path / "dev")
    for wide in (False, True):
        copy = tmp_path / f"copy{wide}"
        shutil.copytree(root / "set", copy)
        manifest = copy / "manifest.jsonl"
        manifest.write_bytes(manifest.read_bytes() + b"\n")
        if wide:  # re-saved as float64: other bytes, the same heights
            for m in (copy / "maps").iterdir():
                m.write_bytes(npy(np.load(m).astype(np.float64)))
        _, copied, _ = run(args, tmp_path / f"r{wide}", {"inspection3d": manifest})
        assert copied.measurements
        for m in copied.measurements:
            assert m.invalid_reason.startswith("dev data: 8 of the set's 8 height maps"), m
        assert ("heights" if wide else "bytes") in copied.measurements[0].invalid_reason


# ------------------------------------------------------------------ the auditor's findings


def test_3d_dev_ness_comes_from_the_run_not_the_evidence(tmp_path: Path) -> None:
    """Clearing `dev_set` / `generated` in the evidence of a dev-set run: refused, the run
    was given no --dataset inspection3d (the signed header)."""
    args = Inspect3dArgs(dev_good=2, dev_defective=2)
    _, result, root = run(args, tmp_path)
    assert all("harness dev set" in m.invalid_reason for m in result.measurements)
    path = root / "items.json"
    items = json.loads(path.read_text())
    items["source"].update({"dev_set": None, "generated": False, "path": "/lab/m.jsonl"})
    path.write_text(json.dumps(items))
    with pytest.raises(ValueError, match="given no --dataset inspection3d"):
        Inspect3dProbe().score(EvidenceReader(root), score_context(args))


@pytest.mark.parametrize("edit", ["flag", "bytes"])
def test_a_3d_dev_sets_maps_are_always_checked(tmp_path: Path, edit: str) -> None:
    args = Inspect3dArgs(dev_good=2, dev_defective=2)
    _, _, root = run(args, tmp_path)
    path = root / "items.json"
    items = json.loads(path.read_text())
    if edit == "flag":
        items["source"]["maps_copied"] = False
        path.write_text(json.dumps(items))
        match = "always copied"
    else:
        copy = root / "set" / items["source"]["maps"][1]["height_map"]
        copy.write_bytes(copy.read_bytes() + b"\0")
        match = "sha256 differs"
    with pytest.raises(ValueError, match=match):
        Inspect3dProbe().score(EvidenceReader(root), score_context(args))
