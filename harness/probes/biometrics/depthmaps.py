"""Reading depth frames of a flat calibration target (the `face.depth` input), strictly:
every refusal is one BadInput naming the file and the field (and the line of the list).

A set is a JSONL list, one frame a line, `{"frame": path (relative to the list),
"distance_mm"?: nominal distance, "depth_scale_mm"?: mm per depth unit (default 1),
"roi"?: [x0, y0, x1, y1] (pixels, end exclusive)}`, or a folder whose `*.png` and `*.npy`
files (name order) are the frames with the defaults. A frame is

- a 16-bit greyscale PNG (Pillow mode I;16, I;16B or I): depth units, 0 = no data;
- a `.npy` 2-D array of floats or integers, in depth units (mm unless depth_scale_mm says
  otherwise), 0 or NaN = no data.

8-bit or colour PNGs, arrays that are not 2-D, negative or infinite depths, frames with
fewer than 4 valid pixels (in the roi) are refused, and so is a frame listed twice: the same
name, the same file under another name (`./f.npy`, `../dir/f.npy`, a link) or the same
bytes under another file.

A frame's quantisation step (`quantisation_step`) is its depth unit in mm when its depths
are whole numbers of units (every PNG; an integer `.npy`, or a float one holding only
whole numbers), else 0: the plane fit floors its robust scale at step / sqrt(12).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import BadInput
from harness.probes.speech.records import Line, number_field, read_jsonl, sha256_bytes, unique

FRAME_SUFFIXES = (".png", ".npy")
PNG_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I")
MIN_VALID_PIXELS = 4
FIELDS = ("frame", "distance_mm", "depth_scale_mm", "roi")


@dataclass(frozen=True)
class DepthRow:
    frame: Path
    where: str  # "line N of LIST" for a frame of a list, "" for one of a folder
    distance_mm: float | None  # nominal, as the lab recorded it
    depth_scale_mm: float
    roi: tuple[int, int, int, int] | None


def _roi(path: Path, line: Line) -> tuple[int, int, int, int] | None:
    value = line.value.get("roi")
    if value is None:
        return None
    where = f"line {line.number}: roi"
    if (
        not isinstance(value, list)
        or len(value) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise BadInput(path, where, f"expected [x0, y0, x1, y1] (4 integers), got {value!r}")
    x0, y0, x1, y1 = value
    if not (0 <= x0 < x1 and 0 <= y0 < y1):
        raise BadInput(path, where, f"{value} is empty or negative (x0 < x1, y0 < y1 expected)")
    return (x0, y0, x1, y1)


def _positive(path: Path, line: Line, name: str) -> float | None:
    if name not in line.value:
        return None
    value = number_field(path, line, name, line.value[name])
    if value <= 0:
        raise BadInput(path, f"line {line.number}: {name}", f"expected > 0, got {value:g}")
    return value


def read_depth_list(path: Path, check_files: bool = True) -> list[DepthRow]:
    """The frames of a JSONL list (`check_files`: each frame must exist)."""
    lines = read_jsonl(path, "depth frame list")
    rows: list[DepthRow] = []
    for line in lines:
        unknown = sorted(set(line.value) - set(FIELDS))
        if unknown:
            raise BadInput(
                path, f"line {line.number}: {unknown[0]}", f"unknown field; known: {FIELDS}"
            )
        name = line.value.get("frame")
        if not isinstance(name, str) or not name.strip():
            raise BadInput(path, f"line {line.number}: frame", "expected a non-empty string")
        frame = path.parent / name
        if Path(name).suffix.lower() not in FRAME_SUFFIXES:
            raise BadInput(
                path, f"line {line.number}: frame", f"{name!r}: expected a .png or .npy frame"
            )
        if check_files and not frame.is_file():
            raise BadInput(path, f"line {line.number}: frame", f"{name!r} not found")
        scale = _positive(path, line, "depth_scale_mm")
        rows.append(
            DepthRow(
                frame,
                f"line {line.number} of {path}",
                _positive(path, line, "distance_mm"),
                1.0 if scale is None else scale,
                _roi(path, line),
            )
        )
    unique(path, lines, lambda ln: str(ln.value["frame"]), "frame")
    if check_files:
        check_distinct(path, rows, lines)
    return rows


def check_distinct(path: Path, rows: list[DepthRow], lines: list[Line] | None = None) -> None:
    """BadInput when two rows name one file (resolved: `./f.npy`, `../dir/f.npy`, links) or
    two files hold the same bytes (one frame counted twice), naming both lines (or files)."""
    labels = (
        [(f"line {ln.number}: frame", f"line {ln.number} ({ln.value['frame']!r})") for ln in lines]
        if lines
        else [(row.frame.name, repr(str(row.frame))) for row in rows]
    )
    by_file: dict[Path, int] = {}
    by_bytes: dict[str, int] = {}
    for k, row in enumerate(rows):
        field, label = labels[k]
        resolved = row.frame.resolve()
        if resolved in by_file:
            raise BadInput(
                path,
                field,
                f"{label} is the same file as {labels[by_file[resolved]][1]}: one frame "
                "counted twice",
            )
        by_file[resolved] = k
        digest = sha256_bytes(row.frame.read_bytes())
        if digest in by_bytes:
            raise BadInput(
                path,
                field,
                f"{label} holds the same bytes (sha256 {digest[:12]}) as "
                f"{labels[by_bytes[digest]][1]}: one frame counted twice",
            )
        by_bytes[digest] = k


def read_depth_folder(folder: Path) -> list[DepthRow]:
    frames = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES
    )
    if not frames:
        raise BadInput(folder, None, "no .png or .npy depth frame in this folder")
    rows = [DepthRow(p, "", None, 1.0, None) for p in frames]
    check_distinct(folder, rows)
    return rows


def read_depth_set(path: Path) -> list[DepthRow]:
    """A JSONL list or a folder of frames."""
    if path.is_dir():
        return read_depth_folder(path)
    if not path.is_file():
        raise BadInput(path, None, "depth frame list or folder not found")
    return read_depth_list(path)


def _pixel(mask: np.ndarray) -> str:
    row, col = (int(v) for v in np.argwhere(mask)[0])
    return f"pixel (row {row}, column {col})"


EIGHT_BIT_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr")


def _png(data: bytes, name: str | Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise BadInput(name, "format", f"expected a PNG, got {image.format}")
            if image.mode not in PNG_DEPTH_MODES:
                kind = "an 8-bit" if image.mode in EIGHT_BIT_MODES else "a"
                raise BadInput(
                    name,
                    "mode",
                    f"{kind} {image.mode} image: a depth frame is a 16-bit greyscale PNG "
                    "(mode I;16) in depth units",
                )
            raw = np.asarray(image).astype(np.float64)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise BadInput(name, "frame", f"not a readable PNG ({error})") from None
    if raw.ndim == 2 and raw.size and (raw.min() < 0 or raw.max() > 65535):
        raise BadInput(name, "frame", "values outside 0..65535: not a 16-bit depth frame")
    return raw


def decode_frame(
    data: bytes, suffix: str, name: str | Path, depth_scale_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """A frame's depth in mm (float64, H x W) and its mask of valid pixels. `name` is what
    a refusal names (the frame's file)."""
    depth, valid, _ = decode_frame_step(data, suffix, name, depth_scale_mm)
    return depth, valid


def decode_frame_step(
    data: bytes, suffix: str, name: str | Path, depth_scale_mm: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """`decode_frame` and the frame's quantisation step in mm (see the module docstring)."""
    suffix = suffix.lower()
    if suffix == ".png":
        raw = _png(data, name)
    elif suffix == ".npy":
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise BadInput(name, "frame", f"not a readable .npy array ({error})") from None
        if array.dtype.kind not in "fiu":
            raise BadInput(name, "dtype", f"{array.dtype}: expected a float or integer array")
        raw = array.astype(np.float64)
    else:
        raise BadInput(name, "frame", f"{suffix!r}: expected a .png or .npy frame")
    if raw.ndim != 2:
        raise BadInput(name, "shape", f"{raw.shape}: a depth frame is a 2-D array (H x W)")
    if raw.shape[0] < 2 or raw.shape[1] < 2:
        raise BadInput(name, "shape", f"{raw.shape}: too small for a plane fit")
    if np.isinf(raw).any():
        raise BadInput(name, "frame", f"infinite depth at {_pixel(np.isinf(raw))}")
    valid = np.isfinite(raw) & (raw != 0)
    if (raw[valid] < 0).any():
        raise BadInput(name, "frame", f"negative depth at {_pixel(valid & (raw < 0))}")
    depth = np.where(valid, raw * depth_scale_mm, 0.0)
    return depth, valid, quantisation_step(raw[valid], depth_scale_mm, suffix == ".png")


def quantisation_step(values: np.ndarray, scale_mm: float, integer: bool) -> float:
    """The depth resolution the data show, in mm: for whole-number values, the scale times
    the greatest common divisor of their distinct values' gaps (a camera that rounds to 10 mm
    but is written in 0.1 mm units has a step of 10 mm, not 0.1 mm); for other values the
    smallest gap between distinct values when they repeat (fewer distinct values than half
    the pixels), else 0 (unquantised); 0 when every value is the same."""
    distinct = np.unique(values)
    if distinct.size < 2:
        return 0.0
    gaps = np.diff(distinct)
    if integer or bool(np.array_equal(distinct, np.rint(distinct))):
        step = int(np.gcd.reduce(np.rint(gaps).astype(np.int64)))
        return float(scale_mm * max(step, 1))
    if 2 * distinct.size > values.size:
        return 0.0
    return float(scale_mm * gaps.min())


def check_frame(
    depth: np.ndarray, valid: np.ndarray, roi: tuple[int, int, int, int] | None, name: str | Path
) -> None:
    """BadInput when the roi does not lie inside the frame or holds too few valid pixels."""
    height, width = depth.shape
    x0, y0, x1, y1 = roi if roi is not None else (0, 0, width, height)
    if x1 > width or y1 > height:
        raise BadInput(
            name, "roi", f"{[x0, y0, x1, y1]} reaches outside the {width}x{height} frame"
        )
    count = int(valid[y0:y1, x0:x1].sum())
    if count == 0:
        raise BadInput(
            name,
            "frame",
            "no valid pixel (every depth is 0 or NaN)" + (" in the roi" if roi else ""),
        )
    if count < MIN_VALID_PIXELS:
        raise BadInput(
            name, "frame", f"{count} valid pixels: a plane fit needs at least {MIN_VALID_PIXELS}"
        )


def read_frame(row: DepthRow) -> tuple[np.ndarray, np.ndarray]:
    """Decode and check one frame of a set (BadInput naming the frame's file)."""
    return read_frame_bytes(row, row.frame.read_bytes(), row.frame)


def read_frame_bytes(row: DepthRow, data: bytes, name: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode and check a frame's bytes (`name`: the file a refusal names; the list line
    the frame came from is added to the reason)."""
    depth, valid, _ = read_frame_step(row, data, name)
    return depth, valid


def read_frame_step(
    row: DepthRow, data: bytes, name: str | Path
) -> tuple[np.ndarray, np.ndarray, float]:
    """`read_frame_bytes` and the frame's quantisation step in mm."""
    try:
        depth, valid, step = decode_frame_step(data, row.frame.suffix, name, row.depth_scale_mm)
        check_frame(depth, valid, row.roi, name)
    except BadInput as error:
        if not row.where:
            raise
        raise BadInput(
            error.source, error.field, f"{error.message} (listed on {row.where})"
        ) from None
    return depth, valid, step
