"""What an image shows, independent of how its file is encoded: a digest of its decoded
pixels, so a re-encoded copy (another PNG compression level, a text chunk, JPEG to PNG
losslessly) is known as the same picture."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image, UnidentifiedImageError


def pixel_digest(path: Path) -> str | None:
    """sha256 of the image's size and RGB pixels; None when Pillow cannot decode it."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            header = f"{rgb.width}x{rgb.height}:".encode()
            return hashlib.sha256(header + rgb.tobytes()).hexdigest()
    except (OSError, UnidentifiedImageError, ValueError):
        return None
