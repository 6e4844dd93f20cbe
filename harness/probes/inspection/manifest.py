"""Reading a labelled inspection set (JSONL, one image per line) strictly, and the SUT's
answers.

A line: `{"id", "image", "defects": [{"type", "bbox"?: [x0, y0, x1, y1]}], "dimensions"?:
{name: mm}, "split"?: "train" | "test"}`; `image` relative to the manifest's folder (or
absolute); an empty `defects` list is a good part. Every refusal is one BadInput naming the
file, the line and the field: a line that is not a JSON object, a missing or empty id or
image, a missing image file, defects that are not a list of objects, a type outside the
suite's vocabulary, a bbox that is not four finite numbers with x0 <= x1 and y0 <= y1, a
dimension that is not a finite number (NaN, Infinity), a duplicate id, an empty set, and two
lines whose images are one file (the same path, or a link to it), the same bytes (sha256) or
the same pixels (decoded to gray levels): one image listed many times would pass a rate on
a single part, and a few-shot test image that is a training example was not held out.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import BadInput
from harness.probes.speech.records import Line, number_field, read_jsonl, text_field, unique

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Item:
    line: int
    id: str
    image_as_given: str
    image: Path
    types: tuple[str, ...]  # one entry per defect, in order
    dimensions: dict[str, float] = field(default_factory=dict)
    split: str = "test"
    defects: tuple[dict[str, Any], ...] = ()

    @property
    def defective(self) -> bool:
        return bool(self.types)


def _defects(
    path: Path, line: Line, vocabulary: Sequence[str]
) -> tuple[tuple[str, ...], tuple[dict[str, Any], ...]]:
    where = f"line {line.number}: defects"
    if "defects" not in line.value:
        raise BadInput(path, where, "missing (an empty list is a good part)")
    raw = line.value["defects"]
    if not isinstance(raw, list):
        raise BadInput(path, where, "expected a list of {type, bbox?} objects")
    types: list[str] = []
    defects: list[dict[str, Any]] = []
    for k, d in enumerate(raw):
        if not isinstance(d, dict):
            raise BadInput(path, f"{where}[{k}]", "expected an object {type, bbox?}")
        kind = d.get("type")
        if not isinstance(kind, str) or not NAME.match(kind):
            raise BadInput(
                path, f"{where}[{k}].type", "expected a defect type name (lower case: scratch)"
            )
        if vocabulary and kind not in vocabulary:
            raise BadInput(
                path,
                f"{where}[{k}].type",
                f"unknown defect type {kind!r}; the suite knows: {', '.join(vocabulary)}",
            )
        entry: dict[str, Any] = {"type": kind}
        if "bbox" in d:
            box = d["bbox"]
            if not isinstance(box, list) or len(box) != 4:
                raise BadInput(path, f"{where}[{k}].bbox", "expected [x0, y0, x1, y1]")
            values = [number_field(path, line, f"defects[{k}].bbox", v) for v in box]
            if values[0] > values[2] or values[1] > values[3]:
                raise BadInput(path, f"{where}[{k}].bbox", "expected x0 <= x1 and y0 <= y1")
            entry["bbox"] = values
        types.append(kind)
        defects.append(entry)
    return tuple(types), tuple(defects)


def _dimensions(path: Path, line: Line) -> dict[str, float]:
    if "dimensions" not in line.value:
        return {}
    raw = line.value["dimensions"]
    where = f"line {line.number}: dimensions"
    if not isinstance(raw, dict):
        raise BadInput(path, where, "expected an object {name: value_mm}")
    out: dict[str, float] = {}
    for name, value in raw.items():
        if not NAME.match(name):
            raise BadInput(path, f"{where}.{name}", "expected a lower-case dimension name")
        out[name] = number_field(path, line, f"dimensions.{name}", value)
    return dict(sorted(out.items()))


def read_manifest(
    path: Path,
    vocabulary: Sequence[str] = (),
    *,
    check_images: bool = True,
    splits: bool = False,
) -> list[Item]:
    """The items of an inspection set; `splits`: lines may carry `split` (train / test)."""
    lines = read_jsonl(path, "inspection set")
    items: list[Item] = []
    for line in lines:
        ident = str(text_field(path, line, "id"))
        image = str(text_field(path, line, "image"))
        resolved = Path(image) if Path(image).is_absolute() else path.parent / image
        if check_images and not resolved.is_file():
            raise BadInput(path, f"line {line.number}: image", f"image not found: {resolved}")
        types, defects = _defects(path, line, vocabulary)
        split = "test"
        if "split" in line.value:
            value = line.value["split"]
            if not splits:
                raise BadInput(
                    path, f"line {line.number}: split", "only the few-shot set has splits"
                )
            if value not in SPLITS:
                raise BadInput(path, f"line {line.number}: split", "expected train or test")
            split = value
        items.append(
            Item(
                line.number,
                ident,
                image,
                resolved,
                types,
                _dimensions(path, line),
                split,
                defects,
            )
        )
    unique(path, lines, lambda ln: str(ln.value["id"]), "id")
    distinct_files(path, [(i.line, i.image) for i in items], "image", read=check_images)
    return items


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def gray_digest(data: bytes) -> str | None:
    """The sha256 of an image's pixels as 8-bit gray levels (with its size): the same for
    a re-encoded copy (another PNG compression, RGB with equal channels); None when Pillow
    cannot read it."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            gray = np.asarray(image.convert("L") if image.mode != "L" else image, np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    return array_digest(gray)


def array_digest(array: np.ndarray) -> str:
    """The sha256 of an array's shape, dtype and values (C order)."""
    contiguous = np.ascontiguousarray(array)
    head = f"{contiguous.shape}|{contiguous.dtype.str}|".encode()
    return sha256_bytes(head + contiguous.tobytes())


def distinct_files(
    path: Path,
    files: Sequence[tuple[int, Path]],
    field: str,
    *,
    read: bool = True,
    content: Callable[[int, bytes], str | None] | None = None,
) -> None:
    """BadInput naming both lines where two lines' `field` files are one file (the same
    resolved path), or, with `read`, have the same bytes or the same content (`content`:
    (k, data of the k-th file) -> digest or None; by default the gray pixels of an
    image)."""
    by_path: dict[str, int] = {}
    by_bytes: dict[str, int] = {}
    by_content: dict[str, int] = {}
    for k, (number, file) in enumerate(files):
        where = f"line {number}: {field}"
        key = os.path.realpath(file) if read else os.path.normpath(file)
        if key in by_path:
            raise BadInput(
                path,
                where,
                f"the same file as line {by_path[key]}'s {field} ({key}): every line needs "
                "its own image",
            )
        by_path[key] = number
        if not read:
            continue
        data = file.read_bytes()
        digest = sha256_bytes(data)
        if digest in by_bytes:
            raise BadInput(
                path,
                where,
                f"the same bytes as line {by_bytes[digest]}'s {field} (sha256 "
                f"{digest[:12]}): every line needs its own image",
            )
        by_bytes[digest] = number
        same = gray_digest(data) if content is None else content(k, data)
        if same is not None:
            if same in by_content:
                raise BadInput(
                    path,
                    where,
                    f"the same content as line {by_content[same]}'s {field} (a re-encoded "
                    "copy): every line needs its own image",
                )
            by_content[same] = number


# ------------------------------------------------------------------------ answers


@dataclass(frozen=True)
class Answer:
    defective: bool
    types: frozenset[str]
    dimensions: dict[str, float]

    def decision(self) -> tuple[bool, tuple[str, ...]]:
        return self.defective, tuple(sorted(self.types))


def parse_answer(output: Any) -> Answer | str:
    """The SUT's answer `{"defective": bool, "defects"?: [{"type"}], "dimensions"?: {name:
    mm}}` (JSON text, or the object), or why it is malformed."""
    value = output
    if isinstance(output, str):
        try:
            value = json.loads(output, parse_constant=lambda c: math.nan)
        except json.JSONDecodeError as error:
            return f"not JSON: {error}"
    if not isinstance(value, dict):
        return "expected a JSON object {defective, defects?, dimensions?}"
    defective = value.get("defective")
    if not isinstance(defective, bool):
        return "defective: expected true or false"
    raw = value.get("defects", [])
    if not isinstance(raw, list):
        return "defects: expected a list"
    types: set[str] = set()
    for k, d in enumerate(raw):
        if not isinstance(d, dict) or not isinstance(d.get("type"), str):
            return f"defects[{k}]: expected an object with a string type"
        types.add(d["type"])
    if types and not defective:
        return "defective is false but defects are listed"
    dims = value.get("dimensions", {})
    if not isinstance(dims, dict):
        return "dimensions: expected an object {name: mm}"
    out: dict[str, float] = {}
    for name, v in dims.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return f"dimensions.{name}: expected a finite number"
        out[str(name)] = float(v)
    return Answer(defective, frozenset(types), out)
