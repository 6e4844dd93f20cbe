"""D14's reference detector and its seeded dev sets.

The dev set: a "part" is a fixed crop of a scikit-image texture (`skimage.data`: brick for
the inspection set, gravel for the few-shot set), imaged again and again like a fixtured part
on a production line: each image is the part under a seeded gain and offset (lighting), with
Gaussian sensor noise, quantised to 8 bits, 128 x 128 pixels at `MM_PER_PX` mm per pixel.
Defective images carry one to three defects of distinct types, each in its own quadrant,
drawn with `skimage.draw`: a scratch is a straight line 1-2 px wide (brighter or darker), a
spot a filled disk, a crack a darker random-walk polyline 1 px wide. The truth is known from
the drawing: the types, each defect's bounding box, and the dimensions `scratch_length_mm`
(the distance between the line's end points), `spot_diameter_mm` (twice the radius) of each
image's scratch and spot.

The detector (`ReferenceDetector`): the image, fitted to the reference by least squares
(gain and offset), minus the reference (the median of defect-free images), absolute value,
thresholded; connected components (8-connected, `scipy.ndimage.label`) of at least
`min_area` pixels are defects. A component's type comes from its shape: compact and
filled (major/minor axis < `spot_elongation`, solidity >= `spot_solidity`) is a spot; else
thin about its principal axis (minor axis <= `scratch_minor_px`) a scratch; else (it wanders
off a straight line) a crack. Dimensions: a scratch's length is its largest Feret diameter
less its width, a spot's diameter the diameter of the disk of its area, each in mm.
Deterministic; a few milliseconds per image.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.refengines.answering import AnswerEachSession

MM_PER_PX = 0.05
IMAGE_SIZE = 128
GENERATOR_VERSION = "d14-devset/1"
# where each part is cut from its texture (row, column of the top-left corner)
PARTS: dict[str, tuple[str, int, int]] = {
    "brick": ("brick", 96, 160),
    "gravel": ("gravel", 200, 64),
    "grass": ("grass", 64, 300),
}
DEFECT_TYPES = ("scratch", "spot", "crack")
NOISE_SD = 0.012  # of the sensor noise, on [0, 1] intensities


def golden(part: str) -> np.ndarray:
    """The defect-free part: a crop of a scikit-image texture, float64 in [0.15, 0.85]."""
    import skimage.data

    name, row, col = PARTS[part]
    texture = getattr(skimage.data, name)().astype(np.float64) / 255.0
    crop = texture[row : row + IMAGE_SIZE, col : col + IMAGE_SIZE]
    return 0.15 + 0.7 * crop


# ------------------------------------------------------------------------ the dev sets


@dataclass(frozen=True)
class DefectSpec:
    type: str
    points: tuple[tuple[float, float], ...]  # (row, col); a spot: its centre
    size: float  # scratch: width px; spot: radius px; crack: width px
    contrast: float  # added intensity (negative: darker)

    def truth(self) -> dict[str, float]:
        if self.type == "scratch":
            (r0, c0), (r1, c1) = self.points
            return {"scratch_length_mm": round(math.hypot(r1 - r0, c1 - c0) * MM_PER_PX, 4)}
        if self.type == "spot":
            return {"spot_diameter_mm": round(2 * self.size * MM_PER_PX, 4)}
        return {}


@dataclass(frozen=True)
class ImageSpec:
    id: str
    gain: float
    offset: float
    noise_seed: int
    defects: tuple[DefectSpec, ...] = field(default_factory=tuple)


def _quadrant_box(q: int) -> tuple[int, int]:
    half = IMAGE_SIZE // 2
    return (q // 2) * half, (q % 2) * half


def _defect(kind: str, q: int, rng: np.random.Generator) -> DefectSpec:
    r_base, c_base = _quadrant_box(q)
    margin = 8
    span = IMAGE_SIZE // 2 - 2 * margin
    sign = 1.0 if rng.random() < 0.5 else -1.0
    contrast = float(rng.uniform(0.18, 0.35))
    if kind == "scratch":
        length = float(rng.uniform(20.0, 40.0))
        angle = float(rng.uniform(0, math.pi))
        dr, dc = length * math.sin(angle), length * math.cos(angle)
        cr = r_base + IMAGE_SIZE / 4
        cc = c_base + IMAGE_SIZE / 4
        p0 = (round(cr - dr / 2, 1), round(cc - dc / 2, 1))
        p1 = (round(cr + dr / 2, 1), round(cc + dc / 2, 1))
        width = float(rng.choice([1.0, 2.0]))
        return DefectSpec("scratch", (p0, p1), width, round(sign * contrast, 3))
    if kind == "spot":
        radius = round(float(rng.uniform(2.5, 6.0)), 2)
        centre = (
            round(r_base + margin + float(rng.uniform(radius, span - radius)), 1),
            round(c_base + margin + float(rng.uniform(radius, span - radius)), 1),
        )
        return DefectSpec("spot", (centre,), radius, round(sign * contrast, 3))
    # crack: a random walk of 5-7 segments, turning up to 70 degrees at each joint
    points = [
        (
            r_base + margin + float(rng.uniform(0.3, 0.7)) * span,
            c_base + margin + float(rng.uniform(0.3, 0.7)) * span,
        )
    ]
    heading = float(rng.uniform(0, 2 * math.pi))
    for _ in range(int(rng.integers(5, 8))):
        heading += float(rng.uniform(-1.2, 1.2))
        step = float(rng.uniform(5.0, 8.0))
        r, c = points[-1]
        nr = min(max(r + step * math.sin(heading), r_base + 3), r_base + IMAGE_SIZE / 2 - 3)
        nc = min(max(c + step * math.cos(heading), c_base + 3), c_base + IMAGE_SIZE / 2 - 3)
        points.append((nr, nc))
    rounded = tuple((round(r, 1), round(c, 1)) for r, c in points)
    return DefectSpec("crack", rounded, 1.0, round(-contrast, 3))


def plan_set(
    prefix: str, seed: int, good: int, defective: int, max_types: int = 3
) -> list[ImageSpec]:
    """The images of a dev set, seeded: `good` defect-free ones and `defective` with 1 to
    `max_types` defects of distinct types (each type about equally often), shuffled."""
    rng = np.random.default_rng([seed, 14])
    specs: list[ImageSpec] = []
    kinds: list[list[str]] = [[] for _ in range(good)]
    for k in range(defective):
        count = 1 + int(rng.integers(0, max_types))
        first = k % len(DEFECT_TYPES)  # every type leads equally often
        others = [t for t in DEFECT_TYPES if t != DEFECT_TYPES[first]]
        rng.shuffle(others)
        kinds.append([DEFECT_TYPES[first], *others[: count - 1]])
    order = rng.permutation(len(kinds))
    for n, k in enumerate(order):
        quadrants = rng.permutation(4)
        defects = tuple(_defect(t, int(q), rng) for t, q in zip(kinds[k], quadrants, strict=False))
        specs.append(
            ImageSpec(
                id=f"{prefix}-{n:04d}",
                gain=round(float(rng.uniform(0.95, 1.05)), 4),
                offset=round(float(rng.uniform(-0.02, 0.02)), 4),
                noise_seed=int(rng.integers(0, 2**31)),
                defects=defects,
            )
        )
    return specs


def render(spec: ImageSpec, part: np.ndarray) -> np.ndarray:
    """The 8-bit image of `spec` (the drawing is deterministic)."""
    from skimage import draw

    image = part * spec.gain + spec.offset
    for d in spec.defects:
        mask = np.zeros(image.shape, dtype=bool)
        if d.type == "spot":
            (r, c), radius = d.points[0], d.size
            rr, cc = draw.disk((r, c), radius, shape=image.shape)
            mask[rr, cc] = True
        else:
            for (r0, c0), (r1, c1) in zip(d.points, d.points[1:], strict=False):
                rr, cc = draw.line(round(r0), round(c0), round(r1), round(c1))
                keep = (rr >= 0) & (rr < image.shape[0]) & (cc >= 0) & (cc < image.shape[1])
                mask[rr[keep], cc[keep]] = True
            if d.size >= 2:
                # 2 px wide: the line and its neighbour across the line's direction
                (r0, c0), (r1, c1) = d.points[0], d.points[-1]
                vertical = abs(r1 - r0) > abs(c1 - c0)
                shifted = np.roll(mask, 1, axis=1 if vertical else 0)
                mask |= shifted
        image[mask] += d.contrast
    noise = np.random.default_rng(spec.noise_seed).normal(0.0, NOISE_SD, image.shape)
    return np.clip(np.rint((image + noise) * 255.0), 0, 255).astype(np.uint8)


def manifest_line(spec: ImageSpec, image: str, with_boxes: bool = True) -> dict[str, Any]:
    defects: list[dict[str, Any]] = []
    dimensions: dict[str, float] = {}
    for d in spec.defects:
        entry: dict[str, Any] = {"type": d.type}
        if with_boxes:
            rows = [p[0] for p in d.points]
            cols = [p[1] for p in d.points]
            pad = d.size if d.type == "spot" else d.size / 2 + 0.5
            entry["bbox"] = [
                round(min(cols) - pad, 1),
                round(min(rows) - pad, 1),
                round(max(cols) + pad, 1),
                round(max(rows) + pad, 1),
            ]
        defects.append(entry)
        dimensions.update(d.truth())
    line: dict[str, Any] = {"id": spec.id, "image": image, "defects": defects}
    if dimensions:
        line["dimensions"] = dict(sorted(dimensions.items()))
    return line


def manifest_bytes(lines: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(x, sort_keys=True) + "\n" for x in lines).encode("utf-8")


def png_bytes(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def write_set(
    folder: Path, part_name: str, specs: Sequence[ImageSpec], extra: Sequence[dict[str, Any]] = ()
) -> tuple[Path, list[dict[str, Any]]]:
    """The images as PNG under folder/images/ and the manifest folder/manifest.jsonl
    (`extra`: per line, fields added to it, e.g. a split); returns the manifest and its
    lines."""
    part = golden(part_name)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for k, spec in enumerate(specs):
        name = f"images/{spec.id}.png"
        (folder / name).write_bytes(png_bytes(render(spec, part)))
        line = manifest_line(spec, name)
        if k < len(extra):
            line.update(extra[k])
        lines.append(line)
    manifest = folder / "manifest.jsonl"
    manifest.write_bytes(manifest_bytes(lines))
    return manifest, lines


def dev_part_of(gray: np.ndarray) -> str | None:
    """The dev part `gray` (an image's gray levels in [0, 1]) is an image of, whatever the
    seed or the size of the dev set it came from: fitted to a part's golden crop by least
    squares (gain and offset), the median absolute residual is at the sensor-noise level
    (drawn defects cover a small share of the pixels); else None. A photograph of another
    surface leaves residuals many times larger."""
    if gray.shape != (IMAGE_SIZE, IMAGE_SIZE):
        return None
    y = gray.ravel().astype(np.float64)
    for part in sorted(PARTS):
        x = _golden_flat(part)
        mx, my = float(x.mean()), float(y.mean())
        gain = float(np.dot(x - mx, y - my) / max(float(np.dot(x - mx, x - mx)), 1e-12))
        if gain < 0.5:
            continue
        residual = y - (my + gain * (x - mx))
        if float(np.median(np.abs(residual))) < DEV_MATCH_RESIDUAL:
            return part
    return None


@functools.cache
def _golden_flat(part: str) -> np.ndarray:
    flat = golden(part).ravel()
    flat.setflags(write=False)
    return flat


# median |residual| of a dev image against its part: about 0.67 NOISE_SD (Gaussian noise)
# plus the 8-bit quantisation; a match needs less than 2.5 times that noise level
DEV_MATCH_RESIDUAL = 2.5 * NOISE_SD


# ------------------------------------------------------------------------ the detector


def load_gray(path: str | Path) -> np.ndarray:
    """An image file as float64 gray levels in [0, 1] (Pillow; colour converted to L)."""
    from PIL import Image

    with Image.open(path) as im:
        gray = im.convert("L") if im.mode != "L" else im
        return np.asarray(gray, dtype=np.float64) / 255.0


@dataclass
class ReferenceDetector:
    reference: np.ndarray
    threshold: float = 0.09
    min_area: int = 6
    spot_elongation: float = 2.0
    spot_solidity: float = 0.75
    scratch_minor_px: float = 2.7
    mm_per_px: float = MM_PER_PX

    @classmethod
    def from_good(cls, images: Sequence[np.ndarray], **kwargs: Any) -> ReferenceDetector:
        """The reference: the pixel-wise median of defect-free images."""
        return cls(np.median(np.stack(list(images)), axis=0), **kwargs)

    def rule(self) -> dict[str, Any]:
        return {
            "method": (
                "least-squares gain/offset fit to the reference, |image - reference| > "
                "threshold, 8-connected components >= min_area px; type by shape; scratch "
                "length = largest Feret diameter - width, spot diameter = 2 sqrt(area/pi)"
            ),
            "threshold": self.threshold,
            "min_area_px": self.min_area,
            "spot_elongation": self.spot_elongation,
            "spot_solidity": self.spot_solidity,
            "scratch_minor_px": self.scratch_minor_px,
            "mm_per_px": self.mm_per_px,
        }

    def detect(self, image: np.ndarray) -> dict[str, Any]:
        from scipy import ndimage
        from skimage.measure import regionprops

        ref = self.reference
        if image.shape != ref.shape:
            raise ValueError(
                f"image is {image.shape[1]}x{image.shape[0]} px, the reference "
                f"{ref.shape[1]}x{ref.shape[0]}"
            )
        # gain and offset by least squares (the defects are a small share of the pixels)
        x, y = ref.ravel(), image.ravel()
        mx, my = float(x.mean()), float(y.mean())
        gain = float(np.dot(x - mx, y - my) / max(float(np.dot(x - mx, x - mx)), 1e-12))
        gain = gain if abs(gain) > 1e-6 else 1.0
        offset = my - gain * mx
        residual = np.abs((image - offset) / gain - ref)
        mask = residual > self.threshold
        labels, _count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
        defects: list[dict[str, Any]] = []
        dimensions: dict[str, float] = {}
        best: dict[str, float] = {}
        for region in regionprops(labels):
            if region.area < self.min_area:
                continue
            major = float(region.axis_major_length)
            minor = float(region.axis_minor_length)
            solid = float(region.solidity)
            if solid >= self.spot_solidity and major < self.spot_elongation * max(minor, 1e-6):
                kind = "spot"
                size = 2.0 * math.sqrt(region.area / math.pi) * self.mm_per_px
                key = "spot_diameter_mm"
            elif minor <= self.scratch_minor_px:
                kind = "scratch"
                width = region.area / max(float(region.feret_diameter_max), 1.0)
                size = (float(region.feret_diameter_max) - width) * self.mm_per_px
                key = "scratch_length_mm"
            else:
                kind, size, key = "crack", 0.0, ""
            r0, c0, r1, c1 = region.bbox
            defects.append(
                {
                    "type": kind,
                    "bbox": [int(c0), int(r0), int(c1), int(r1)],
                    "area_px": int(region.area),
                }
            )
            if key and region.area > best.get(key, -1):
                best[key] = region.area
                dimensions[key] = round(size, 4)
        answer: dict[str, Any] = {"defective": bool(defects), "defects": defects}
        if dimensions:
            answer["dimensions"] = dict(sorted(dimensions.items()))
        return answer


FEWSHOT_KEY = "fewshot_train"


class DetectorSession(AnswerEachSession):
    """The reference detector as a SUT session: a Sample's data is an image path (the answer
    the JSON text of `detect`), or JSON `{"fewshot_train": [{"image", "defective", ...}]}`:
    the reference becomes the median of the defect-free examples (answer `{"trained": n}`)."""

    def __init__(self, detector: ReferenceDetector | None, describe: dict[str, Any]) -> None:
        self.detector = detector
        self.facts = describe

    def describe(self) -> dict[str, Any]:
        rule = self.detector.rule() if self.detector is not None else {}
        return {"adapter": "harness reference detector (in-process)", **self.facts, **rule}

    def answer(self, data: Any) -> str:
        """The JSON text answering one Sample's data (raises for a bad input)."""
        text = str(data)
        if text.lstrip().startswith("{"):
            request = json.loads(text)
            examples = request[FEWSHOT_KEY]
            good = [load_gray(e["image"]) for e in examples if not e["defective"]]
            if not good:
                raise ValueError("no defect-free example to learn the part from")
            kwargs: dict[str, Any] = {}
            if self.detector is not None:
                kwargs = {
                    k: getattr(self.detector, k)
                    for k in (
                        "threshold",
                        "min_area",
                        "spot_elongation",
                        "spot_solidity",
                        "scratch_minor_px",
                    )
                }
            self.detector = ReferenceDetector.from_good(good, **kwargs)
            return json.dumps({"trained": len(examples), "good_examples": len(good)})
        if self.detector is None:
            raise ValueError("no reference: the detector was not trained")
        return json.dumps(self.detector.detect(load_gray(text)), sort_keys=True)



def part_detector(part: str, train: int = 9, seed: int = 0) -> ReferenceDetector:
    """The detector for a dev-set part, its reference the median of `train` seeded
    defect-free images of it (what a lab does with its golden samples)."""
    specs = plan_set(f"{part}-train", seed + 1000, train, 0)
    image = golden(part)
    return ReferenceDetector.from_good([render(s, image) / 255.0 for s in specs])
