"""The suite's own image transformations, pure functions of an image and a parameter
record (numpy, scipy.ndimage, Pillow's JPEG codec), shared by the D17 probe (which draws and
applies them) and the reference platform (which may read the family, never the draws):

- `physical`: what a printed or displayed adversarial artefact goes through before a camera
  sees it: rotation and scale about the centre (bilinear, edge pixels repeated), Gaussian
  blur, a brightness gain, JPEG compression (quality 1-95, 8-bit RGB or grey through
  Pillow), and print-like noise (Gaussian, its own seed); then clipped to the domain and
  cast to float32. `draw_physical` draws one parameter record from a seeded generator within
  a stated `PhysicalFamily`.
- `spatial`: the rigid move a spatial-transformation attack declares: a shift by whole or
  fractional pixels then a rotation about the centre, both `scipy.ndimage` (cubic spline,
  zeros outside: the functions ART's SpatialTransformation calls), clipped to the domain.

Images are (C, H, W) with `channel_axis=0`, or (H, W) with `channel_axis=None`, in the
domain [lo, hi].
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PhysicalFamily:
    """The ranges the physical draws come from (uniform in each)."""

    max_rotation_deg: float = 10.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    max_blur_sigma_px: float = 0.8
    brightness_range: tuple[float, float] = (0.8, 1.2)
    jpeg_quality_range: tuple[int, int] = (70, 95)
    print_noise_sd: float = 0.02  # of the domain's width

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PhysicalDraw:
    rotation_deg: float
    scale: float
    blur_sigma_px: float
    brightness: float
    jpeg_quality: int
    noise_sd: float
    noise_seed: int

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PhysicalDraw:
        return cls(
            rotation_deg=float(record["rotation_deg"]),
            scale=float(record["scale"]),
            blur_sigma_px=float(record["blur_sigma_px"]),
            brightness=float(record["brightness"]),
            jpeg_quality=int(record["jpeg_quality"]),
            noise_sd=float(record["noise_sd"]),
            noise_seed=int(record["noise_seed"]),
        )


def draw_physical(family: PhysicalFamily, rng: np.random.Generator) -> PhysicalDraw:
    low_q, high_q = family.jpeg_quality_range
    return PhysicalDraw(
        rotation_deg=float(rng.uniform(-family.max_rotation_deg, family.max_rotation_deg)),
        scale=float(rng.uniform(*family.scale_range)),
        blur_sigma_px=float(rng.uniform(0.0, family.max_blur_sigma_px)),
        brightness=float(rng.uniform(*family.brightness_range)),
        jpeg_quality=int(rng.integers(low_q, high_q + 1)),
        noise_sd=float(family.print_noise_sd),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


def _planes(image: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """(C, H, W) float64 view of the image."""
    x = np.asarray(image, dtype=np.float64)
    if channel_axis is None:
        return x[np.newaxis]
    return np.moveaxis(x, channel_axis, 0)


def _unplanes(planes: np.ndarray, channel_axis: int | None) -> np.ndarray:
    if channel_axis is None:
        return planes[0]
    return np.moveaxis(planes, 0, channel_axis)


def _jpeg(planes: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG round trip of [0, 1] planes (1 or 3 of them) at `quality` through Pillow."""
    from PIL import Image

    pixels = (np.clip(planes, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if pixels.shape[0] == 1:
        image = Image.fromarray(pixels[0], mode="L")
    elif pixels.shape[0] == 3:
        image = Image.fromarray(pixels.transpose(1, 2, 0), mode="RGB")
    else:
        raise ValueError(f"JPEG needs 1 or 3 channels, got {pixels.shape[0]}")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality))
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        out = np.asarray(decoded, dtype=np.float64) / 255.0
    return out[np.newaxis] if out.ndim == 2 else out.transpose(2, 0, 1)


def physical(
    image: np.ndarray,
    draw: PhysicalDraw,
    domain: tuple[float, float],
    channel_axis: int | None,
) -> np.ndarray:
    """The image after one physical draw (see the module docstring), float32 in `domain`."""
    from scipy import ndimage

    lo, hi = domain
    width = hi - lo
    planes = (_planes(image, channel_axis) - lo) / width  # [0, 1]
    _, h, w = planes.shape
    theta = np.deg2rad(draw.rotation_deg)
    # output pixel o maps to input centre + R(-theta) (o - centre) / scale
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    matrix = rot / draw.scale
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    offset = centre - matrix @ centre
    moved = np.stack(
        [
            ndimage.affine_transform(p, matrix, offset=offset, order=1, mode="nearest")
            for p in planes
        ]
    )
    if draw.blur_sigma_px > 0:
        moved = np.stack([ndimage.gaussian_filter(p, draw.blur_sigma_px) for p in moved])
    moved = moved * draw.brightness
    moved = _jpeg(moved, draw.jpeg_quality)
    noise = np.random.default_rng(draw.noise_seed).normal(0.0, draw.noise_sd, moved.shape)
    out = np.clip(moved + noise, 0.0, 1.0) * width + lo
    return _unplanes(out, channel_axis).astype(np.float32)


@dataclass(frozen=True)
class SpatialMove:
    rotation_deg: float
    shift_px: tuple[float, float]  # (rows, columns)

    def describe(self) -> dict[str, Any]:
        return {"rotation_deg": self.rotation_deg, "shift_px": list(self.shift_px)}


def spatial(
    image: np.ndarray,
    move: SpatialMove,
    domain: tuple[float, float],
    channel_axis: int | None,
) -> np.ndarray:
    """`scipy.ndimage.shift` by (0, rows, columns) then `scipy.ndimage.rotate` by the angle
    in the image plane (reshape=False; both with their defaults: cubic spline, zeros
    outside), clipped to `domain`, float32."""
    from scipy import ndimage

    planes = _planes(image, channel_axis)
    moved = ndimage.shift(planes, [0.0, float(move.shift_px[0]), float(move.shift_px[1])])
    moved = ndimage.rotate(moved, angle=float(move.rotation_deg), axes=(1, 2), reshape=False)
    lo, hi = domain
    return _unplanes(np.clip(moved, lo, hi), channel_axis).astype(np.float32)
