"""Robust plane fit of a depth frame of a flat calibration target. Pure functions, no I/O.

The plane is z = a x + b y + c with x, y the pixel coordinates (column, row) and z the
depth in mm: the residual z - plane(x, y) is the depth error along the camera axis, which is
what "3D imaging precision, 1 mm at 1 m" asks about (no camera intrinsics are needed; a
tilted target only adds a and b).

Method, deterministic for a given seed:

1. least median of squares (LMedS) on random 3-point planes (numpy's PCG64 seeded with
   `seed`; the candidates are scored on a seeded subsample of at most `sample_limit`
   pixels) by the h-th smallest squared residual, h = floor(n / 2) + 2 (Rousseeuw's
   choice for 3 parameters): robust to up to half of the pixels being outliers, with no
   threshold to tune;
2. the scale sigma from those residuals (1.4826 x (1 + 5 / (n - 3)) x sqrt(r^2 of rank h),
   Rousseeuw and Leroy 1987), pixels with |r| <= cutoff x sigma taken as inliers;
3. ordinary least squares on the inliers, then again: residuals of every pixel against that
   plane, sigma = 1.4826 x the median absolute residual (MAD about zero), inliers, least
   squares, until the inlier set no longer changes (at most `max_rounds` rounds).

The robust sigma is floored at the quantisation noise q / sqrt(12) of the depth units
(`quant_step` q, mm; 0 for float depths): in coarse integer units most residuals of a flat
target are exactly 0, the MAD is 0, and a cut at 4 x MAD would keep only the pixels lying
exactly on the plane (an RMS of 0).

The RMS is taken over the final inliers with the degrees-of-freedom correction of a fit of
3 parameters, sqrt(sum r^2 / (n - 3)) (unbiased for n Gaussian residuals about a fitted
plane; on a tiny roi the plain mean is biased low). With Gaussian noise, a cut at 4 sigma
(the default) drops 0.006 % of the pixels and biases the RMS low by less than 0.1 %; flying
pixels and holes far off the plane are dropped and counted in `outlier_share`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): the MAD of a Gaussian times this is its sigma


@dataclass(frozen=True)
class PlaneFit:
    a: float  # dz/dx, mm per pixel column
    b: float  # dz/dy, mm per pixel row
    c: float  # z at pixel (0, 0), mm
    rms_mm: float  # sqrt(sum r^2 / (n - 3)) of z - plane(x, y) over the n inliers
    sigma_mm: float  # the robust scale that decided the inliers
    quant_step_mm: float  # the depth quantisation step floored the scale at (0: none)
    inliers: int
    valid: int  # pixels fitted (valid depth)
    rounds: int  # least-squares rounds until the inlier set settled

    @property
    def outlier_share(self) -> float:
        return (self.valid - self.inliers) / self.valid

    def depth_at(self, x: float, y: float) -> float:
        return self.a * x + self.b * y + self.c


def _lstsq(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[float, float, float]:
    """Least-squares plane, on coordinates centred for conditioning."""
    mx, my, mz = float(x.mean()), float(y.mean()), float(z.mean())
    design = np.column_stack([x - mx, y - my, np.ones_like(x)])
    (a, b, c0), *_ = np.linalg.lstsq(design, z - mz, rcond=None)
    return float(a), float(b), float(c0 + mz - a * mx - b * my)


def _residuals(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, plane: tuple[float, float, float]
) -> np.ndarray:
    a, b, c = plane
    return np.asarray(z - (a * x + b * y + c))


def _lmeds(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, rng: np.random.Generator, candidates: int
) -> tuple[tuple[float, float, float], float]:
    """The 3-point plane with the least h-th smallest squared residual, and that value."""
    n = x.size
    rank = min(n, n // 2 + 2) - 1  # 0-based index of the h-th smallest
    best: tuple[float, float, float] | None = None
    best_median = math.inf
    picks = rng.integers(0, n, size=(candidates, 3))
    for i, j, k in picks:
        # the plane through three pixels: solve [x y 1] [a b c]^T = z
        m = np.array([[x[i], y[i], 1.0], [x[j], y[j], 1.0], [x[k], y[k], 1.0]])
        if abs(np.linalg.det(m)) < 1e-9:
            continue  # collinear (or repeated) pixels give no plane
        a, b, c = np.linalg.solve(m, np.array([z[i], z[j], z[k]]))
        plane = (float(a), float(b), float(c))
        median = float(np.partition(_residuals(x, y, z, plane) ** 2, rank)[rank])
        if median < best_median:
            best, best_median = plane, median
    if best is None:  # every candidate degenerate (all pixels on a line): least squares
        best = _lstsq(x, y, z)
        best_median = float(np.partition(_residuals(x, y, z, best) ** 2, rank)[rank])
    return best, best_median


def fit_plane(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    *,
    seed: int = 0,
    cutoff: float = 4.0,
    candidates: int = 200,
    sample_limit: int = 20_000,
    max_rounds: int = 20,
    quant_step: float = 0.0,
) -> PlaneFit:
    """The robust plane z = a x + b y + c through the points (see the module docstring)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    z = np.asarray(z, dtype=np.float64).ravel()
    if not x.size == y.size == z.size:
        raise ValueError("x, y and z differ in length")
    if x.size < 4:
        raise ValueError(f"{x.size} points: a plane fit with a scale needs at least 4")
    if not (np.isfinite(x).all() and np.isfinite(y).all() and np.isfinite(z).all()):
        raise ValueError("the points hold NaN or infinite values")
    if cutoff <= 0:
        raise ValueError("cutoff must be > 0")
    if not (math.isfinite(quant_step) and quant_step >= 0):
        raise ValueError("quant_step must be a finite number >= 0")
    floor = quant_step / math.sqrt(12.0)  # the sd of rounding to a step of quant_step
    rng = np.random.default_rng(seed)
    if x.size > sample_limit:
        pick = np.sort(rng.choice(x.size, size=sample_limit, replace=False))
        xs, ys, zs = x[pick], y[pick], z[pick]
    else:
        xs, ys, zs = x, y, z
    plane, median_sq = _lmeds(xs, ys, zs, rng, candidates)
    sigma = max(MAD_TO_SIGMA * (1.0 + 5.0 / (xs.size - 3)) * math.sqrt(median_sq), floor)
    inliers = np.abs(_residuals(x, y, z, plane)) <= cutoff * sigma
    rounds = 0
    while True:
        if int(inliers.sum()) < 3:
            raise ValueError("fewer than 3 pixels lie on the plane: no fit")
        rounds += 1
        plane = _lstsq(x[inliers], y[inliers], z[inliers])
        residuals = _residuals(x, y, z, plane)
        sigma = max(MAD_TO_SIGMA * float(np.median(np.abs(residuals))), floor)
        if sigma == 0.0:  # more than half the pixels exactly on the plane
            sigma = float(np.sqrt(np.mean(residuals[inliers] ** 2)))
        updated = np.abs(residuals) <= cutoff * sigma if sigma > 0 else residuals == 0
        if np.array_equal(updated, inliers) or rounds >= max_rounds:
            break
        inliers = updated
    kept = residuals[inliers]
    return PlaneFit(
        a=plane[0],
        b=plane[1],
        c=plane[2],
        rms_mm=float(np.sqrt(np.sum(kept**2) / max(kept.size - 3, 1))),
        sigma_mm=sigma,
        quant_step_mm=quant_step,
        inliers=int(inliers.sum()),
        valid=int(x.size),
        rounds=rounds,
    )


@dataclass(frozen=True)
class FrameFit:
    plane: PlaneFit
    roi: tuple[int, int, int, int]  # x0, y0, x1, y1 (pixels, end exclusive)
    pixels: int  # pixels in the ROI
    distance_mm: float  # the plane's depth at the ROI centre

    @property
    def valid_share(self) -> float:
        return self.plane.valid / self.pixels


def fit_depth_frame(
    depth_mm: np.ndarray,
    valid: np.ndarray,
    roi: tuple[int, int, int, int] | None = None,
    *,
    seed: int = 0,
    cutoff: float = 4.0,
    quant_step: float = 0.0,
) -> FrameFit:
    """The robust plane of the valid pixels of a depth frame (H x W, mm) inside `roi`
    (x0, y0, x1, y1, end exclusive; None: the whole frame), and its depth at the ROI's
    centre ((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2). `quant_step`: the depth units in mm
    when the depths are quantised (integer units), else 0."""
    depth = np.asarray(depth_mm, dtype=np.float64)
    mask = np.asarray(valid, dtype=bool)
    if depth.ndim != 2 or depth.shape != mask.shape:
        raise ValueError("a depth frame is a 2-D array with a mask of the same shape")
    height, width = depth.shape
    x0, y0, x1, y1 = roi if roi is not None else (0, 0, width, height)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"roi {[x0, y0, x1, y1]} does not lie inside the {width}x{height} frame")
    rows, cols = np.nonzero(mask[y0:y1, x0:x1])
    if rows.size < 4:
        raise ValueError(f"{rows.size} valid pixels in the roi: at least 4 are needed")
    z = depth[y0:y1, x0:x1][rows, cols]
    plane = fit_plane(cols + x0, rows + y0, z, seed=seed, cutoff=cutoff, quant_step=quant_step)
    distance = plane.depth_at((x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0)
    return FrameFit(plane, (x0, y0, x1, y1), (x1 - x0) * (y1 - y0), distance)
