"""The robust plane fit of harness.scoring.plane_fit against independent computations:
numpy's lstsq on the true inliers, hand-made tiny frames, and the RMS of known Gaussian
noise within a tolerance derived from its sampling spread."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.scoring.plane_fit import fit_depth_frame, fit_plane

H, W = 120, 160


def _frame(sigma: float, outliers: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A tilted plane at 1000 mm with Gaussian noise and flying pixels 50 to 300 mm off."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    z = 1000.0 + 0.21 * xx - 0.07 * yy + rng.normal(0.0, sigma, (H, W))
    flying = rng.random((H, W)) < outliers
    z[flying] += rng.choice([-1.0, 1.0], int(flying.sum())) * rng.uniform(
        50, 300, int(flying.sum())
    )
    return z, flying


def test_known_noise_rms_is_recovered_within_its_sampling_spread() -> None:
    sigma = 0.8
    z, _ = _frame(sigma, 0.0, seed=3)
    fit = fit_depth_frame(z, np.ones_like(z, dtype=bool))
    n = H * W
    # the sample RMS of n Gaussian residuals has a relative sd of about 1 / sqrt(2 n)
    # (0.46 % here); the 4-sigma cut biases it low by < 0.1 %: allow 5 sd plus that bias
    tolerance = 5.0 / math.sqrt(2 * n) + 0.001
    assert abs(fit.plane.rms_mm / sigma - 1.0) < tolerance
    assert fit.plane.a == pytest.approx(0.21, abs=1e-3)
    assert fit.plane.b == pytest.approx(-0.07, abs=1e-3)
    # the distance is the plane at the centre pixel ((W - 1) / 2, (H - 1) / 2)
    assert fit.distance_mm == pytest.approx(
        1000.0 + 0.21 * (W - 1) / 2 - 0.07 * (H - 1) / 2, abs=0.05
    )
    assert fit.plane.outlier_share < 0.001  # at most a few genuine pixels beyond 4 sigma


def test_outliers_are_rejected_and_the_plane_equals_lstsq_on_the_true_inliers() -> None:
    z, flying = _frame(0.5, 0.05, seed=5)
    fit = fit_plane(*np.nonzero(np.ones_like(z))[::-1], z.ravel(), seed=1)
    rows, cols = np.nonzero(~flying)
    design = np.column_stack([cols, rows, np.ones(cols.size)]).astype(np.float64)
    (a, b, c), *_ = np.linalg.lstsq(design, z[~flying], rcond=None)
    assert fit.a == pytest.approx(a, abs=2e-4)
    assert fit.b == pytest.approx(b, abs=2e-4)
    assert fit.c == pytest.approx(c, abs=0.02)
    residual = z[~flying] - design @ np.array([a, b, c])
    assert fit.rms_mm == pytest.approx(float(np.sqrt(np.mean(residual**2))), rel=0.003)
    # every flying pixel (>= 50 mm = 100 sigma off) is an outlier; few genuine ones are
    assert fit.valid - fit.inliers >= int(flying.sum())
    assert fit.outlier_share == pytest.approx(flying.mean(), abs=0.001)


def test_a_hand_made_flat_3x3_frame_with_one_pixel_behind() -> None:
    # eight pixels at 1000 mm, one 4 mm behind: only the plane z = 1000 leaves the 6th
    # smallest squared residual (h = 9 // 2 + 2) at 0, the ninth pixel its only outlier
    depth = np.full((3, 3), 1000.0)
    depth[2, 2] = 1004.0
    fit = fit_depth_frame(depth, np.ones((3, 3), dtype=bool))
    assert (fit.plane.a, fit.plane.b) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert fit.plane.c == pytest.approx(1000.0)
    assert fit.plane.rms_mm == pytest.approx(0.0, abs=1e-12)
    assert fit.plane.inliers == 8
    assert fit.plane.outlier_share == pytest.approx(1 / 9)
    assert fit.distance_mm == pytest.approx(1000.0)


def test_a_hand_made_3x3_tilted_frame_with_a_hole_and_a_flying_pixel() -> None:
    # z = 1000 + 2x + 3y; pixel (x=2, y=0) is a hole, the centre a flying pixel
    depth = np.array([[1000.0 + 2 * x + 3 * y for x in range(3)] for y in range(3)])
    depth[1, 1] += 500.0
    valid = np.ones((3, 3), dtype=bool)
    valid[0, 2] = False
    fit = fit_depth_frame(depth, valid)
    assert (fit.plane.a, fit.plane.b, fit.plane.c) == pytest.approx((2.0, 3.0, 1000.0))
    assert fit.plane.valid == 8 and fit.plane.inliers == 7
    assert fit.valid_share == pytest.approx(8 / 9)
    assert fit.distance_mm == pytest.approx(1005.0)  # the plane (not the pixel) at (1, 1)
    assert fit.plane.rms_mm == pytest.approx(0.0, abs=1e-9)


def test_the_roi_limits_the_fit_and_its_centre_is_the_distance() -> None:
    depth = np.full((10, 10), 800.0)
    depth[2:6, 3:9] = 1000.0  # the target inside the roi, a wall around it
    fit = fit_depth_frame(depth, np.ones((10, 10), dtype=bool), roi=(3, 2, 9, 6))
    assert fit.pixels == 24 and fit.plane.inliers == 24
    assert fit.distance_mm == pytest.approx(1000.0)


def test_the_fit_is_deterministic_for_a_seed() -> None:
    z, _ = _frame(1.0, 0.1, seed=9)
    x, y = np.meshgrid(np.arange(W), np.arange(H))
    first = fit_plane(x, y, z, seed=4)
    assert fit_plane(x, y, z, seed=4) == first


@pytest.mark.parametrize(
    ("x", "y", "z", "needle"),
    [
        ([0, 1, 2], [0, 1, 0], [1, 1, 1], "at least 4"),
        ([0, 1, 2, 3], [0, 1, 0, 1], [1, 1, math.nan, 1], "NaN"),
        ([0, 1, 2], [0, 1, 0, 1], [1, 1, 1, 1], "differ in length"),
    ],
)
def test_bad_points_are_refused(
    x: list[float], y: list[float], z: list[float], needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        fit_plane(np.array(x), np.array(y), np.array(z))


def test_a_roi_outside_the_frame_or_without_valid_pixels_is_refused() -> None:
    depth = np.full((4, 4), 1000.0)
    with pytest.raises(ValueError, match="does not lie inside"):
        fit_depth_frame(depth, np.ones((4, 4), dtype=bool), roi=(0, 0, 5, 4))
    with pytest.raises(ValueError, match="valid pixels"):
        fit_depth_frame(depth, np.zeros((4, 4), dtype=bool))


def test_quantised_depths_floor_the_scale_at_the_rounding_noise() -> None:
    # 3 mm Gaussian noise on a flat target written in 10 mm units: most residuals are
    # exactly 0 (the MAD is 0); without a floor the 4-sigma cut keeps only those (RMS 0)
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    z = np.rint((1000.0 + rng.normal(0.0, 3.0, (H, W))) / 10.0) * 10.0
    assert np.median(np.abs(z - np.median(z))) == 0.0
    unfloored = fit_plane(xx, yy, z)
    assert unfloored.rms_mm == pytest.approx(0.0, abs=1e-9)  # the hole this closes
    fit = fit_plane(xx, yy, z, quant_step=10.0)
    assert fit.sigma_mm == pytest.approx(10.0 / math.sqrt(12.0))
    # every pixel lies within 4 x 2.89 mm of the plane: the RMS is lstsq's over all of them
    design = np.column_stack([xx.ravel(), yy.ravel(), np.ones(H * W)])
    coef, *_ = np.linalg.lstsq(design, z.ravel(), rcond=None)
    residual = z.ravel() - design @ coef
    assert fit.inliers == H * W
    assert fit.rms_mm == pytest.approx(math.sqrt(np.sum(residual**2) / (H * W - 3)), rel=1e-6)
    assert fit.rms_mm > 2.0


def test_the_rms_carries_the_degrees_of_freedom_of_the_plane() -> None:
    # a 3x3 chequer of 0 and 0.1 mm about 1000 mm: lstsq's plane is flat at the mean
    # 1000 + 0.4 / 9; residuals -0.4/9 (5 pixels) and 0.5/9 (4 pixels); n - 3 = 6
    depth = 1000.0 + 0.1 * np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float64)
    fit = fit_depth_frame(depth, np.ones((3, 3), dtype=bool))
    assert fit.plane.inliers == 9
    expected = math.sqrt((5 * (0.4 / 9) ** 2 + 4 * (0.5 / 9) ** 2) / 6)
    assert fit.plane.rms_mm == pytest.approx(expected, rel=1e-9)
