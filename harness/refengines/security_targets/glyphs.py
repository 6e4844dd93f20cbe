"""Traffic-sign-like glyphs the suite renders itself (Pillow), for the driving-perception
targets: eight classes of sign (shape, colours, a symbol or digits), each image drawn at
4x size with seeded jitter (position, size, rotation, background, lighting), then reduced to
`SIZE` x `SIZE` with antialiasing, plus a little sensor noise. RGB, float32 in [0, 1],
channels first (3, SIZE, SIZE). Same seed, same bytes (Pillow's bundled font: no system
font is read)."""

from __future__ import annotations

import math

import numpy as np

SIZE = 32
SCALE = 4  # drawn at SIZE * SCALE, then reduced
GENERATOR_VERSION = "d17-glyphs/1"
CLASS_NAMES = (
    "stop",
    "yield",
    "speed_30",
    "speed_50",
    "turn_left",
    "turn_right",
    "no_entry",
    "warning",
)
RED = (200, 20, 30)
BLUE = (20, 60, 180)
YELLOW = (240, 200, 20)
WHITE = (245, 245, 245)
BLACK = (15, 15, 15)


def _polygon(cx: float, cy: float, r: float, sides: int, phase: float) -> list[tuple[float, float]]:
    return [
        (
            cx + r * math.cos(phase + 2 * math.pi * k / sides),
            cy + r * math.sin(phase + 2 * math.pi * k / sides),
        )
        for k in range(sides)
    ]


def _draw_sign(draw: object, kind: int, cx: float, cy: float, r: float) -> None:
    from PIL import ImageDraw, ImageFont

    assert isinstance(draw, ImageDraw.ImageDraw)
    box = (cx - r, cy - r, cx + r, cy + r)
    inner = (cx - 0.78 * r, cy - 0.78 * r, cx + 0.78 * r, cy + 0.78 * r)
    name = CLASS_NAMES[kind]
    if name == "stop":
        draw.polygon(_polygon(cx, cy, r, 8, math.pi / 8), fill=RED)
        draw.rectangle((cx - 0.6 * r, cy - 0.14 * r, cx + 0.6 * r, cy + 0.14 * r), fill=WHITE)
    elif name == "yield":
        pts = _polygon(cx, cy + 0.15 * r, 1.1 * r, 3, math.pi / 2)
        draw.polygon(pts, fill=RED)
        draw.polygon(_polygon(cx, cy + 0.15 * r, 0.62 * r, 3, math.pi / 2), fill=WHITE)
    elif name in ("speed_30", "speed_50"):
        draw.ellipse(box, fill=RED)
        draw.ellipse(inner, fill=WHITE)
        font = ImageFont.load_default(size=max(8, int(0.95 * r)))
        text = name.split("_")[1]
        draw.text((cx, cy), text, fill=BLACK, font=font, anchor="mm")
    elif name in ("turn_left", "turn_right"):
        draw.ellipse(box, fill=BLUE)
        sign = -1.0 if name == "turn_left" else 1.0
        shaft = (cx - 0.45 * r, cy - 0.12 * r, cx + 0.45 * r, cy + 0.12 * r)
        draw.rectangle(shaft, fill=WHITE)
        tip = (cx + sign * 0.7 * r, cy)
        base = cx + sign * 0.2 * r
        draw.polygon([tip, (base, cy - 0.42 * r), (base, cy + 0.42 * r)], fill=WHITE)
    elif name == "no_entry":
        draw.ellipse(box, fill=RED)
        draw.rectangle((cx - 0.62 * r, cy - 0.16 * r, cx + 0.62 * r, cy + 0.16 * r), fill=WHITE)
        draw.ellipse((cx - 0.08 * r, cy - 0.08 * r, cx + 0.08 * r, cy + 0.08 * r), fill=RED)
    elif name == "warning":
        draw.polygon(_polygon(cx, cy, 1.05 * r, 4, 0.0), fill=BLACK)
        draw.polygon(_polygon(cx, cy, 0.88 * r, 4, 0.0), fill=YELLOW)
        draw.rectangle((cx - 0.09 * r, cy - 0.5 * r, cx + 0.09 * r, cy + 0.15 * r), fill=BLACK)
        draw.ellipse((cx - 0.1 * r, cy + 0.28 * r, cx + 0.1 * r, cy + 0.48 * r), fill=BLACK)
    else:  # pragma: no cover - CLASS_NAMES is closed
        raise ValueError(kind)


def render(kind: int, rng: np.random.Generator) -> np.ndarray:
    """One glyph of class `kind` with jitter drawn from `rng`: (3, SIZE, SIZE) float32."""
    from PIL import Image, ImageDraw

    big = SIZE * SCALE
    background = tuple(int(v) for v in rng.integers(60, 200, size=3))
    image = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(image)
    # a few background strokes (road, foliage) so the sign is not on a flat field
    for _ in range(int(rng.integers(0, 3))):
        colour = tuple(int(v) for v in rng.integers(30, 220, size=3))
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(0, big, size=4))
        draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(2, 10)))
    r = big * rng.uniform(0.34, 0.44)
    cx = big / 2 + rng.uniform(-0.08, 0.08) * big
    cy = big / 2 + rng.uniform(-0.08, 0.08) * big
    _draw_sign(draw, kind, cx, cy, r)
    angle = float(rng.uniform(-8.0, 8.0))
    image = image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=background)
    small = image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64) / 255.0
    gain = rng.uniform(0.75, 1.2)
    offset = rng.uniform(-0.08, 0.08)
    pixels = pixels * gain + offset + rng.normal(0.0, 0.015, pixels.shape)
    return np.clip(pixels, 0.0, 1.0).transpose(2, 0, 1).astype(np.float32)


def glyph_set(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` glyphs of every class, interleaved (class k at indices k, k + 8, ...):
    images (n, 3, SIZE, SIZE) float32 and labels (n,) int64."""
    rng = np.random.default_rng([seed % 2**32, 17, 31])
    images, labels = [], []
    for _ in range(per_class):
        for kind in range(len(CLASS_NAMES)):
            images.append(render(kind, rng))
            labels.append(kind)
    return np.stack(images), np.asarray(labels, dtype=np.int64)
