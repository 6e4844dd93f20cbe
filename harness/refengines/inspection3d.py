"""D14 3D inspection: the harness's reference height-map detector and its seeded dev sets.

A height map is a 2-D array of surface heights in mm (a 3D surface scan of a part), `pixel_mm`
mm per pixel laterally.

The dev set: each map is a nominal surface (a seeded tilted plane, up to 0.004 mm per pixel
each way, plus a sinusoidal waviness of 4-12 um amplitude and a 120-200 px wavelength, the
form and waviness of a machined face) with Gaussian height noise of `NOISE_MM`, `MAP_PX` x
`MAP_PX` pixels at `PIXEL_MM` mm per pixel, stored as float32 `.npy` in mm. Defective maps
carry one to three defects of distinct types, each in its own quadrant: a dent is a cosine
bowl (radius 4-8 px, 0.03-0.12 mm deep), a bump the same shape raised (0.03-0.12 mm high), a
scratch a straight groove 20-34 px long with a parabolic cross-section (half-width 1.2-2 px,
0.025-0.08 mm deep). The truth is known from the drawing: the types, each defect's bounding
box and, per map, `depth_mm` (the deepest point of its dents and scratches below the nominal
surface, over the pixel grid) and `height_mm` (the highest point of its bumps above it).

The detector (`HeightMapDetector`): a robust plane (`harness.scoring.plane_fit`, least
median of squares then least squares on the inliers), then a robust polynomial surface of
degree `degree` in the pixel coordinates (iterated least squares on the pixels within
`cutoff_sigma` robust sigmas, 1.4826 x the median absolute residual) to take out form and
waviness; the residual beyond `threshold_sigma` sigmas (at least `min_threshold_mm`),
below and above the surface separately, 8-connected components (`scipy.ndimage.label`) of
at least `min_area` pixels are defects. A component above the surface is a bump; one below
is a scratch when long and thin (major / minor axis >= `scratch_elongation`), else a dent.
`depth_mm` is the largest depth of a component below the surface (its extreme residual),
`height_mm` the largest height of one above. Deterministic; a few milliseconds per map.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.refengines.answering import AnswerEachSession
from harness.scoring.plane_fit import fit_plane

GENERATOR_VERSION = "d14-3d-devset/1"
MAP_PX = 96
PIXEL_MM = 0.05
NOISE_MM = 0.002
BASE_MM = 5.0  # the nominal surface's height at the map centre
DEFECT_TYPES = ("dent", "bump", "scratch")
DIMENSIONS = ("depth_mm", "height_mm")


# ------------------------------------------------------------------------ the dev sets


@dataclass(frozen=True)
class Defect3D:
    type: str
    points: tuple[tuple[float, float], ...]  # (row, col): a dent's or bump's centre; a
    # scratch's two end points
    size: float  # dent/bump: radius px; scratch: half-width px
    amplitude_mm: float  # the drawn depth (dent, scratch) or height (bump), > 0

    def field(self, shape: tuple[int, int]) -> np.ndarray:
        """The defect's height change (mm, negative below the surface) on the pixel grid."""
        rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
        if self.type == "scratch":
            (r0, c0), (r1, c1) = self.points
            dr, dc = r1 - r0, c1 - c0
            t = ((rows - r0) * dr + (cols - c0) * dc) / (dr * dr + dc * dc)
            t = np.clip(t, 0.0, 1.0)
            dist = np.hypot(rows - (r0 + t * dr), cols - (c0 + t * dc))
            profile = np.clip(1.0 - (dist / self.size) ** 2, 0.0, None)
            return np.asarray(-self.amplitude_mm * profile)
        (r, c) = self.points[0]
        dist = np.hypot(rows - r, cols - c)
        bowl = np.where(dist < self.size, 0.5 * (1.0 + np.cos(np.pi * dist / self.size)), 0.0)
        sign = 1.0 if self.type == "bump" else -1.0
        return np.asarray(sign * self.amplitude_mm * bowl)

    def bbox(self) -> list[float]:
        rows = [p[0] for p in self.points]
        cols = [p[1] for p in self.points]
        pad = self.size
        return [
            round(min(cols) - pad, 1),
            round(min(rows) - pad, 1),
            round(max(cols) + pad, 1),
            round(max(rows) + pad, 1),
        ]


@dataclass(frozen=True)
class MapSpec:
    id: str
    tilt: tuple[float, float]  # mm per pixel along columns, rows
    wave_mm: float
    wave_px: float
    wave_angle: float
    wave_phase: float
    noise_seed: int
    defects: tuple[Defect3D, ...] = field(default_factory=tuple)

    def surface(self) -> np.ndarray:
        """The nominal surface (plane and waviness, no defect, no noise), mm."""
        rows, cols = np.mgrid[0:MAP_PX, 0:MAP_PX].astype(np.float64)
        centre = (MAP_PX - 1) / 2.0
        plane = BASE_MM + self.tilt[0] * (cols - centre) + self.tilt[1] * (rows - centre)
        along = cols * math.cos(self.wave_angle) + rows * math.sin(self.wave_angle)
        wave = self.wave_mm * np.sin(2 * np.pi * along / self.wave_px + self.wave_phase)
        return np.asarray(plane + wave)

    def defect_field(self) -> np.ndarray:
        total = np.zeros((MAP_PX, MAP_PX))
        for d in self.defects:
            total += d.field((MAP_PX, MAP_PX))
        return total

    def truth(self) -> dict[str, float]:
        """depth_mm / height_mm: the drawn extremes over the pixel grid (no noise)."""
        out: dict[str, float] = {}
        for d in self.defects:
            extreme = float(np.abs(d.field((MAP_PX, MAP_PX))).max())
            key = "height_mm" if d.type == "bump" else "depth_mm"
            out[key] = max(out.get(key, 0.0), round(extreme, 5))
        return dict(sorted(out.items()))


def _quadrant_origin(q: int) -> tuple[int, int]:
    half = MAP_PX // 2
    return (q // 2) * half, (q % 2) * half


def _defect(kind: str, q: int, rng: np.random.Generator) -> Defect3D:
    r0, c0 = _quadrant_origin(q)
    half = MAP_PX // 2
    if kind == "scratch":
        length = float(rng.uniform(20.0, 34.0))
        angle = float(rng.uniform(0.0, math.pi))
        dr, dc = length / 2 * math.sin(angle), length / 2 * math.cos(angle)
        cr, cc = r0 + half / 2, c0 + half / 2
        ends = ((round(cr - dr, 1), round(cc - dc, 1)), (round(cr + dr, 1), round(cc + dc, 1)))
        width = round(float(rng.uniform(1.2, 2.0)), 2)
        depth = round(float(rng.uniform(0.025, 0.08)), 4)
        return Defect3D("scratch", ends, width, depth)
    radius = round(float(rng.uniform(4.0, 8.0)), 2)
    margin = radius + 3
    centre = (
        round(r0 + float(rng.uniform(margin, half - margin)), 1),
        round(c0 + float(rng.uniform(margin, half - margin)), 1),
    )
    amplitude = round(float(rng.uniform(0.03, 0.12)), 4)
    return Defect3D(kind, (centre,), radius, amplitude)


def plan_set(prefix: str, seed: int, good: int, defective: int) -> list[MapSpec]:
    """The maps of a dev set, seeded: `good` defect-free ones and `defective` with 1 to 3
    defects of distinct types (each type leading equally often), shuffled."""
    rng = np.random.default_rng([seed, 143])
    kinds: list[list[str]] = [[] for _ in range(good)]
    for k in range(defective):
        count = 1 + int(rng.integers(0, len(DEFECT_TYPES)))
        first = DEFECT_TYPES[k % len(DEFECT_TYPES)]
        others = [t for t in DEFECT_TYPES if t != first]
        rng.shuffle(others)
        kinds.append([first, *others[: count - 1]])
    specs: list[MapSpec] = []
    for n, k in enumerate(rng.permutation(len(kinds))):
        quadrants = rng.permutation(4)
        defects = tuple(_defect(t, int(q), rng) for t, q in zip(kinds[k], quadrants, strict=False))
        specs.append(
            MapSpec(
                id=f"{prefix}-{n:04d}",
                tilt=(
                    round(float(rng.uniform(-0.004, 0.004)), 5),
                    round(float(rng.uniform(-0.004, 0.004)), 5),
                ),
                wave_mm=round(float(rng.uniform(0.004, 0.012)), 4),
                wave_px=round(float(rng.uniform(120.0, 200.0)), 1),
                wave_angle=round(float(rng.uniform(0.0, math.pi)), 3),
                wave_phase=round(float(rng.uniform(0.0, 2 * math.pi)), 3),
                noise_seed=int(rng.integers(0, 2**31)),
                defects=defects,
            )
        )
    return specs


def render(spec: MapSpec) -> np.ndarray:
    """The height map of `spec` in mm (float32; deterministic)."""
    noise = np.random.default_rng(spec.noise_seed).normal(0.0, NOISE_MM, (MAP_PX, MAP_PX))
    return (spec.surface() + spec.defect_field() + noise).astype(np.float32)


def npy_bytes(height_mm: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, height_mm, allow_pickle=False)
    return buffer.getvalue()


def manifest_line(spec: MapSpec, name: str) -> dict[str, Any]:
    line: dict[str, Any] = {
        "id": spec.id,
        "height_map": name,
        "defects": [{"type": d.type, "bbox": d.bbox()} for d in spec.defects],
        "pixel_mm": PIXEL_MM,
    }
    truth = spec.truth()
    if truth:
        line["dimensions"] = truth
    return line


def manifest_bytes(specs: Sequence[MapSpec]) -> bytes:
    lines = [manifest_line(s, f"maps/{s.id}.npy") for s in specs]
    return "".join(json.dumps(x, sort_keys=True) + "\n" for x in lines).encode("utf-8")


def write_set(folder: Path, specs: Sequence[MapSpec]) -> Path:
    """The maps as .npy under folder/maps/ and the manifest folder/manifest.jsonl."""
    (folder / "maps").mkdir(parents=True, exist_ok=True)
    for spec in specs:
        (folder / "maps" / f"{spec.id}.npy").write_bytes(npy_bytes(render(spec)))
    manifest = folder / "manifest.jsonl"
    manifest.write_bytes(manifest_bytes(specs))
    return manifest


# ------------------------------------------------------------------------ the detector


def load_height_map(path: str | Path, height_scale_mm: float | None = None) -> np.ndarray:
    """A height map file as float64 mm: a `.npy` array in mm, or a 16-bit greyscale PNG in
    height units times `height_scale_mm` (ValueError for anything else). The harness reads
    a lab's maps strictly before the run (harness.probes.inspection.heightmaps); this is the
    detector's own loader, for a command or a session given only a path."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        array = np.load(path, allow_pickle=False).astype(np.float64)
        if height_scale_mm is not None:
            array = array * height_scale_mm
    elif path.suffix.lower() == ".png":
        from PIL import Image

        if height_scale_mm is None:
            raise ValueError("a 16-bit PNG height map needs its mm per height unit")
        with Image.open(path) as image:
            if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
                raise ValueError(f"a {image.mode} PNG: expected 16-bit greyscale")
            array = np.asarray(image).astype(np.float64) * height_scale_mm
    else:
        raise ValueError(f"{path.suffix!r}: expected a .npy or .png height map")
    if array.ndim != 2 or min(array.shape) < 4 or not np.isfinite(array).all():
        raise ValueError("expected a finite 2-D height map of at least 4 x 4 pixels")
    return array


def _monomials(
    rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], degree: int
) -> np.ndarray:
    """Columns x^i y^j (i + j <= degree) of the pixel coordinates scaled to [-1, 1]."""
    x = 2.0 * cols / max(shape[1] - 1, 1) - 1.0
    y = 2.0 * rows / max(shape[0] - 1, 1) - 1.0
    terms = [x**i * y ** (d - i) for d in range(degree + 1) for i in range(d + 1)]
    return np.column_stack(terms)


@dataclass(frozen=True)
class SurfaceFit:
    residual_mm: np.ndarray  # height - surface, H x W
    sigma_mm: float  # the robust scale of the residual (1.4826 x MAD)
    inliers: int
    rounds: int


def _solve(design: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Least squares by the normal equations (a few columns, well conditioned on [-1, 1])."""
    gram = design.T @ design
    return np.asarray(np.linalg.solve(gram, design.T @ z))


def fit_surface(
    height_mm: np.ndarray,
    degree: int = 3,
    cutoff_sigma: float = 3.0,
    max_rounds: int = 10,
    step: int = 2,
) -> SurfaceFit:
    """The robust surface of a height map: plane_fit's robust plane for the first inliers,
    then least squares of a polynomial of `degree` on the inliers until they settle (fitted
    on every `step`-th row and column; the residual is of every pixel)."""
    shape = (int(height_mm.shape[0]), int(height_mm.shape[1]))
    rows, cols = np.mgrid[0 : shape[0] : step, 0 : shape[1] : step]
    r, c = rows.ravel().astype(np.float64), cols.ravel().astype(np.float64)
    z = height_mm[::step, ::step].ravel()
    plane = fit_plane(c, r, z, seed=0, candidates=100, sample_limit=4000)
    residual = z - (plane.a * c + plane.b * r + plane.c)
    inliers = np.abs(residual) <= 4.0 * plane.sigma_mm if plane.sigma_mm > 0 else residual == 0
    design = _monomials(r, c, shape, degree)
    coef = _solve(design[inliers], z[inliers])
    rounds = 1
    while rounds < max_rounds:
        residual = z - design @ coef
        sigma = 1.4826 * float(np.median(np.abs(residual)))
        updated = np.abs(residual) <= cutoff_sigma * sigma if sigma > 0 else residual == 0
        if np.array_equal(updated, inliers) or int(updated.sum()) <= design.shape[1]:
            break
        inliers = updated
        coef = _solve(design[inliers], z[inliers])
        rounds += 1
    all_rows, all_cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    full = _monomials(
        all_rows.ravel().astype(np.float64), all_cols.ravel().astype(np.float64), shape, degree
    )
    full_residual = (height_mm.ravel() - full @ coef).reshape(shape)
    sigma = 1.4826 * float(np.median(np.abs(full_residual)))
    return SurfaceFit(full_residual, sigma, int(inliers.sum()), rounds)


@dataclass
class HeightMapDetector:
    degree: int = 3
    threshold_sigma: float = 6.0
    min_threshold_mm: float = 0.01
    min_area: int = 4
    scratch_elongation: float = 3.0

    def rule(self) -> dict[str, Any]:
        return {
            "method": (
                "robust plane (LMedS) then a robust polynomial surface; residual beyond "
                "threshold below / above the surface, 8-connected components >= min_area px; "
                "above: bump; below: scratch if major/minor axis >= scratch_elongation, else "
                "dent; depth_mm / height_mm = the extreme residual"
            ),
            "surface_degree": self.degree,
            "threshold_sigma": self.threshold_sigma,
            "min_threshold_mm": self.min_threshold_mm,
            "min_area_px": self.min_area,
            "scratch_elongation": self.scratch_elongation,
        }

    def detect(self, height_mm: np.ndarray) -> dict[str, Any]:
        from scipy import ndimage
        from skimage.measure import regionprops

        fit = fit_surface(np.asarray(height_mm, dtype=np.float64), self.degree)
        residual = fit.residual_mm
        threshold = max(self.threshold_sigma * fit.sigma_mm, self.min_threshold_mm)
        defects: list[dict[str, Any]] = []
        dimensions: dict[str, float] = {}
        structure = np.ones((3, 3), dtype=bool)
        for sign, mask in ((-1.0, residual < -threshold), (1.0, residual > threshold)):
            labels, _count = ndimage.label(mask, structure=structure)
            for region in regionprops(labels):
                if region.area < self.min_area:
                    continue
                pixels = residual[labels == region.label]
                extreme = float(-pixels.min() if sign < 0 else pixels.max())
                major = float(region.axis_major_length)
                minor = float(region.axis_minor_length)
                if sign > 0:
                    kind, key = "bump", "height_mm"
                elif major >= self.scratch_elongation * max(minor, 1.0):
                    kind, key = "scratch", "depth_mm"
                else:
                    kind, key = "dent", "depth_mm"
                r0, c0, r1, c1 = region.bbox
                defects.append(
                    {
                        "type": kind,
                        "bbox": [int(c0), int(r0), int(c1), int(r1)],
                        "area_px": int(region.area),
                        "extreme_mm": round(extreme, 5),
                    }
                )
                dimensions[key] = max(dimensions.get(key, 0.0), round(extreme, 5))
        defects.sort(key=lambda d: (d["bbox"][1], d["bbox"][0], d["type"]))
        answer: dict[str, Any] = {"defective": bool(defects), "defects": defects}
        if dimensions:
            answer["dimensions"] = dict(sorted(dimensions.items()))
        answer["surface_sigma_mm"] = round(fit.sigma_mm, 6)
        return answer


class HeightMapSession(AnswerEachSession):
    """The reference detector as a SUT session: a Sample's data is a height map's path; the
    answer is the JSON text of `detect`. `load` reads a path as heights in mm (the harness
    passes its strict reader, which knows each map's height scale)."""

    def __init__(
        self,
        detector: HeightMapDetector,
        describe: dict[str, Any],
        load: Callable[[str], np.ndarray] = load_height_map,
    ) -> None:
        self.detector = detector
        self.facts = describe
        self.load = load

    def describe(self) -> dict[str, Any]:
        return {
            "adapter": "harness reference height-map detector (in-process)",
            **self.facts,
            **self.detector.rule(),
        }

    def answer(self, data: Any) -> str:
        return json.dumps(self.detector.detect(self.load(str(data))), sort_keys=True)
