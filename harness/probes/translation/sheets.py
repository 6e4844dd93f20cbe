"""The human rating sheet of D06 (`--dataset ratings=PATH`): CSV with a header row,

    rater,item,dimension,score
    r1,dev-001,faithfulness,1
    r1,dev-001,fluency,0

`dimension` is `faithfulness` or `fluency`; `score` is 0/1 (acceptable or not: scale
`binary`) or an integer 1-5 (scale `likert5`, acceptable from the task's `acceptable_from`
score up). The column `acceptable` may stand for `score`. Lines starting with `#` are
comments; a sheet holding a line `# EXAMPLE` is an example (the shipped one is), whose
figures can never decide a verdict. Every refusal names the file, the line and the field:
not UTF-8, a missing column, an empty field, an unknown dimension, a score that is not an
integer of the scale (NaN, 2.5, 6), the same rater rating the same item and dimension twice,
two spellings of one rater or item name.

Rater and item names are normalised (`harness.scoring.ratings.name_key`: NFKC, case folded,
format characters such as U+200B and U+FEFF removed, spaces collapsed; `lookalikes=False`)
so that `alice`, `ALICE` and `alice\u200b` are one rater; a sheet that spells one name two
ways is refused (it would count one rater as several). Look-alike letters of other scripts
(Cyrillic `а`) are not folded: such a rater is flagged by identical scores instead.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.errors import BadInput
from harness.scoring.ratings import name_key

DIMENSIONS = ("faithfulness", "fluency")
Scale = Literal["binary", "likert5"]
SCALES: dict[str, tuple[int, ...]] = {"binary": (0, 1), "likert5": (1, 2, 3, 4, 5)}
EXAMPLE_MARK = "# EXAMPLE"


@dataclass(frozen=True)
class SheetRating:
    rater: str
    item: str
    dimension: str
    score: int
    line: int


@dataclass(frozen=True)
class Sheet:
    ratings: tuple[SheetRating, ...]
    example: bool  # the sheet says it is an example


def parse_sheet(data: bytes, source: str | Path, scale: Scale) -> Sheet:
    """The ratings of a sheet's bytes (BadInput naming `source`, line and field)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        bad_line = data[: error.start].count(b"\n") + 1
        raise BadInput(source, f"line {bad_line}", f"not UTF-8 ({error.reason})") from None
    lines = text.splitlines()
    example = any(line.strip().upper().startswith(EXAMPLE_MARK) for line in lines)
    numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
    numbered = [(i, line) for i, line in numbered if not line.lstrip().startswith("#")]
    if not numbered:
        raise BadInput(source, None, "no header row and no ratings (the sheet is empty)")
    header_line, header_text = numbered[0]
    header = [h.strip().lower() for h in next(csv.reader([header_text]))]
    if "score" not in header and "acceptable" in header:
        header[header.index("acceptable")] = "score"
    for column in ("rater", "item", "dimension", "score"):
        if column not in header:
            raise BadInput(
                source, f"line {header_line}: {column}", f"missing column (header: {header})"
            )
    col = {name: header.index(name) for name in ("rater", "item", "dimension", "score")}
    allowed = SCALES[scale]
    ratings: list[SheetRating] = []
    seen: dict[tuple[str, str, str], int] = {}
    spellings: dict[tuple[str, str], tuple[str, int]] = {}  # (field, normal) -> (raw, line)
    for line_no, line in numbered[1:]:
        row = next(csv.reader(io.StringIO(line)))
        values: dict[str, str] = {}
        for name, k in col.items():
            value = row[k].strip() if k < len(row) else ""
            if not value:
                raise BadInput(source, f"line {line_no}: {name}", "empty")
            values[name] = value
        dimension = values["dimension"].lower()
        if dimension not in DIMENSIONS:
            raise BadInput(
                source,
                f"line {line_no}: dimension",
                f"{values['dimension']!r} is not one of {', '.join(DIMENSIONS)}",
            )
        raw = values["score"]
        try:
            number = float(raw)
        except ValueError:
            number = float("nan")
        if not number.is_integer() or int(number) not in allowed:
            raise BadInput(
                source,
                f"line {line_no}: score",
                f"{raw!r} is not one of {', '.join(map(str, allowed))} (scale {scale})",
            )
        names: dict[str, str] = {}
        for field in ("rater", "item"):
            raw_name = values[field]
            normal = name_key(raw_name, lookalikes=False)
            if not normal:
                raise BadInput(source, f"line {line_no}: {field}", "empty once normalised")
            first = spellings.setdefault((field, normal), (raw_name, line_no))
            if first[0] != raw_name:
                raise BadInput(
                    source,
                    f"line {line_no}: {field}",
                    f"{raw_name!r} is {first[0]!r} (line {first[1]}) written another way "
                    "(case, width or invisible characters): one name, one spelling",
                )
            names[field] = normal
        key = (names["rater"], names["item"], dimension)
        if key in seen:
            raise BadInput(
                source,
                f"line {line_no}: rater",
                f"rater {key[0]!r} rated item {key[1]!r} ({dimension}) twice (first on line "
                f"{seen[key]})",
            )
        seen[key] = line_no
        ratings.append(SheetRating(key[0], key[1], dimension, int(number), line_no))
    if not ratings:
        raise BadInput(source, None, "no ratings below the header")
    return Sheet(tuple(ratings), example)
