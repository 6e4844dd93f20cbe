"""Reading a labelled height-map set (the `inspection.inspect3d` input) strictly: every
refusal is one BadInput naming the file, the line and the field.

A line: `{"id", "height_map": path, "defects": [{"type", "bbox"?}], "dimensions"?:
{"depth_mm"?: mm, "height_mm"?: mm}, "pixel_mm"?: lateral mm per pixel, "height_scale_mm"?:
mm per height unit}`; `height_map` relative to the manifest's folder (or absolute); an empty
`defects` list is a good part. `depth_mm` is the deepest point of the part's defects below
the nominal surface, `height_mm` the highest point above it (both > 0).

A height map is
- a `.npy` 2-D array of floats (or integers) in mm (`height_scale_mm`, if given, multiplies
  it);
- a 16-bit greyscale PNG (Pillow mode I;16, I;16B or I) in height units: `height_scale_mm`
  is required.

Refused: the faults of an inspection set (harness.probes.inspection.manifest: not JSON, a
missing id, defects that are not a list of typed objects, a type outside the vocabulary, a
bad bbox, a duplicate id, an empty set), a missing map file, a suffix other than .png or
.npy, a dimension other than depth_mm / height_mm or not > 0, a pixel_mm or height_scale_mm
not > 0, a PNG without height_scale_mm, an 8-bit or colour PNG, an array that is not 2-D or
is smaller than 4 x 4 pixels (an empty map), a NaN or infinite height, unknown fields, and
two lines whose maps are one file, the same bytes (sha256) or the same heights in mm.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import BadInput
from harness.probes.biometrics.depthmaps import EIGHT_BIT_MODES, PNG_DEPTH_MODES
from harness.probes.inspection.manifest import _defects, array_digest, distinct_files
from harness.probes.speech.records import Line, number_field, read_jsonl, text_field, unique

MAP_SUFFIXES = (".npy", ".png")
DIMENSIONS = ("depth_mm", "height_mm")
FIELDS = ("id", "height_map", "defects", "dimensions", "pixel_mm", "height_scale_mm")
MIN_SIDE_PX = 4


@dataclass(frozen=True)
class HeightItem:
    line: int
    id: str
    map_as_given: str
    map: Path
    types: tuple[str, ...]  # one entry per defect, in order
    dimensions: dict[str, float] = field(default_factory=dict)
    pixel_mm: float | None = None
    height_scale_mm: float | None = None
    defects: tuple[dict[str, Any], ...] = ()

    @property
    def defective(self) -> bool:
        return bool(self.types)

    @property
    def suffix(self) -> str:
        return Path(self.map_as_given).suffix.lower()


def _positive(path: Path, line: Line, name: str) -> float | None:
    if name not in line.value:
        return None
    value = number_field(path, line, name, line.value[name])
    if value <= 0:
        raise BadInput(path, f"line {line.number}: {name}", f"expected > 0, got {value:g}")
    return value


def _dimensions(path: Path, line: Line) -> dict[str, float]:
    if "dimensions" not in line.value:
        return {}
    raw = line.value["dimensions"]
    where = f"line {line.number}: dimensions"
    if not isinstance(raw, dict):
        raise BadInput(path, where, "expected an object {depth_mm?, height_mm?}")
    out: dict[str, float] = {}
    for name, value in raw.items():
        if name not in DIMENSIONS:
            raise BadInput(
                path, f"{where}.{name}", f"unknown dimension; a height map has {DIMENSIONS}"
            )
        number = number_field(path, line, f"dimensions.{name}", value)
        if number <= 0:
            raise BadInput(path, f"{where}.{name}", f"expected > 0 mm, got {number:g}")
        out[name] = number
    return dict(sorted(out.items()))


def _pixel(mask: np.ndarray) -> str:
    row, col = (int(v) for v in np.argwhere(mask)[0])
    return f"pixel (row {row}, column {col})"


def decode_height_map(
    data: bytes, suffix: str, height_scale_mm: float | None, name: str | Path, where: str
) -> np.ndarray:
    """A map's heights in mm (float64, H x W). A refusal names `name` (the manifest) and
    `where` (its line and field)."""
    suffix = suffix.lower()
    if suffix == ".png":
        from PIL import Image, UnidentifiedImageError

        if height_scale_mm is None:
            raise BadInput(
                name,
                where.replace("height_map", "height_scale_mm"),
                "missing: a 16-bit PNG holds height units; give the mm per unit",
            )
        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.format != "PNG":
                    raise BadInput(name, where, f"expected a PNG, got {image.format}")
                if image.mode not in PNG_DEPTH_MODES:
                    kind = "an 8-bit" if image.mode in EIGHT_BIT_MODES else "a"
                    raise BadInput(
                        name,
                        where,
                        f"{kind} {image.mode} PNG: a height map is a 16-bit greyscale PNG "
                        "(mode I;16) in height units",
                    )
                raw = np.asarray(image).astype(np.float64)
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise BadInput(name, where, f"not a readable PNG ({error})") from None
        scale = height_scale_mm
    elif suffix == ".npy":
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise BadInput(name, where, f"not a readable .npy array ({error})") from None
        if array.dtype.kind not in "fiu":
            raise BadInput(name, where, f"{array.dtype}: expected a float array of mm")
        raw = array.astype(np.float64)
        scale = 1.0 if height_scale_mm is None else height_scale_mm
    else:
        raise BadInput(name, where, f"{suffix!r}: expected a .npy or .png height map")
    if raw.ndim != 2:
        raise BadInput(name, where, f"shape {raw.shape}: a height map is a 2-D array (H x W)")
    if raw.size == 0:
        raise BadInput(name, where, f"shape {raw.shape}: an empty height map")
    if min(raw.shape) < MIN_SIDE_PX:
        raise BadInput(name, where, f"shape {raw.shape}: a surface fit needs at least 4 x 4 pixels")
    if np.isnan(raw).any():
        raise BadInput(name, where, f"NaN height at {_pixel(np.isnan(raw))}")
    if np.isinf(raw).any():
        raise BadInput(name, where, f"infinite height at {_pixel(np.isinf(raw))}")
    return np.asarray(raw * scale)


def read_height_manifest(
    path: Path, vocabulary: Sequence[str] = (), *, check_maps: bool = True
) -> list[HeightItem]:
    """The items of a height-map set; `check_maps`: every map must exist and decode."""
    lines = read_jsonl(path, "height-map set")
    items: list[HeightItem] = []
    for line in lines:
        unknown = sorted(set(line.value) - set(FIELDS))
        if unknown:
            raise BadInput(
                path, f"line {line.number}: {unknown[0]}", f"unknown field; known: {FIELDS}"
            )
        ident = str(text_field(path, line, "id"))
        given = str(text_field(path, line, "height_map"))
        where = f"line {line.number}: height_map"
        if Path(given).suffix.lower() not in MAP_SUFFIXES:
            raise BadInput(path, where, f"{given!r}: expected a .npy or .png height map")
        resolved = Path(given) if Path(given).is_absolute() else path.parent / given
        types, defects = _defects(path, line, vocabulary)
        item = HeightItem(
            line.number,
            ident,
            given,
            resolved,
            types,
            _dimensions(path, line),
            _positive(path, line, "pixel_mm"),
            _positive(path, line, "height_scale_mm"),
            defects,
        )
        if check_maps:
            if not resolved.is_file():
                raise BadInput(path, where, f"height map not found: {resolved}")
            decode_height_map(resolved.read_bytes(), item.suffix, item.height_scale_mm, path, where)
        elif item.suffix == ".png" and item.height_scale_mm is None:
            raise BadInput(path, f"line {line.number}: height_scale_mm", "missing for a PNG")
        items.append(item)
    unique(path, lines, lambda ln: str(ln.value["id"]), "id")

    def heights(k: int, data: bytes) -> str:
        item = items[k]
        where = f"line {item.line}: height_map"
        return array_digest(
            decode_height_map(data, item.suffix, item.height_scale_mm, path, where)
        )

    distinct_files(
        path, [(i.line, i.map) for i in items], "height_map", read=check_maps, content=heights
    )
    return items


def load_map(item: HeightItem, manifest: Path) -> np.ndarray:
    """An item's heights in mm (BadInput naming the manifest's line)."""
    return decode_height_map(
        item.map.read_bytes(),
        item.suffix,
        item.height_scale_mm,
        manifest,
        f"line {item.line}: height_map",
    )
