"""D07 3D imaging precision (`face.depth`): the 16-bit PNG and .npy readers, bad frames
refused with one line naming file and field, the RMS of frames with known noise against
numpy's lstsq on their true inliers, the distance window, the order-statistic bounds of the
median over frames, the generated dev frames (never a verdict), and score() re-reading the
frame copies in the evidence."""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from probehelpers import collect_and_score
from probehelpers import score_context as probe_score_context

from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import ScoreContext, ScoreResult
from harness.probes.biometrics.depth import DepthArgs, DepthProbe
from harness.probes.biometrics.depthmaps import decode_frame, read_depth_set, read_frame

H, W = 96, 128  # 12,288 pixels: above min_valid_pixels (10,000) with a hole
SIGMA = 0.7


def run(tmp: Path, datasets: dict[str, Path] | None = None, **args: Any) -> ScoreResult:
    probe = DepthProbe()
    parsed = DepthArgs(**args)
    root = tmp / "evidence"
    return collect_and_score(probe, parsed, root, datasets, task_id="depth")[1]


def score_context(args: DepthArgs, datasets: dict[str, Path] | None = None) -> ScoreContext:
    return probe_score_context(args, datasets, task_id="depth")


def plane(seed: int, distance: float = 1000.0) -> tuple[np.ndarray, np.ndarray]:
    """A tilted plane with Gaussian noise (mm) and flying pixels, and the flying mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    z = distance + 0.2 * (xx - (W - 1) / 2) - 0.1 * (yy - (H - 1) / 2)
    z += rng.normal(0.0, SIGMA, (H, W))
    flying = rng.random((H, W)) < 0.02
    z[flying] += 200.0
    return z, flying


def png16(path: Path, units: np.ndarray) -> Path:
    Image.fromarray(units.astype(np.uint16)).save(path, format="PNG")
    return path


def lstsq_rms(z: np.ndarray, keep: np.ndarray) -> float:
    """RMS about numpy's least-squares plane through the n pixels in `keep`, with the
    degrees-of-freedom correction of a 3-parameter fit: sqrt(sum r^2 / (n - 3))."""
    rows, cols = np.nonzero(keep)
    design = np.column_stack([cols, rows, np.ones(cols.size)]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, z[keep], rcond=None)
    return float(np.sqrt(np.sum((z[keep] - design @ coef) ** 2) / (cols.size - 3)))


def lab_set(tmp: Path, frames: int = 5, distance: float = 1000.0) -> tuple[Path, list[float]]:
    """A list of `frames` frames (PNG in 0.1 mm units, every other one .npy in mm) with a
    hole each, and the RMS of each about lstsq on its true inliers."""
    rows, expected = [], []
    for k in range(frames):
        z, flying = plane(k, distance)
        valid = np.ones((H, W), dtype=bool)
        valid[5:9, 10:20] = False  # a hole
        if k % 2 == 0:
            units = np.where(valid, np.rint(z / 0.1), 0)
            png16(tmp / f"f{k}.png", units)
            rows.append({"frame": f"f{k}.png", "distance_mm": distance, "depth_scale_mm": 0.1})
            z = units * 0.1
        else:
            np.save(tmp / f"f{k}.npy", np.where(valid, z, np.nan))
            rows.append({"frame": f"f{k}.npy", "distance_mm": distance})
        expected.append(lstsq_rms(z, valid & ~flying))
    path = tmp / "frames.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path, expected


# ------------------------------------------------------------------ readers


def test_the_png_reader_scales_depth_units_and_masks_zeros(tmp_path: Path) -> None:
    units = np.array([[0, 10000], [10005, 65535]])
    data = png16(tmp_path / "d.png", units).read_bytes()
    depth, valid = decode_frame(data, ".png", "d.png", 0.1)
    assert valid.tolist() == [[False, True], [True, True]]
    assert depth[valid].tolist() == pytest.approx([1000.0, 1000.5, 6553.5])


def test_the_npy_reader_masks_zeros_and_nans(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.array([[0.0, 999.5], [np.nan, 1001.25]], dtype=np.float32))
    depth, valid = decode_frame((tmp_path / "d.npy").read_bytes(), ".npy", "d.npy", 1.0)
    assert valid.tolist() == [[False, True], [False, True]]
    assert depth[valid].tolist() == [999.5, 1001.25]
    np.save(tmp_path / "i.npy", np.array([[1000, 0], [1001, 1002]], dtype=np.uint16))
    depth, valid = decode_frame((tmp_path / "i.npy").read_bytes(), ".npy", "i.npy", 1.0)
    assert int(valid.sum()) == 3 and depth[1, 1] == 1002.0


def _bad_png_8bit(tmp: Path) -> Path:
    Image.fromarray(np.full((8, 8), 100, dtype=np.uint8)).save(tmp / "bad.png")
    return tmp / "bad.png"


def _bad_png_rgb(tmp: Path) -> Path:
    Image.fromarray(np.full((8, 8, 3), 100, dtype=np.uint8)).save(tmp / "bad.png")
    return tmp / "bad.png"


def _bad_npy(array: np.ndarray) -> Any:
    def make(tmp: Path) -> Path:
        np.save(tmp / "bad.npy", array)
        return tmp / "bad.npy"

    return make


def _zeros_png(tmp: Path) -> Path:
    return png16(tmp / "bad.png", np.zeros((8, 8)))


BAD_FRAMES = {
    "8-bit png": (_bad_png_8bit, ["bad.png", "mode", "8-bit L image", "16-bit"]),
    "rgb png": (_bad_png_rgb, ["bad.png", "mode", "8-bit RGB"]),
    "no valid pixel": (_zeros_png, ["bad.png", "frame", "no valid pixel"]),
    "3-d npy": (_bad_npy(np.ones((4, 4, 3))), ["bad.npy", "shape", "2-D"]),
    "1-d npy": (_bad_npy(np.ones(16)), ["bad.npy", "shape"]),
    "bool npy": (_bad_npy(np.ones((4, 4), dtype=bool)), ["bad.npy", "dtype", "bool"]),
    "inf npy": (
        _bad_npy(np.array([[1.0, 2.0], [np.inf, 3.0]])),
        ["bad.npy", "frame", "infinite depth at pixel (row 1, column 0)"],
    ),
    "negative npy": (_bad_npy(np.array([[1.0, -2.0], [1.0, 3.0]])), ["bad.npy", "negative"]),
    "nan npy": (_bad_npy(np.full((4, 4), np.nan)), ["bad.npy", "no valid pixel"]),
    "three pixels": (
        _bad_npy(np.array([[1.0, 2.0], [3.0, 0.0]])),
        ["bad.npy", "3 valid pixels", "at least 4"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_frames_are_refused_naming_file_field_and_line(tmp_path: Path, case: str) -> None:
    make, needles = BAD_FRAMES[case]
    frame = make(tmp_path)
    listing = tmp_path / "frames.jsonl"
    listing.write_text(json.dumps({"frame": frame.name}) + "\n", encoding="utf-8")
    with pytest.raises(BadInput) as caught:
        for row in read_depth_set(listing):
            read_frame(row)
    message = str(caught.value)
    assert "\n" not in message
    for needle in [*needles, f"line 1 of {listing}"]:
        assert needle in message, message


@pytest.mark.parametrize(
    ("line", "needles"),
    [
        ({"frame": "gone.png"}, ["line 1: frame", "'gone.png' not found"]),
        ({"frame": "f0.jpg"}, ["line 1: frame", ".png or .npy"]),
        ({"frame": "f0.png", "depth_scale_mm": 0}, ["line 1: depth_scale_mm", "> 0"]),
        ({"frame": "f0.png", "distance_mm": math.inf}, ["line 1", "not JSON"]),
        ({"frame": "f0.png", "distance_mm": "1m"}, ["line 1: distance_mm", "finite number"]),
        ({"frame": "f0.png", "roi": [0, 0, 10]}, ["line 1: roi", "4 integers"]),
        ({"frame": "f0.png", "roi": [5, 0, 5, 10]}, ["line 1: roi", "empty"]),
        ({"frame": "f0.png", "zoom": 2}, ["line 1: zoom", "unknown field"]),
    ],
)
def test_bad_list_lines_are_refused(
    tmp_path: Path, line: dict[str, Any], needles: list[str]
) -> None:
    png16(tmp_path / "f0.png", np.full((8, 8), 10000))
    listing = tmp_path / "frames.jsonl"
    listing.write_text(json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(BadInput) as caught:
        read_depth_set(listing)
    for needle in [str(listing), *needles]:
        assert needle in str(caught.value), str(caught.value)


def test_a_duplicate_frame_and_a_roi_outside_the_frame_are_refused(tmp_path: Path) -> None:
    png16(tmp_path / "f0.png", np.full((8, 8), 10000))
    listing = tmp_path / "frames.jsonl"
    listing.write_text('{"frame": "f0.png"}\n{"frame": "f0.png"}\n', encoding="utf-8")
    with pytest.raises(
        BadInput, match=re.escape("line 2: frame: duplicate 'f0.png' (first on line 1)")
    ):
        read_depth_set(listing)
    listing.write_text('{"frame": "f0.png", "roi": [0, 0, 9, 8]}\n', encoding="utf-8")
    with pytest.raises(BadInput, match=r"f0\.png: roi: .*outside the 8x8 frame"):
        for row in read_depth_set(listing):
            read_frame(row)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match=re.escape("no .png or .npy depth frame")):
        read_depth_set(empty)


# ------------------------------------------------------------------ the probe


def test_lab_frames_give_the_rms_of_lstsq_on_their_true_inliers(tmp_path: Path) -> None:
    path, expected = lab_set(tmp_path)
    result = run(tmp_path, {"depth": path})
    got = {m.id: m for m in result.measurements}
    rms = got["rms_error"]
    assert not rms.invalid_reason
    per_frame = [f["rms_mm"] for f in rms.details["per_frame"]]
    # each frame's RMS equals lstsq's on its true inliers (a genuine pixel beyond 4 sigma
    # may also be dropped: at most a small relative change)
    assert per_frame == pytest.approx(expected, rel=0.01)
    assert rms.value == pytest.approx(float(np.median(expected)), rel=0.01)
    # the RMS of noise SIGMA over about 3,000 pixels, 0.1 mm quantisation on the PNGs
    assert rms.value == pytest.approx(SIGMA, rel=0.05)
    # 5 frames at 95 %: the bounds on the median are the smallest and the largest
    assert rms.n == 5
    assert rms.ci is not None
    assert rms.ci.low == pytest.approx(min(expected), rel=0.01)
    assert rms.ci.high == pytest.approx(max(expected), rel=0.01)
    assert got["distance"].value == pytest.approx(1000.0, abs=0.1)
    # the holes are not pixels; the 2 % flying pixels are the outliers
    assert got["outlier_share"].value == pytest.approx(2.0, abs=0.8)
    assert "supplied by the lab with --dataset" in rms.method


def test_fewer_than_five_frames_give_no_bound(tmp_path: Path) -> None:
    path, _ = lab_set(tmp_path, frames=3)
    rms = {m.id: m for m in run(tmp_path, {"depth": path}).measurements}["rms_error"]
    assert rms.ci is not None and rms.ci.high is None
    assert "at least 5 frames" in rms.ci.need


def test_frames_outside_the_distance_window_are_left_out(tmp_path: Path) -> None:
    near, _ = lab_set(tmp_path, frames=2, distance=600.0)
    result = run(tmp_path, {"depth": near})
    assert not result.measurements
    assert {u.id for u in result.unmeasured} == {"rms_error", "distance", "outlier_share"}
    assert "within 1000 +- 50 mm" in result.unmeasured[0].reason
    assert "600.0" in result.unmeasured[0].reason
    # the window follows the task's arguments
    rms = {m.id: m for m in run(tmp_path / "b", {"depth": near}, distance_mm=600).measurements}
    assert rms["rms_error"].n == 2


def test_a_folder_of_frames_is_read_in_name_order(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(2):
        z, _ = plane(k)
        np.save(folder / f"{k:02d}.npy", z)
    (folder / "notes.txt").write_text("ignored")
    result = run(tmp_path, {"depth": folder})
    rms = {m.id: m for m in result.measurements}["rms_error"]
    assert [f["frame"] for f in rms.details["per_frame"]] == [
        str(folder / "00.npy"),
        str(folder / "01.npy"),
    ]


def test_the_generated_dev_frames_never_decide(tmp_path: Path) -> None:
    args = {"dev_frames": 5, "dev_width": 96, "dev_height": 64, "dev_noise_mm": 0.5}
    result = run(tmp_path, **args)
    got = {m.id: m for m in result.measurements}
    rms = got["rms_error"]
    assert rms.invalid_reason.startswith("dev data")
    # Gaussian noise 0.5 mm plus the 0.1 mm quantisation of the PNGs (0.1 / sqrt(12))
    assert rms.value == pytest.approx(math.hypot(0.5, 0.1 / math.sqrt(12)), rel=0.05)
    assert got["distance"].value == pytest.approx(1000.0, abs=0.2)
    frames = sorted((tmp_path / "evidence" / "frames").iterdir())
    assert len(frames) == 5
    with Image.open(frames[0]) as image:
        assert image.mode == "I;16"
    # the same frames given back with --dataset are still dev data
    listing = tmp_path / "evidence" / "input.jsonl"
    again = run(tmp_path / "again", {"depth": listing}, **args)
    assert "equal the generated dev frames" in again.measurements[0].invalid_reason


def test_score_checks_the_frame_copies_in_the_evidence(tmp_path: Path) -> None:
    path, _ = lab_set(tmp_path, frames=1)
    run(tmp_path, {"depth": path})
    copy = tmp_path / "evidence" / "frames" / "000000.png"
    copy.write_bytes(copy.read_bytes() + b"x")
    with pytest.raises(ValueError, match="sha256 differs"):
        DepthProbe().score(
            EvidenceReader(tmp_path / "evidence"),
            score_context(DepthArgs(), {"depth": path}),
        )


def test_png_bytes_of_the_dev_frames_are_deterministic(tmp_path: Path) -> None:
    from harness.probes.biometrics.depth import dev_frames

    args = DepthArgs(dev_frames=2, dev_width=32, dev_height=16)
    first, second = dev_frames(args), dev_frames(args)
    assert first == second
    with Image.open(io.BytesIO(first[0])) as image:
        assert image.size == (32, 16)


# ------------------------------------------------------------------ what a verdict needs


def _write_list(tmp: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp / "frames.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_coarsely_quantised_frames_keep_their_noise_and_cannot_decide(tmp_path: Path) -> None:
    # 3 mm noise written in 10 mm units (int32 .npy, depth_scale_mm 10): without the
    # scale floor the RMS was 0 and PASSED; now it is the noise, and the figure is invalid
    rows = []
    for k in range(5):
        rng = np.random.default_rng(100 + k)
        z = 1000.0 + rng.normal(0.0, 3.0, (H, W))
        np.save(tmp_path / f"q{k}.npy", np.rint(z / 10.0).astype(np.int32))
        rows.append({"frame": f"q{k}.npy", "distance_mm": 1000, "depth_scale_mm": 10})
    rms = run(tmp_path, {"depth": _write_list(tmp_path, rows)}).measurements[0]
    assert rms.id == "rms_error"
    assert rms.value > 2.0  # 3 mm noise rounded to 10 mm steps: about 3.1 mm
    assert "quantised in units coarser than 0.25 mm" in rms.invalid_reason
    assert "q0.npy (10 mm)" in rms.invalid_reason
    assert all(f["quantisation_step_mm"] == 10 for f in rms.details["per_frame"])


def test_the_lab_frames_in_fine_units_are_not_flagged_as_coarse(tmp_path: Path) -> None:
    path, _ = lab_set(tmp_path, frames=2)
    rms = run(tmp_path, {"depth": path}).measurements[0]
    steps = [f["quantisation_step_mm"] for f in rms.details["per_frame"]]
    assert steps == [0.1, 0.0]  # the PNG in 0.1 mm units, the float .npy unquantised
    assert "coarser" not in rms.invalid_reason


@pytest.mark.parametrize("name", ["./f0.npy", ".//f0.npy", "././f0.npy", "../set/f0.npy"])
def test_one_frame_under_another_path_is_refused(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    np.save(folder / "f0.npy", plane(0)[0])
    listing = _write_list(folder, [{"frame": "f0.npy"}, {"frame": name}])
    with pytest.raises(BadInput) as caught:
        read_depth_set(listing)
    message = str(caught.value)
    assert "line 2: frame" in message and "same file as line 1 ('f0.npy')" in message, message


def test_the_same_bytes_under_two_names_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "f0.npy", plane(0)[0])
    (tmp_path / "copy.npy").write_bytes((tmp_path / "f0.npy").read_bytes())
    listing = _write_list(tmp_path, [{"frame": "f0.npy"}, {"frame": "copy.npy"}])
    with pytest.raises(BadInput) as caught:
        read_depth_set(listing)
    message = str(caught.value)
    assert "line 2: frame" in message and "same bytes" in message, message
    assert "line 1 ('f0.npy')" in message and "'copy.npy'" in message
    # a folder holding one frame twice, too
    folder = tmp_path / "folder"
    folder.mkdir()
    for n in ("a.npy", "b.npy"):
        (folder / n).write_bytes((tmp_path / "f0.npy").read_bytes())
    with pytest.raises(BadInput, match="same bytes"):
        read_depth_set(folder)


def test_frames_with_many_outliers_cannot_decide(tmp_path: Path) -> None:
    rows = []
    for k in range(5):
        z, _ = plane(k)
        rng = np.random.default_rng(200 + k)
        if k == 3:  # 12 % flying pixels in one frame
            z[rng.random(z.shape) < 0.10] += 150.0
        np.save(tmp_path / f"o{k}.npy", z)
        rows.append({"frame": f"o{k}.npy", "distance_mm": 1000})
    rms = run(tmp_path, {"depth": _write_list(tmp_path, rows)}).measurements[0]
    assert "more than 5 % of the valid pixels rejected as outliers" in rms.invalid_reason
    assert "o3.npy" in rms.invalid_reason and "o2.npy" not in rms.invalid_reason
    # the threshold is an argument
    again = run(tmp_path / "b", {"depth": tmp_path / "frames.jsonl"}, max_outlier_pct=20)
    assert "outliers" not in again.measurements[0].invalid_reason


def test_a_tiny_roi_cannot_decide(tmp_path: Path) -> None:
    rows = []
    for k in range(5):
        np.save(tmp_path / f"r{k}.npy", plane(k)[0])
        rows.append({"frame": f"r{k}.npy", "roi": [60, 40, 62, 42]})  # 2 x 2 pixels
    rms = run(tmp_path, {"depth": _write_list(tmp_path, rows)}).measurements[0]
    assert "fewer than 10000 valid pixels in the roi" in rms.invalid_reason
    assert "r0.npy (4)" in rms.invalid_reason
    # the RMS of 4 pixels about a fitted plane has one degree of freedom: it is reported
    assert rms.details["per_frame"][0]["valid_pixels"] == 4


def test_a_declared_distance_the_frame_contradicts_makes_the_figure_invalid(
    tmp_path: Path,
) -> None:
    path, _ = lab_set(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["distance_mm"] = 900  # the frame itself lies at 1000 mm
    lines[0] = json.dumps(first)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rms = run(tmp_path, {"depth": path}).measurements[0]
    assert rms.n == 5  # selected by its fitted distance, as before
    assert "declared distance_mm and the fitted distance differ by more than 50" in (
        rms.invalid_reason
    )
    assert "f0.png (declared 900, fitted 1000.0 mm)" in rms.invalid_reason


# ------------------------------------------------------------------ edited evidence
# (what an auditor did: edit the evidence, re-sign; score() must refuse or flag it)


def _edit_frames(evidence: Path, edit: Any) -> None:
    record = json.loads((evidence / "frames.json").read_text())
    edit(record)
    (evidence / "frames.json").write_text(json.dumps(record))


DEV_SMALL = {"dev_frames": 5, "dev_width": 96, "dev_height": 64}


def test_dev_ness_comes_from_the_runs_dataset_names_not_from_frames_json(
    tmp_path: Path,
) -> None:
    run(tmp_path / "dev", **DEV_SMALL)
    evidence = tmp_path / "dev" / "evidence"
    _edit_frames(evidence, lambda r: r["source"].update(kind="list", path="lab.jsonl"))
    with pytest.raises(ValueError) as error:
        DepthProbe().score(EvidenceReader(evidence), score_context(DepthArgs(**DEV_SMALL)))
    assert "frames.json says 'list', but the run was given no depth frames" in str(error.value)
    path, _ = lab_set(tmp_path, frames=1)
    run(tmp_path / "lab", {"depth": path})
    evidence = tmp_path / "lab" / "evidence"
    _edit_frames(evidence, lambda r: r["source"].update(kind="generated"))
    with pytest.raises(ValueError) as error:
        DepthProbe().score(EvidenceReader(evidence), score_context(DepthArgs(), {"depth": path}))
    assert "says 'generated', but the run was given --dataset depth" in str(error.value)


def test_dev_frames_given_back_are_found_by_their_regenerated_digests(tmp_path: Path) -> None:
    run(tmp_path / "dev", **DEV_SMALL)
    listing = tmp_path / "dev" / "evidence" / "input.jsonl"
    args = DepthArgs(**DEV_SMALL)
    again = run(tmp_path / "again", {"depth": listing}, **DEV_SMALL)
    assert "5 frames given with --dataset equal the generated dev frames" in (
        again.measurements[0].invalid_reason
    )
    evidence = tmp_path / "again" / "evidence"
    _edit_frames(evidence, lambda r: [f.update(generated_dev_frame=False) for f in r["frames"]])
    with pytest.raises(ValueError) as error:
        DepthProbe().score(EvidenceReader(evidence), score_context(args, {"depth": listing}))
    assert "marks 0 frames as generated dev frames, their digests show 5" in str(error.value)


def test_a_generated_frame_edited_with_its_digest_is_refused(tmp_path: Path) -> None:
    run(tmp_path, **DEV_SMALL)
    evidence = tmp_path / "evidence"
    frame = evidence / "frames" / "000000.png"
    units = np.full((64, 96), 10_000, dtype=np.uint16)  # a perfect plane at 1000 mm
    Image.fromarray(units).save(frame)
    digest = hashlib.sha256(frame.read_bytes()).hexdigest()
    _edit_frames(evidence, lambda r: r["frames"][0].update(sha256=digest))
    with pytest.raises(ValueError) as error:
        DepthProbe().score(EvidenceReader(evidence), score_context(DepthArgs(**DEV_SMALL)))
    assert "not the ones these arguments generate" in str(error.value)


def test_the_step_comes_from_the_data_not_the_declared_units() -> None:
    """A camera that rounds to 10 mm, written as 16-bit values in 0.1 mm units: the values
    are multiples of 100 units, so the step is 10 mm (not the 0.1 mm the scale declares)."""
    from harness.probes.biometrics.depthmaps import quantisation_step

    rng = np.random.default_rng(4)
    true_mm = 1000.0 + rng.normal(0.0, 2.3, 10_000)
    units = (np.rint(true_mm / 10.0) * 100).astype(np.uint16)  # 0.1 mm units, 10 mm steps
    assert quantisation_step(units.astype(np.float64), 0.1, integer=True) == pytest.approx(10.0)
    fine = np.rint(true_mm / 0.1)  # a camera that really resolves 0.1 mm
    assert quantisation_step(fine, 0.1, integer=True) == pytest.approx(0.1)
    assert quantisation_step(true_mm, 1.0, integer=False) == 0.0  # continuous floats
    assert quantisation_step(np.full(10, 1000.0), 1.0, integer=True) == 0.0


def test_one_frame_copied_and_nudged_does_not_count_as_five(tmp_path: Path) -> None:
    """The hostile case: one noisy frame saved five times, one pixel nudged in each: the
    bytes differ, the frames do not."""
    folder = tmp_path / "near"
    folder.mkdir()
    rng = np.random.default_rng(9)
    _, xx = np.mgrid[0:96, 0:128]
    base = 1000.0 + 0.01 * xx + rng.normal(0.0, 0.3, xx.shape)
    rows = []
    for k in range(5):
        frame = base.copy()
        frame[k, k] += 1e-3
        np.save(folder / f"f{k}.npy", frame)
        rows.append({"frame": f"f{k}.npy", "distance_mm": 1000})
    listing = _write_list(folder, rows)
    rms = run(tmp_path, {"depth": listing}).measurements[0]
    assert "copied and nudged" in rms.invalid_reason


def test_independent_captures_are_not_taken_for_copies(tmp_path: Path) -> None:
    folder = tmp_path / "fresh"
    folder.mkdir()
    rng = np.random.default_rng(10)
    _, xx = np.mgrid[0:96, 0:128]
    rows = []
    for k in range(5):
        np.save(folder / f"f{k}.npy", 1000.0 + 0.01 * xx + rng.normal(0.0, 0.3, xx.shape))
        rows.append({"frame": f"f{k}.npy", "distance_mm": 1000})
    listing = _write_list(folder, rows)
    rms = run(tmp_path, {"depth": listing}).measurements[0]
    assert "copied" not in rms.invalid_reason
